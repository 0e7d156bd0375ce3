"""The client library against real servers: Skywarden in-process and as a process, and the official SDK."""

from __future__ import annotations

import asyncio
import sys

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skywarden.clients import (
    AdminClient,
    AuthenticationError,
    InvalidArguments,
    PermissionDenied,
    RateLimited,
    RetryPolicy,
    ServerError,
    SkywardenClient,
    Timeouts,
    ToolError,
    ToolNotFound,
    TransportError,
)
from skywarden.clients.client import resolve_url
from tests.support.admin import ADMIN_TOKEN
from tests.support.fake_nws import Answer
from tests.support.logs import SECRETS, drain_logs
from tests.support.server_process import free_port, start_server

FORECAST = {"latitude": 39.7456, "longitude": -97.0892}
TRANSPORTS = [("rest", "auto"), ("mcp", "auto"), ("mcp", "legacy")]


def url_of(client) -> str:
    return str(client.make_url("")).rstrip("/")


def make(client, transport="rest", mode="auto", key=None, **kw) -> SkywardenClient:
    return SkywardenClient(url_of(client), key or client.api_key, transport=transport, mcp_mode=mode, **kw)


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_lists_and_calls_both_weather_tools(client, transport, mode):
    async with make(client, transport, mode) as sky:
        names = {t.name for t in await sky.list_tools()}
        assert {"get_forecast", "get_alerts"} <= names
        forecast = await sky.call_tool("get_forecast", FORECAST)
        assert forecast.is_error is False and forecast.structured_content["location"] == "Linn, KS"
        assert "Tonight:" in forecast.text
        alerts = await sky.call_tool("get_alerts", {"state": "KS"})
        assert alerts.structured_content["alerts"][0]["event"] == "Winter Weather Advisory"
        if transport == "mcp":
            assert sky.protocol_version == ("2026-07-28" if mode == "auto" else "2025-11-25")
        assert (await sky.health())["status"] == "ok"


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_authentication_error(client, transport, mode):
    async with make(client, transport, mode, key="skw_live_wrong") as sky:
        with pytest.raises(AuthenticationError) as info:
            await sky.list_tools()
    assert info.value.status == 401 and info.value.request_id


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_permission_denied(make_client, transport, mode):
    client = await make_client(scopes=["get_alerts"])
    async with make(client, transport, mode) as sky:
        with pytest.raises(PermissionDenied):
            await sky.call_tool("get_forecast", FORECAST)


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_tool_not_found(client, transport, mode):
    async with make(client, transport, mode) as sky:
        with pytest.raises(ToolNotFound):
            await sky.call_tool("nope", {})


async def test_invalid_arguments_over_rest_name_each_field(client):
    async with make(client) as sky:
        with pytest.raises(InvalidArguments) as info:
            await sky.call_tool("get_forecast", {"latitude": 500})
    assert set(info.value.field_errors) == {"latitude", "longitude"}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_invalid_arguments_over_mcp_are_tool_errors(client, mode):
    """From 2025-11-25 the server answers a schema failure as a tool result (SEP-1303)."""
    async with make(client, "mcp", mode) as sky:
        result = await sky.call_tool("get_forecast", {"latitude": 500})
        assert result.is_error and "latitude" in result.text
        with pytest.raises(ToolError) as info:
            await sky.call_tool("get_forecast", {"latitude": 500}, raise_on_error=True)
    assert info.value.result.is_error


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_tool_error_on_request(client, transport, mode):
    async with make(client, transport, mode) as sky:
        result = await sky.call_tool("get_forecast", {"latitude": 51.5074, "longitude": -0.1278})
        assert result.is_error
        with pytest.raises(ToolError, match="only the United States"):
            await sky.call_tool("get_forecast", {"latitude": 51.5074, "longitude": -0.1278}, raise_on_error=True)


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_server_error(client, transport, mode, monkeypatch):
    from skywarden.server.calls.pipeline import ToolPipeline

    async with make(client, transport, mode, retry=RetryPolicy(max_retries=1, backoff_base=0)) as sky:
        if transport == "mcp":
            await sky.list_tools()  # connect first; then the server starts failing
        monkeypatch.setattr(ToolPipeline, "visible_tools", lambda self, principal: 1 / 0)
        monkeypatch.setattr("skywarden.server.mcp.methods.McpMethods.tools_list", lambda *a: 1 / 0)
        with pytest.raises(ServerError) as info:
            await sky.list_tools()
    assert info.value.status == 500


