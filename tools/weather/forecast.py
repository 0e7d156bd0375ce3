"""``get_forecast``: the next forecast periods for a point in the US."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, fields, validate

from skywarden.tools.contract import ToolContext, ToolError, ToolResult, text_content
from skywarden.tools.http import UpstreamError
from skywarden.tools.weather import nws

PERIODS = 5


class ForecastArguments(Schema):
    class Meta:
        unknown = RAISE

    latitude = fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(-90, 90, error="Must be between -90 and 90."),
        metadata={"description": "Latitude of the location, -90 to 90", "examples": [39.7456]},
    )
    longitude = fields.Float(
        required=True,
        allow_nan=False,
        validate=validate.Range(-180, 180, error="Must be between -180 and 180."),
        metadata={"description": "Longitude of the location, -180 to 180", "examples": [-97.0892]},
    )


class Period(Schema):
    name = fields.String(required=True)
    start_time = fields.String(allow_none=True, data_key="startTime")
    temperature = fields.Float(allow_none=True)
    temperature_unit = fields.String(allow_none=True, data_key="temperatureUnit")
    wind_speed = fields.String(allow_none=True, data_key="windSpeed")
    wind_direction = fields.String(allow_none=True, data_key="windDirection")
    short_forecast = fields.String(allow_none=True, data_key="shortForecast")
    detailed_forecast = fields.String(allow_none=True, data_key="detailedForecast")


class ForecastResult(Schema):
    latitude = fields.Float(required=True)
    longitude = fields.Float(required=True)
    location = fields.String(allow_none=True, metadata={"description": "Nearest city and state"})
    periods = fields.List(fields.Nested(Period), required=True)


def _period(raw: Any) -> dict[str, Any]:
    if not isinstance(raw, dict) or not isinstance(raw.get("name"), str):
        raise ToolError(f"{nws.SERVICE} answered with a forecast period in an unexpected format.")
    temperature = raw.get("temperature")
    if isinstance(temperature, dict):  # the "quantitative value" form of newer answers
        temperature = temperature.get("value")
    if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
        temperature = None

    def text(key: str) -> str | None:
        value = raw.get(key)
        return value if isinstance(value, str) else None

    return {
        "name": raw["name"],
        "start_time": text("startTime"),
        "temperature": temperature,
        "temperature_unit": text("temperatureUnit"),
        "wind_speed": text("windSpeed"),
        "wind_direction": text("windDirection"),
        "short_forecast": text("shortForecast"),
        "detailed_forecast": text("detailedForecast"),
    }


# Result field names as published (ForecastResult's data keys), computed once: building the
# structured result by hand is a fraction of a marshmallow dump per call.
_PUBLISHED = {name: f.data_key or name for name, f in Period().fields.items()}


def _published(period: dict[str, Any]) -> dict[str, Any]:
    published = {_PUBLISHED[name]: value for name, value in period.items()}
    if published["temperature"] is not None:
        published["temperature"] = float(published["temperature"])
    return published


def _location(points: dict[str, Any]) -> str | None:
    rel = points.get("relativeLocation")
    props = rel.get("properties") if isinstance(rel, dict) else None
    if isinstance(props, dict) and isinstance(props.get("city"), str) and isinstance(props.get("state"), str):
        return f"{props['city']}, {props['state']}"
    return None


def _format(period: dict[str, Any]) -> str:
    temp = period["temperature"]
    temp_text = "n/a" if temp is None else f"{temp:g}°{period['temperature_unit'] or ''}"
    wind = " ".join(x for x in (period["wind_speed"], period["wind_direction"]) if x) or "n/a"
    detail = period["detailed_forecast"] or period["short_forecast"] or "No details."
    return f"{period['name']}:\nTemperature: {temp_text}\nWind: {wind}\nForecast: {detail}"


def _point(points: Any) -> tuple[str | None, Any]:
    """A point lookup's place name and forecast link (checked by the caller: it needs the context)."""
    props = points.get("properties") if isinstance(points, dict) else None
    if not isinstance(props, dict):
        raise ToolError(f"{nws.SERVICE} answered the point lookup in an unexpected format.")
    return _location(props), props.get("forecast")


def _forecast(forecast: Any) -> tuple[str, list[dict[str, Any]]]:
    """A forecast's text and published periods, made once per upstream answer (see ``derive``)."""
    fprops = forecast.get("properties") if isinstance(forecast, dict) else None
    raw_periods = fprops.get("periods") if isinstance(fprops, dict) else None
    if not isinstance(raw_periods, list):
        raise ToolError(f"{nws.SERVICE} answered the forecast in an unexpected format.")
    periods = [_period(p) for p in raw_periods[:PERIODS]]
    return "\n---\n".join(_format(p) for p in periods), [_published(p) for p in periods]


class GetForecast:
    name = "get_forecast"
    settings_group = nws.SETTINGS_GROUP
    pure_arguments = True  # validation depends on the arguments alone: identical ones are checked once
    cache_results = True  # the result depends on the arguments and the NWS answers alone
    title = "Weather forecast"
    description = (
        "Get the weather forecast for a location in the United States from the National Weather "
        "Service: the next periods with temperature, wind and a detailed forecast."
    )
    Arguments = ForecastArguments
    Result = ForecastResult

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        lat, lon = arguments["latitude"], arguments["longitude"]
        point = f"{nws.format_coordinate(lat)},{nws.format_coordinate(lon)}"
        points_url = f"{nws.base_url(context)}/points/{point}"
        try:
            points = await nws.get(context, points_url, derive=_point)
        except UpstreamError as exc:
            if exc.status == 404:
                raise ToolError(
                    f"No forecast is available for {point}: the National Weather Service covers only "
                    "the United States and its territories."
                ) from None
            raise
        location, link = points
        forecast_url = nws.follow_link(context, link, source=points_url)
        text, periods = await nws.get(context, forecast_url, derive=_forecast)
        if not periods:
            raise ToolError(f"{nws.SERVICE} has no forecast periods for {point} right now.")
        header = f"Forecast for {location} ({point})" if location else f"Forecast for {point}"
        structured = {"latitude": float(lat), "longitude": float(lon), "location": location, "periods": periods}
        return ToolResult(content=[text_content(header + "\n\n" + text)], structured=structured)


tool = GetForecast()
