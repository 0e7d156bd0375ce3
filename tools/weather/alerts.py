"""``get_alerts``: active weather alerts for a US state or territory."""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, pre_load

from skywarden.tools.contract import ToolContext, ToolError, ToolResult, text_content
from skywarden.tools.weather import nws


def _state_code(value: str) -> None:
    if value not in nws.STATE_CODES:
        raise ValidationError("Must be a two-letter US state or territory code such as CA or TX.")


class AlertsArguments(Schema):
    class Meta:
        unknown = RAISE

    state = fields.String(
        required=True,
        validate=_state_code,
        metadata={
            "description": "Two-letter US state or territory code (e.g. CA, NY; lower case is accepted too)",
            "enum": sorted(nws.STATE_CODES),
            "examples": ["KS"],
        },
    )

    @pre_load
    def _normalise(self, data: Any, **kwargs: Any) -> Any:
        if isinstance(data, dict) and isinstance(data.get("state"), str):
            return {**data, "state": data["state"].strip().upper()}
        return data


class Alert(Schema):
    event = fields.String(allow_none=True)
    area = fields.String(allow_none=True)
    severity = fields.String(allow_none=True)
    description = fields.String(allow_none=True)
    instruction = fields.String(allow_none=True)
    headline = fields.String(allow_none=True)
    expires = fields.String(allow_none=True)


class AlertsResult(Schema):
    state = fields.String(required=True)
    alerts = fields.List(fields.Nested(Alert), required=True)


def _alert(props: dict[str, Any]) -> dict[str, Any]:
    def text(key: str) -> str | None:
        value = props.get(key)
        return value if isinstance(value, str) else None

    return {
        "event": text("event"),
        "area": text("areaDesc"),
        "severity": text("severity"),
        "description": text("description"),
        "instruction": text("instruction"),
        "headline": text("headline"),
        "expires": text("expires"),
    }


def _format(alert: dict[str, Any]) -> str:
    return (
        f"Event: {alert['event'] or 'Unknown'}\n"
        f"Area: {alert['area'] or 'Unknown'}\n"
        f"Severity: {alert['severity'] or 'Unknown'}\n"
        f"Description: {alert['description'] or 'No description available'}\n"
        f"Instructions: {alert['instruction'] or 'No specific instructions provided'}"
    )


class GetAlerts:
    name = "get_alerts"
    settings_group = nws.SETTINGS_GROUP
    pure_arguments = True  # validation depends on the arguments alone: identical ones are checked once
    cache_results = True  # the result depends on the arguments and the NWS answers alone
    title = "Active weather alerts"
    description = (
        "Get active weather alerts (watches, warnings, advisories) for a US state or territory "
        "from the National Weather Service."
    )
    Arguments = AlertsArguments
    Result = AlertsResult

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        state = arguments["state"]
        url = f"{nws.base_url(context)}/alerts/active/area/{state}"
        alerts = await nws.get(context, url, derive=_alerts)
        if alerts:
            text = f"{len(alerts)} active alert(s) for {state}:\n\n" + "\n---\n".join(_format(a) for a in alerts)
        else:
            text = f"No active alerts for {state}."
        structured = {"state": state, "alerts": alerts}  # already AlertsResult's shape, no dump needed
        return ToolResult(content=[text_content(text)], structured=structured)


def _alerts(document: Any) -> list[dict[str, Any]]:
    """The actual alerts of an NWS answer (test, exercise and draft messages left out); an answer
    of another shape is a ``ToolError`` that the upstream client names with its address."""
    features = document.get("features") if isinstance(document, dict) else None
    if not isinstance(features, list):
        raise ToolError(f"{nws.SERVICE} answered the alerts request in an unexpected format.")
    alerts = []
    for feature in features:
        props = feature.get("properties") if isinstance(feature, dict) else None
        if not isinstance(props, dict):
            raise ToolError(f"{nws.SERVICE} answered with an alert in an unexpected format.")
        if props.get("status", "Actual") != "Actual":
            continue
        alerts.append(_alert(props))
    return alerts


tool = GetAlerts()
