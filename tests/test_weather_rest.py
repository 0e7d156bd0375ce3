"""Both weather tools end to end through REST against the fake NWS upstream."""

from __future__ import annotations

import jsonschema
import pytest

from skywarden.server import __version__
from tests.support.fake_nws import Answer, shared_available

needs_shared = pytest.mark.skipif(not shared_available(), reason="shared recorded fixtures not present")


async def call(client, tool: str, args: dict) -> dict:
    """Tool results, failures included, are HTTP 200."""
    resp = await client.post(f"/api/mcp/tools/{tool}", json=args)
    assert resp.status == 200, await resp.text()
    return await resp.json()


async def test_forecast_own_fixture(client, fake_nws):
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is False
    periods = body["structuredContent"]["periods"]
    assert [p["name"] for p in periods] == ["Tonight", "Friday", "Friday Night", "Saturday", "Saturday Night"]
    assert periods[0]["temperature"] == 31 and periods[0]["temperatureUnit"] == "F"
    assert body["structuredContent"]["location"] == "Linn, KS"
    text = body["content"][0]["text"]
    assert "Tonight:" in text and "Temperature: 31°F" in text and "Wind: 6 mph NW" in text


async def test_forecast_sends_nws_headers(client, fake_nws):
    await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    request = fake_nws.requests[0]
    assert request.headers["User-Agent"] == f"skywarden/{__version__} (+https://github.com/skywarden/skywarden)"
    assert request.headers["Accept"] == "application/geo+json"


async def test_the_weather_user_agent_setting_is_what_nws_gets(make_client, make_settings, fake_nws):
    client = await make_client(make_settings(weather_user_agent="forecasts.example (ops@forecasts.example)"))
    await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    await call(client, "get_alerts", {"state": "KS"})
    assert [r.headers["User-Agent"] for r in fake_nws.requests] == ["forecasts.example (ops@forecasts.example)"] * 3


async def test_forecast_rounds_coordinates_to_four_decimals(client, fake_nws):
    body = await call(client, "get_forecast", {"latitude": 39.74561234, "longitude": -97.08919})
    assert body["isError"] is False
    assert fake_nws.requests[0].path == "/points/39.7456,-97.0892"


async def test_forecast_outside_us_is_tool_error(client):
    body = await call(client, "get_forecast", {"latitude": 51.5074, "longitude": -0.1278})
    assert body["isError"] is True
    assert "only the United States" in body["content"][0]["text"]
    assert "structuredContent" not in body


async def test_forecast_upstream_500(client, fake_nws):
    problem = b'{"title":"Unexpected Problem","status":500}'
    fake_nws.set("/points/39.7456,-97.0892", Answer(500, problem, "application/problem+json"))
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True
    assert "HTTP 500" in body["content"][0]["text"]


async def test_forecast_upstream_timeout(make_client, make_settings, fake_nws):
    fake_nws.set("/points/39.7456,-97.0892", Answer(hang=True))
    client = await make_client(make_settings(upstream_timeout="0.2"))
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True
    assert "did not answer within 0.2 seconds" in body["content"][0]["text"]


async def test_forecast_upstream_invalid_json(client, fake_nws):
    fake_nws.set("/points/39.7456,-97.0892", Answer(200, b"<html>maintenance</html>", "text/html"))
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True
    assert "not valid JSON" in body["content"][0]["text"]


async def test_forecast_missing_fields(client, fake_nws):
    fake_nws.set("/points/39.7456,-97.0892", Answer(200, b'{"properties": {}}'))
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True
    assert "without the expected link" in body["content"][0]["text"]


async def test_forecast_link_to_other_origin_is_not_followed(client, fake_nws):
    fake_nws.set(
        "/points/39.7456,-97.0892",
        Answer(200, b'{"properties": {"forecast": "http://169.254.169.254/latest/meta-data"}}'),
    )
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True
    assert "link to another site" in body["content"][0]["text"]
    assert len(fake_nws.requests) == 1