@pytest.mark.parametrize(("transport", "mode"), TRANSPORTS)
async def test_rate_limited_with_retry_after(make_client, make_settings, transport, mode):
    client = await make_client(make_settings(rate_limit="2/hour"))
    async with make(client, transport, mode) as sky:
        with pytest.raises(RateLimited) as info:
            for _ in range(5):
                await sky.list_tools()
    assert info.value.retry_after > 30  # too long to wait: raised, not retried


async def test_429_is_retried_after_retry_after_then_succeeds(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="1/second"))
    waits: list[float] = []
    async with make(client) as sky:
        real_sleep = sky._core._sleep

        async def recording_sleep(seconds: float) -> None:
            waits.append(seconds)
            await real_sleep(seconds)

        sky._core._sleep = recording_sleep
        assert await sky.list_tools()
        assert await sky.list_tools()  # limited, waited what Retry-After said, then allowed
    assert waits and all(wait >= 1.0 and wait == int(wait) for wait in waits)


async def test_401_is_not_retried(client):
    def denied_count() -> int:
        return sum(1 for e in drain_logs() if e.get("event") == "request" and e.get("status") == 401)

    before = denied_count()
    async with make(client, key="skw_live_wrong") as sky:
        sky._core._sleep = None  # any retry would fail loudly
        with pytest.raises(AuthenticationError):
            await sky.list_tools()
    assert denied_count() - before == 1


async def test_timeout_is_a_transport_error(make_client, make_settings, fake_nws):
    fake_nws.set("/points/39.7456,-97.0892", Answer(hang=True))
    client = await make_client(make_settings(upstream_timeout="60"))
    async with make(client, timeouts=Timeouts(total=0.5)) as sky:
        with pytest.raises(TransportError, match="timed out"):
            await sky.call_tool("get_forecast", FORECAST)


async def test_connection_refused_is_a_transport_error():
    url = f"http://127.0.0.1:{free_port()}"
    async with SkywardenClient(url, "skw_live_x", retry=RetryPolicy(max_retries=1, backoff_base=0)) as sky:
        with pytest.raises(TransportError, match="cannot connect"):
            await sky.health()


async def test_the_key_is_never_in_repr_or_errors(client):
    sky = make(client, key=client.api_key)
    assert client.api_key not in repr(sky) and "skw_live_" in repr(sky)
    bad = make(client, key="skw_live_" + "Z" * 50)
    try:
        await bad.list_tools()
    except AuthenticationError as exc:
        assert "Z" * 50 not in str(exc) and "Z" * 50 not in repr(exc.detail)
    await sky.close()
    await bad.close()


async def test_environment_defaults(client, monkeypatch):
    monkeypatch.setenv("SKYWARDEN_URL", url_of(client))
    monkeypatch.setenv("SKYWARDEN_API_KEY", client.api_key)
    async with SkywardenClient() as sky:
        assert await sky.list_tools()


async def test_skywarden_url_with_a_trailing_slash(client, monkeypatch):
    monkeypatch.setenv("SKYWARDEN_URL", url_of(client) + "/")
    monkeypatch.setenv("SKYWARDEN_API_KEY", client.api_key)
    async with SkywardenClient(transport="mcp") as sky:
        assert sky.base_url == url_of(client) and await sky.list_tools()


@pytest.mark.parametrize("wrong", ["http://127.0.0.1:8080/mcp", "http://127.0.0.1:8080/mcp/", "127.0.0.1:8080"])
def test_skywarden_url_that_is_not_a_base_url_is_refused(monkeypatch, wrong):
    monkeypatch.setenv("SKYWARDEN_URL", wrong)
    with pytest.raises(ValueError, match=r"SKYWARDEN_URL .*base URL"):
        SkywardenClient()
    with pytest.raises(ValueError, match=r"SKYWARDEN_URL .*base URL"):
        AdminClient()


def _example():
    import runpy
    from pathlib import Path

    return runpy.run_path(str(Path(__file__).parent.parent / "examples" / "mcp_client.py"))


