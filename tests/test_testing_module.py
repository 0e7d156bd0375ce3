"""``skywarden.server.testing`` as a plugin author uses it: real server, real key, fake upstream."""

from __future__ import annotations

import json
from pathlib import Path

from skywarden.server.testing import Answer, fake_upstream, running_app
from tests.support.logs import SECRETS
from tests.support.plugin_samples import echo, lookup

FIXTURES = Path(__file__).parent / "fixtures" / "nws"


async def test_a_plugin_with_its_own_settings_and_upstream():
    async with fake_upstream({"/things/7": {"name": "seven"}}) as upstream:
        async with running_app(tools=[lookup], tool_settings={"lookup": {"base_url": upstream.url}}) as app:
            key = await app.create_key(scopes=["lookup"])
            SECRETS.add(key)
            status, body = await app.call_tool("lookup", {"id": 7}, key)
            assert status == 200 and body["content"][0]["text"] == "seven" and not body["isError"]
            status, body = await app.call_tool_mcp("lookup", {"id": 8}, key)  # 404 upstream: a tool error
            assert status == 200 and body["result"]["isError"] is True
            assert "Things API answered HTTP 404" in body["result"]["content"][0]["text"]
    assert [path for path, _ in upstream.requests] == ["/things/7", "/things/8"]
    assert all(headers["User-Agent"].startswith("skywarden/") for _, headers in upstream.requests)


async def test_the_plugin_sees_only_its_own_settings():
    seen = {}

    class Spy:
        name = "spy"
        description = "records its context"
        settings_group = "spy"
        Arguments = echo.Arguments

        async def call(self, arguments, context):
            seen.update(context.settings)
            return "ok"

    async with running_app(tools=[Spy()], tool_settings={"spy": {"colour": "blue"}}) as app:
        key = await app.create_key()
        SECRETS.add(key)
        assert (await app.call_tool("spy", {"text": "x"}, key))[0] == 200
    assert seen == {"colour": "blue"}  # no server secret, admin token or data dir


async def test_the_built_in_weather_tools_against_a_fake_nws():
    points = json.loads((FIXTURES / "points_39.7456,-97.0892.json").read_text())
    forecast = json.loads((FIXTURES / "forecast_TOP_32_81.json").read_text())
    async with fake_upstream({}) as nws:
        points["properties"]["forecast"] = f"{nws.url}/gridpoints/TOP/32,81/forecast"
        nws.routes.update({"/points/39.7456,-97.0892": points, "/gridpoints/TOP/32,81/forecast": Answer(forecast)})
        async with running_app(weather_base_url=nws.url) as app:
            key = await app.create_key(scopes=["get_forecast"])
            SECRETS.add(key)
            status, tools = await app.list_tools(key)
            assert status == 200 and [t["name"] for t in tools["tools"]] == ["get_forecast"]
            status, body = await app.call_tool("get_forecast", {"latitude": 39.7456, "longitude": -97.0892}, key)
            assert status == 200 and not body["isError"], body
            assert body["structuredContent"]["periods"]
            status, body = await app.call_tool("get_alerts", {"state": "KS"}, key)
            assert status == 403