async def test_forecast_oversized_upstream_answer(make_client, make_settings, fake_nws):
    fake_nws.set("/points/39.7456,-97.0892", Answer(200, b'{"x":"' + b"a" * 5000 + b'"}'))
    client = await make_client(make_settings(upstream_max_bytes="2048"))
    body = await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert body["isError"] is True and "larger than 2048 bytes" in body["content"][0]["text"]


async def test_upstream_answers_are_cached_per_url(client, fake_nws):
    for _ in range(2):
        await call(client, "get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
    assert fake_nws.hits("/points/39.7456,-97.0892") == 1  # max-age=300
    await call(client, "get_alerts", {"state": "KS"})
    await call(client, "get_alerts", {"state": "VT"})
    await call(client, "get_alerts", {"state": "VT"})
    assert fake_nws.hits("/alerts/active/area/KS") == 1
    assert fake_nws.hits("/alerts/active/area/VT") == 2  # no-cache is honoured


async def test_alerts_own_fixture_skips_test_messages(client):
    body = await call(client, "get_alerts", {"state": "ks"})
    assert body["isError"] is False
    alerts = body["structuredContent"]["alerts"]
    assert body["structuredContent"]["state"] == "KS"
    assert [a["event"] for a in alerts] == ["Winter Weather Advisory", "Special Weather Statement"]
    assert alerts[0]["instruction"] == "Slow down and use caution while traveling."
    text = body["content"][0]["text"]
    assert "Event: Winter Weather Advisory" in text and "Severity: Moderate" in text
    assert "No specific instructions provided" in text
    assert "Test Message" not in text


async def test_alerts_none_active(client):
    body = await call(client, "get_alerts", {"state": "VT"})
    assert body["content"][0]["text"] == "No active alerts for VT."
    assert body["structuredContent"] == {"state": "VT", "alerts": []}


@needs_shared
async def test_recorded_forecast_anaheim(client):
    body = await call(client, "get_forecast", {"latitude": 33.8, "longitude": -117.882})
    assert body["isError"] is False
    periods = body["structuredContent"]["periods"]
    assert len(periods) == 5
    assert periods[0]["name"] == "Today" and periods[0]["temperature"] == 78
    assert body["structuredContent"]["location"] == "Anaheim, CA"


@needs_shared
async def test_recorded_outside_us(client):
    body = await call(client, "get_forecast", {"latitude": 25.048, "longitude": -77.3554})
    assert body["isError"] is True and "only the United States" in body["content"][0]["text"]


@needs_shared
async def test_recorded_alerts_texas(client):
    body = await call(client, "get_alerts", {"state": "TX"})
    alerts = body["structuredContent"]["alerts"]
    assert len(alerts) == 7
    assert sum(a["event"] == "Heat Advisory" for a in alerts) == 6
    assert all(a["severity"] and a["description"] for a in alerts)


@needs_shared
async def test_recorded_alerts_keepalive_is_filtered(client):
    body = await call(client, "get_alerts", {"state": "MD"})
    assert body["structuredContent"]["alerts"] == []
    assert body["content"][0]["text"] == "No active alerts for MD."


@needs_shared
async def test_recorded_alerts_empty(client):
    body = await call(client, "get_alerts", {"state": "TN"})
    assert body["isError"] is False and body["structuredContent"]["alerts"] == []


@pytest.mark.parametrize(
    ("tool", "arguments"),
    [
        ("get_forecast", {"latitude": 39.7456, "longitude": -97.0892}),
        ("get_alerts", {"state": "KS"}),
        ("get_alerts", {"state": "VT"}),
    ],
)
async def test_structured_results_match_the_published_output_schema(client, tool, arguments):
    """What the tools return is held to their outputSchema by the server; checked here with
    another validator, against the schema tools/list publishes."""
    listed = {t["name"]: t for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}
    resp = await client.post(f"/api/mcp/tools/{tool}", json=arguments)
    structured = (await resp.json())["structuredContent"]
    jsonschema.validate(structured, listed[tool]["outputSchema"])
