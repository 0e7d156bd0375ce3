"""The official MCP Python SDK client against Skywarden, in both of its modes."""

from __future__ import annotations

from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from tests.support.fake_nws import shared_available


@asynccontextmanager
async def sdk_client(client, mode: str):
    async with httpx2.AsyncClient(headers={"X-API-Key": client.api_key}) as http:
        transport = streamable_http_client(str(client.make_url("/mcp")), http_client=http)
        async with Client(transport, mode=mode) as mcp:
            yield mcp


@pytest.mark.parametrize(("mode", "version"), [("auto", "2026-07-28"), ("legacy", "2025-11-25")])
async def test_sdk_lists_and_calls_both_weather_tools(client, mode, version):
    async with sdk_client(client, mode) as mcp:
        assert mcp.protocol_version == version
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"get_forecast", "get_alerts"} <= names
        tools = {t.name: t for t in (await mcp.list_tools()).tools}
        assert tools["get_forecast"].output_schema["properties"]["periods"]["type"] == "array"

        forecast = await mcp.call_tool("get_forecast", {"latitude": 39.7456, "longitude": -97.0892})
        assert forecast.is_error is False
        assert forecast.structured_content["location"] == "Linn, KS"
        assert [p["name"] for p in forecast.structured_content["periods"]][:2] == ["Tonight", "Friday"]
        assert "Temperature: 31°F" in forecast.content[0].text

        alerts = await mcp.call_tool("get_alerts", {"state": "KS"})
        assert alerts.is_error is False
        assert alerts.structured_content["alerts"][0]["event"] == "Winter Weather Advisory"


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_sees_invalid_arguments_as_tool_errors(client, mode, fake_nws):
    async with sdk_client(client, mode) as mcp:
        result = await mcp.call_tool("get_forecast", {"latitude": 200, "longitude": "east"})
    assert result.is_error is True
    text = result.content[0].text
    assert "latitude: Must be between -90 and 90." in text and "longitude: Not a valid number." in text
    assert fake_nws.requests == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_upstream_failure_is_a_tool_error(client, mode):
    async with sdk_client(client, mode) as mcp:
        result = await mcp.call_tool("get_forecast", {"latitude": 51.5074, "longitude": -0.1278})
    assert result.is_error is True and "only the United States" in result.content[0].text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_sdk_progress_notifications_arrive(client, mode):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total))

    async with sdk_client(client, mode) as mcp:
        result = await mcp.call_tool("test_tool_with_progress", {}, progress_callback=on_progress)
    assert result.content[0].text == "Progress tool completed"
    assert seen == [(0, 100), (50, 100), (100, 100)]


async def test_sdk_scoped_key_sees_only_its_tools(make_client):
    client = await make_client(scopes=["get_alerts"])
    async with sdk_client(client, "auto") as mcp:
        assert [t.name for t in (await mcp.list_tools()).tools] == ["get_alerts"]


@pytest.mark.skipif(not shared_available(), reason="shared recorded fixtures not present")
async def test_sdk_on_recorded_answers(client):
    async with sdk_client(client, "auto") as mcp:
        result = await mcp.call_tool("get_forecast", {"latitude": 33.8, "longitude": -117.882})
        assert result.structured_content["periods"][0]["name"] == "Today"
        alerts = await mcp.call_tool("get_alerts", {"state": "TX"})
        assert len(alerts.structured_content["alerts"]) == 7


async def test_the_readme_example_runs_as_written(client, capsys):
    import runpy
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "mcp_client.py"))
    await example["main"](str(client.make_url("/")), client.api_key)  # the base URL, as SKYWARDEN_URL holds it
    out = capsys.readouterr().out
    assert "protocol 2026-07-28" in out and "tool get_alerts" in out and "Winter Weather Advisory" in out


@pytest.mark.parametrize("failure", ["nothing listening", "TLS to a plain HTTP server", "wrong key"])
async def test_the_example_ends_a_failure_with_one_line(client, capsys, failure):
    import asyncio
    import runpy
    import socket
    from pathlib import Path

    example = runpy.run_path(str(Path(__file__).parent.parent / "examples" / "mcp_client.py"))
    base = str(client.make_url("/")).rstrip("/")
    key = client.api_key
    if failure == "nothing listening":
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            base = f"http://127.0.0.1:{sock.getsockname()[1]}"  # released: nothing listens there
    elif failure == "TLS to a plain HTTP server":
        base = base.replace("http://", "https://")
    else:
        key = "skw_live_" + "A" * 40
    code = await asyncio.to_thread(example["run"], base, key)
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert err.startswith("mcp_client: ") and f"{base}/mcp" in err
    expected = {
        "nothing listening": "cannot connect",
        "TLS to a plain HTTP server": "TLS with",
        "wrong key": "refused: Unauthorized",
    }
    assert expected[failure] in err and key not in err
