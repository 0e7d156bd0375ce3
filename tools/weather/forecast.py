"""``get_forecast``: the next forecast periods for a point in the US."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated, Any

from marshmallow import fields, validate

from skywarden.tools import Context, ToolError, ToolResult, UpstreamError, text_content
from skywarden.tools.weather import nws
from skywarden.tools.weather.nws import WeatherSettings, weather

PERIODS = 5

# Whole marshmallow fields, for their examples (Swagger UI fills them in); a description string
# and validators alone would do otherwise.
Latitude = Annotated[
    float,
    fields.Float(
        validate=validate.Range(-90, 90, error="Must be between -90 and 90."),
        metadata={"description": "Latitude of the location, -90 to 90", "examples": [39.7456]},
    ),
]
Longitude = Annotated[
    float,
    fields.Float(
        validate=validate.Range(-180, 180, error="Must be between -180 and 180."),
        metadata={"description": "Longitude of the location, -180 to 180", "examples": [-97.0892]},
    ),
]


@dataclass(frozen=True)
class Period:
    """One forecast period, under the names NWS gives its fields."""

    name: str
    startTime: str | None
    temperature: float | None
    temperatureUnit: str | None
    windSpeed: str | None
    windDirection: str | None
    shortForecast: str | None
    detailedForecast: str | None


@dataclass(frozen=True)
class Forecast:
    latitude: float
    longitude: float
    location: Annotated[str | None, "Nearest city and state"]
    periods: list[Period]


@weather.tool(
    title="Weather forecast",
    description=(
        "Get the weather forecast for a location in the United States from the National Weather "
        "Service: the next periods with temperature, wind and a detailed forecast."
    ),
    scopes=["weather"],
    cache_ttl=nws.CACHE_TTL,
)
async def get_forecast(ctx: Context[WeatherSettings], latitude: Latitude, longitude: Longitude) -> ToolResult[Forecast]:
    point = f"{nws.format_coordinate(latitude)},{nws.format_coordinate(longitude)}"
    points_url = f"{ctx.settings.base_url}/points/{point}"
    try:
        location, link = await nws.get(ctx, points_url, derive=_point)
    except UpstreamError as exc:
        if exc.status == 404:
            raise ToolError(
                f"No forecast is available for {point}: the National Weather Service covers only "
                "the United States and its territories."
            ) from None
        raise
    text, periods = await nws.get(ctx, nws.follow_link(ctx, link, source=points_url), derive=_forecast)
    if not periods:
        raise ToolError(f"{nws.SERVICE} has no forecast periods for {point} right now.")
    header = f"Forecast for {location} ({point})" if location else f"Forecast for {point}"
    return ToolResult(
        content=[text_content(f"{header}\n\n{text}")],
        structured=Forecast(latitude, longitude, location, periods),
    )


def _point(points: Any) -> tuple[str | None, Any]:
    """A point lookup's place name and forecast link (``follow_link`` checks the link)."""
    props = points.get("properties") if isinstance(points, dict) else None
    if not isinstance(props, dict):
        raise ToolError(f"{nws.SERVICE} answered the point lookup in an unexpected format.")
    rel = props.get("relativeLocation")
    place = rel.get("properties") if isinstance(rel, dict) else None
    location = None
    if isinstance(place, dict) and isinstance(place.get("city"), str) and isinstance(place.get("state"), str):
        location = f"{place['city']}, {place['state']}"
    return location, props.get("forecast")


def _forecast(forecast: Any) -> tuple[str, list[Period]]:
    """A forecast's text and periods, made once per upstream answer (see ``nws.get``)."""
    props = forecast.get("properties") if isinstance(forecast, dict) else None
    raw_periods = props.get("periods") if isinstance(props, dict) else None
    if not isinstance(raw_periods, list):
        raise ToolError(f"{nws.SERVICE} answered the forecast in an unexpected format.")
    periods = [_period(p) for p in raw_periods[:PERIODS]]
    return "\n---\n".join(_format(p) for p in periods), periods


def _period(raw: Any) -> Period:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ToolError(f"{nws.SERVICE} answered with a forecast period in an unexpected format.")

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    temperature = raw.get("temperature")
    if isinstance(temperature, dict):  # the "quantitative value" form of newer answers
        temperature = temperature.get("value")
    return Period(
        name=raw["name"],
        startTime=text("startTime"),
        temperature=_number(temperature),
        temperatureUnit=text("temperatureUnit"),
        windSpeed=text("windSpeed"),
        windDirection=text("windDirection"),
        shortForecast=text("shortForecast"),
        detailedForecast=text("detailedForecast"),
    )


def _number(value: Any) -> float | None:
    """A finite number, or None for anything else (NaN, 1e400, an integer too large for a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def _format(period: Period) -> str:
    temperature = period.temperature
    temperature_text = "n/a" if temperature is None else f"{temperature:g}°{period.temperatureUnit or ''}"
    wind = " ".join(x for x in (period.windSpeed, period.windDirection) if x) or "n/a"
    detail = period.detailedForecast or period.shortForecast or "No details."
    return f"{period.name}:\nTemperature: {temperature_text}\nWind: {wind}\nForecast: {detail}"