_EXAMPLE = _example()
base_urls = st.builds(
    lambda scheme, host, port, prefix, tail, slashes: f"{scheme}://{host}{port}{prefix}{tail}{'/' * slashes}",
    st.sampled_from(["http", "https", "ftp", ""]),
    st.sampled_from(["127.0.0.1", "tools.example.com", "[::1]"]),
    st.sampled_from(["", ":8080", ":443"]),
    st.sampled_from(["", "/skywarden", "/a/b", "/mcp-tools"]),
    st.sampled_from(["", "/mcp", "/api"]),
    st.integers(0, 3),
)


@settings(max_examples=200, deadline=None)
@given(url=base_urls)
def test_the_example_and_the_client_read_skywarden_url_alike(url):
    """One meaning: the example's MCP endpoint is the client's base URL plus /mcp, and what one
    refuses the other refuses."""
    mcp_endpoint = _EXAMPLE["mcp_endpoint"]
    try:
        base = resolve_url(url)
    except ValueError:
        with pytest.raises(ValueError):
            mcp_endpoint(url)
        return
    assert mcp_endpoint(url) == base + "/mcp"
    assert not base.endswith(("/", "/mcp"))


async def test_caller_owned_session_is_left_open(client):
    async with aiohttp.ClientSession() as session:
        async with SkywardenClient(url_of(client), client.api_key, session=session) as sky:
            assert await sky.list_tools()
        assert not session.closed


async def test_progress_callback_over_mcp(client):
    seen = []

    async def on_progress(progress, total, message):
        seen.append(progress)

    async with make(client, "mcp") as sky:
        result = await sky.call_tool("test_tool_with_progress", {}, progress=on_progress)
    assert result.text == "Progress tool completed" and seen == [0, 50, 100]


async def test_admin_client(client):
    async with AdminClient(url_of(client), ADMIN_TOKEN) as admin:
        created = await admin.create_key("from admin client", scopes=["get_alerts"])
        SECRETS.add(created["key"])
        assert created["key"].startswith("skw_live_")
        assert any(k["id"] == created["id"] for k in await admin.list_keys(status="active"))
        assert (await admin.update_key(created["id"], name="renamed"))["name"] == "renamed"
        rotated = await admin.rotate_key(created["id"], grace_seconds=0)
        SECRETS.add(rotated["key"])
        await admin.revoke_key(created["id"], reason="test")
        assert (await admin.get_key(created["id"]))["status"] == "revoked"
    async with AdminClient(url_of(client), client.api_key) as wrong:
        with pytest.raises(AuthenticationError):
            await wrong.list_keys()


@pytest.mark.slow
@pytest.mark.parametrize(("transport", "mode"), [("rest", "auto"), ("mcp", "auto"), ("mcp", "legacy")])
async def test_server_restart_is_recovered_on_the_next_call(tmp_path, fake_nws, transport, mode):
    port = free_port()
    env = {
        "SKYWARDEN_DATA_DIR": str(tmp_path),
        "SKYWARDEN_WEATHER_BASE_URL": fake_nws.url,
        "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
        "SKYWARDEN_PORT": str(port),
    }
    server = await start_server(env)
    async with AdminClient(server.url, ADMIN_TOKEN) as admin:
        key = (await admin.create_key("restart"))["key"]
    SECRETS.add(key)
    async with SkywardenClient(server.url, key, transport=transport, mcp_mode=mode) as sky:
        assert (await sky.call_tool("get_alerts", {"state": "KS"})).is_error is False
        assert await server.stop() == 0
        server = await start_server(env)
        try:
            assert (await sky.call_tool("get_alerts", {"state": "KS"})).is_error is False
        finally:
            await server.stop()


@pytest.mark.slow
async def test_mcp_transport_talks_to_the_official_sdk_server():
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tests.support.sdk_server", str(port), stderr=asyncio.subprocess.PIPE
    )
    try:
        assert proc.stderr is not None
        async for line in proc.stderr:  # uvicorn says when it listens
            if b"Uvicorn running on" in line:
                break
        for mode, version in (("auto", "2026-07-28"), ("legacy", "2025-11-25")):
            async with SkywardenClient(f"http://127.0.0.1:{port}", None, transport="mcp", mcp_mode=mode) as sky:
                assert {t.name for t in await sky.list_tools()} == {"add", "shout"}
                result = await sky.call_tool("add", {"a": 2, "b": 3})
                assert result.is_error is False and result.text == "5"
                assert sky.protocol_version == version
    finally:
        proc.terminate()
        await proc.wait()
