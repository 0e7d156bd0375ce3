"""``get_alerts``: active weather alerts for a US state or territory."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from marshmallow import fields, validate

from skywarden.tools import Context, ToolError, ToolResult, text_content
from skywarden.tools.weather import nws
from skywarden.tools.weather.nws import WeatherSettings, weather


class StateCode(fields.String):
    """A state code as people write it: ``" ks"`` is ``KS``. Normalised while the arguments are
    validated, so ``ks`` and ``KS`` are one argument set and share a kept result. A field, not an
    ``arguments=`` Schema class, so the signature stays the one place the arguments are declared."""

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> str:
        return str(super()._deserialize(value, attr, data, **kwargs)).strip().upper()


State = Annotated[
    str,
    StateCode(
        validate=validate.OneOf(
            sorted(nws.STATE_CODES), error="Must be a two-letter US state or territory code such as CA or TX."
        ),
        metadata={
            "description": "Two-letter US state or territory code (e.g. CA, NY; lower case is accepted too)",
            "examples": ["KS"],
        },
    ),
]


@dataclass(frozen=True)
class Alert:
    event: str | None
    area: str | None
    severity: str | None
    description: str | None
    instruction: str | None
    headline: str | None
    expires: str | None


@dataclass(frozen=True)
class Alerts:
    state: str
    alerts: list[Alert]


@weather.tool(
    title="Active weather alerts",
    description=(
        "Get active weather alerts (watches, warnings, advisories) for a US state or territory "
        "from the National Weather Service."
    ),
    scopes=["weather"],
    cache_ttl=nws.CACHE_TTL,
)
async def get_alerts(ctx: Context[WeatherSettings], state: State) -> ToolResult[Alerts]:
    alerts = await nws.get(ctx, f"{ctx.settings.base_url}/alerts/active/area/{state}", derive=_alerts)
    if alerts:
        text = f"{len(alerts)} active alert(s) for {state}:\n\n" + "\n---\n".join(_format(a) for a in alerts)
    else:
        text = f"No active alerts for {state}."
    return ToolResult(content=[text_content(text)], structured=Alerts(state, alerts))


def _alerts(document: Any) -> list[Alert]:
    """The actual alerts of an NWS answer (test, exercise and draft messages left out); an answer
    of another shape is a ``ToolError`` that the HTTP client reports with the answer's address."""
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise ToolError(f"{nws.SERVICE} answered the alerts request in an unexpected format.")
    alerts = []
    for feature in features:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            raise ToolError(f"{nws.SERVICE} answered with an alert in an unexpected format.")
        if props.get("status", "Actual") == "Actual":
            alerts.append(_alert(props))
    return alerts


def _alert(props: dict[str, Any]) -> Alert:
    def text(key: str) -> str | None:
        value = props.get(key)
        return value if isinstance(value, str) else None

    return Alert(
        event=text("event"),
        area=text("areaDesc"),
        severity=text("severity"),
        description=text("description"),
        instruction=text("instruction"),
        headline=text("headline"),
        expires=text("expires"),
    )


def _format(alert: Alert) -> str:
    return (
        f"Event: {alert.event or 'Unknown'}\n"
        f"Area: {alert.area or 'Unknown'}\n"
        f"Severity: {alert.severity or 'Unknown'}\n"
        f"Description: {alert.description or 'No description available'}\n"
        f"Instructions: {alert.instruction or 'No specific instructions provided'}"
    )
