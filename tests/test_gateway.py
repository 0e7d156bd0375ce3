"""The gateway against real upstream servers: a server built with the official SDK's MCPServer
(tests/support/upstream_server.py) over stdio and over Streamable HTTP, called through Skywarden
with keys, by REST and by the official SDK client. Each test starts upstream processes: slow."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import sys
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from skywarden.server.appkeys import GATEWAY
from skywarden.server.errors import describe_errors
from skywarden.server.gateway import relisting, schema_worker
from skywarden.server.gateway.schema_compile import compile_schema
from skywarden.server.gateway.tools import argument_errors
from skywarden.server.plugins.schema_errors import error_fields, first_error
from tests.support.admin import create_key
from tests.support.logs import SECRETS, drain_logs
from tests.support.raw_upstream import HEAVY, random_ab
from tests.support.raw_upstream import TOOLS as RAW_TOOLS
from tests.support.upstreams import ROOT, http_upstream_process, stdio_upstream

pytestmark = pytest.mark.slow

CALC_TOKEN = "calc-" + secrets.token_urlsafe(24)
REMOTE_TOKEN = "remote-" + secrets.token_urlsafe(24)
SECRETS.update({CALC_TOKEN, REMOTE_TOKEN})


@pytest.fixture
async def http_upstream():
    async with http_upstream_process() as url:
        yield url


@pytest.fixture
async def gateway(http_upstream, make_client, make_settings, tmp_path, monkeypatch):  # the upstream outlives the server
    """A server with two upstreams: ``calc`` (stdio) and ``remote`` (Streamable HTTP), each given
    a credential from a file or a variable. Its client's key may use every tool."""
    token_file = tmp_path / "calc-token"
    token_file.write_text(CALC_TOKEN + "\n")
    monkeypatch.setenv("REMOTE_TOKEN_FOR_TEST", REMOTE_TOKEN)
    settings = make_settings(
        upstreams={
            "calc": stdio_upstream(env={"CALC_TOKEN": {"file": str(token_file)}}),
            "remote": {
                "url": http_upstream,
                "allow_private": True,
                "headers": {"Authorization": {"env": "REMOTE_TOKEN_FOR_TEST", "prefix": "Bearer "}},
                "identity": True,
            },
        }
    )
    return await make_client(settings)


async def key_for(client, scopes: list[str]) -> dict[str, str]:
    key = await create_key(client.admin, scopes=scopes)
    return {"X-API-Key": key["key"]}


async def call(client, tool: str, arguments: dict, headers: dict | None = None):
    return await client.post(f"/api/mcp/tools/{tool}", json=arguments, headers=headers or {})


@asynccontextmanager
async def sdk_client(client, mode: str = "auto", path: str = "/mcp", **options):
    async with httpx2.AsyncClient(headers={"X-API-Key": client.api_key}) as http:
        transport = streamable_http_client(str(client.make_url(path)), http_client=http)
        async with Client(transport, mode=mode, **options) as mcp:
            yield mcp


async def test_upstream_tools_are_listed_beside_the_built_in_ones_with_their_schemas(gateway):
    tools = {t["name"]: t for t in (await (await gateway.get("/api/mcp/tools")).json())["tools"]}
    assert {"get_forecast", "calc__add", "calc__echo", "remote__add", "remote__headers"} <= set(tools)
    add = tools["calc__add"]
    assert add["description"] == "Add two integers."
    assert add["inputSchema"]["required"] == ["a", "b"]
    assert add["outputSchema"]["properties"]["total"]["type"] == "integer"


@pytest.mark.parametrize("upstream", ["calc", "remote"])
async def test_a_call_reaches_the_upstream_and_its_structured_answer_comes_back(gateway, upstream):
    answer = await call(gateway, f"{upstream}__add", {"a": 2, "b": 40})
    assert answer.status == 200
    body = await answer.json()
    assert body["isError"] is False and body["structuredContent"] == {"total": 42}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_the_sdk_client_calls_upstream_tools_through_skywarden(gateway, mode):
    async with sdk_client(gateway, mode) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"calc__add", "remote__echo", "get_alerts"} <= names
        result = await mcp.call_tool("remote__echo", {"text": "through the gateway"})
        assert result.is_error is False and result.content[0].text == "through the gateway"
        result = await mcp.call_tool("calc__add", {"a": 1, "b": 2})
        assert result.structured_content == {"total": 3}


async def test_progress_from_the_upstream_reaches_the_mcp_client(gateway):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with sdk_client(gateway) as mcp:
        result = await mcp.call_tool("calc__slow_progress", {}, progress_callback=on_progress)
    assert result.content[0].text == "finished"
    assert seen == [(1, 2, "half"), (2, 2, "done")]


async def test_arguments_are_checked_against_the_upstreams_schema_before_they_leave(gateway):
    answer = await call(gateway, "calc__add", {"a": "two", "c": 1})
    assert answer.status == 422
    body = await answer.json()
    assert answer.content_type == "application/problem+json"
    assert "Invalid arguments for calc__add" in body["detail"]
    assert body["detail"] == 'Invalid arguments for calc__add: b: "b" is a required property'  # the first error
    async with sdk_client(gateway) as mcp:  # 2025-11-25 on: a tool error (SEP-1303)
        result = await mcp.call_tool("remote__add", {"a": 1})
    assert result.is_error is True and "Invalid arguments for remote__add" in result.content[0].text


async def test_a_key_scoped_to_one_upstream_neither_sees_nor_calls_another(gateway):
    for scope in ("upstream:remote", "remote__*"):
        headers = await key_for(gateway, [scope])
        listed = await (await gateway.get("/api/mcp/tools", headers=headers)).json()
        names = {t["name"] for t in listed["tools"]}
        assert names and all(name.startswith("remote__") for name in names)
        assert (await call(gateway, "remote__add", {"a": 1, "b": 1}, headers)).status == 200
        refused = await call(gateway, "calc__add", {"a": 1, "b": 1}, headers)
        assert refused.status == 403 and "calc__add" in (await refused.json())["detail"]
        assert (await call(gateway, "get_alerts", {"state": "KS"}, headers)).status == 403


async def test_a_key_scoped_to_one_upstream_tool_gets_only_that_tool(gateway):
    headers = await key_for(gateway, ["calc__echo"])
    listed = await (await gateway.get("/api/mcp/tools", headers=headers)).json()
    assert [t["name"] for t in listed["tools"]] == ["calc__echo"]
    assert (await call(gateway, "calc__add", {"a": 1, "b": 1}, headers)).status == 403


async def test_a_revoked_key_stops_at_once(gateway):
    key = await create_key(gateway.admin, scopes=["upstream:calc"])
    headers = {"X-API-Key": key["key"]}
    assert (await call(gateway, "calc__echo", {"text": "hi"}, headers)).status == 200
    assert (await gateway.admin.delete(f"/api/admin/keys/{key['id']}")).status in (200, 204)
    assert (await call(gateway, "calc__echo", {"text": "hi"}, headers)).status == 401


async def test_the_callers_credential_never_reaches_the_upstream_only_its_own(gateway):
    body = await (await call(gateway, "remote__headers", {})).json()
    seen = {name.lower(): value for name, value in body["structuredContent"].items()}
    assert seen["authorization"] == f"Bearer {REMOTE_TOKEN}"
    assert gateway.api_key not in str(seen) and "x-api-key" not in seen
    assert seen["user-agent"].startswith("skywarden-gateway/")
    env = await (await call(gateway, "calc__environment", {"name": "CALC_TOKEN"})).json()
    assert env["content"][0]["text"] == CALC_TOKEN
    leaked = [line for line in map(str, drain_logs()) if CALC_TOKEN in line or REMOTE_TOKEN in line]
    assert leaked == []


async def test_an_upstream_with_identity_learns_who_calls_and_no_one_else_does(gateway):
    caller = await (await call(gateway, "remote__caller", {})).json()
    assert caller["structuredContent"] == {"kind": "key", "id": gateway.key_id, "name": "test key"}
    headers = await (await call(gateway, "remote__headers", {}, {"Skywarden-Caller": "key:key_spoofed"})).json()
    seen = {name.lower(): value for name, value in headers["structuredContent"].items()}
    assert seen["skywarden-caller"] == f"key:{gateway.key_id}"  # the caller's own header never goes upstream
    assert (await (await call(gateway, "calc__caller", {})).json())["structuredContent"] == {}  # identity off


@pytest.mark.parametrize("tool", ["calc__add", "remote__add"])
async def test_integers_beyond_64_bits_pass_through_both_ways_exactly(gateway, tool):
    answer = await call(gateway, tool, {"a": 2**70, "b": 1})
    body = await answer.json()
    assert answer.status == 200 and body["isError"] is False, body
    assert body["structuredContent"] == {"total": 2**70 + 1}
    metrics = await (await gateway.admin.get("/metrics")).text()
    assert f'skywarden_gateway_call_errors_total{{upstream="{tool.split("__")[0]}"}} 0.0' in metrics
    assert f'skywarden_tool_calls_total{{outcome="ok",tool="{tool}"}} 1.0' in metrics


async def test_an_answer_too_large_to_read_fails_its_call_at_once(gateway):
    """4,300 nines twice are readable; their sum (4,301 digits) is not: the stdio upstream's
    answer fails the call at once, not at its time-out."""
    nines = int("9" * 4300)
    answer = await (await call(gateway, "calc__add", {"a": nines, "b": nines})).json()
    assert answer["isError"] is True
    assert answer["content"][0]["text"].startswith("The upstream calc answered with something Skywarden cannot pass on")


async def test_a_number_too_large_for_a_float_is_refused_before_it_leaves(gateway):
    refused = await gateway.post(
        "/api/mcp/tools/calc__add", data=b'{"a": 1e400, "b": 1}', headers={"Content-Type": "application/json"}
    )
    body = await refused.json()
    assert refused.status == 400 and "the number 1e400 is too large" in body["detail"]


async def test_an_upstream_error_is_a_tool_error(gateway):
    body = await (await call(gateway, "calc__fail", {})).json()
    assert body["isError"] is True and body["content"][0]["text"] == "Error executing tool fail"  # the upstream's text


async def test_an_answer_over_the_upstreams_limit_is_refused(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"calc": stdio_upstream(max_result_bytes=4096)}))
    assert (await (await call(client, "calc__big", {"size": 1000})).json())["isError"] is False
    body = await (await call(client, "calc__big", {"size": 10_000})).json()
    assert body["isError"] is True and "more than its limit of 4096" in body["content"][0]["text"]


async def test_a_hanging_upstream_call_ends_at_its_timeout(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"calc": stdio_upstream(timeout=2)}))
    body = await (await call(client, "calc__hang", {})).json()
    assert body["isError"] is True
    assert body["content"][0]["text"] == "The upstream calc did not answer within 2 s."
    assert (await (await call(client, "calc__echo", {"text": "still here"})).json())["isError"] is False


async def test_an_upstream_killed_mid_call_gives_a_clear_error_and_comes_back(gateway):
    connection = gateway.server.app[GATEWAY].connections["calc"]
    first_pid = (await (await call(gateway, "calc__pid", {})).json())["structuredContent"]["result"]
    body = await (await call(gateway, "calc__crash", {})).json()
    assert body["isError"] is True
    assert body["content"][0]["text"] == "The upstream calc failed during the call; it is being reconnected."
    down = await (await call(gateway, "calc__echo", {"text": "x"})).json()
    assert down["isError"] is True and down["content"][0]["text"].startswith("The upstream calc is unavailable")
    ready = await (await gateway.get("/api/health/ready")).json()
    assert ready["upstreams"]["calc"] == "down" and ready["status"] == "ready"
    await asyncio.wait_for(connection.wait_for("up", connects=2), 30)
    again = await (await call(gateway, "calc__pid", {})).json()
    assert again["isError"] is False and again["structuredContent"]["result"] != first_pid
    assert (await (await gateway.get("/api/health/ready")).json())["upstreams"]["calc"] == "up"


async def test_a_tools_list_changed_notification_refreshes_the_list(gateway):
    connection = gateway.server.app[GATEWAY].connections["calc"]
    assert (await call(gateway, "calc__newcomer", {})).status == 404
    listed = asyncio.Event()
    publish = connection.publish

    def watching(config, tools):
        publish(config, tools)
        if any(t.name == "calc__newcomer" for t in tools):
            listed.set()

    connection.publish = watching
    assert (await (await call(gateway, "calc__grow", {"name": "newcomer"})).json())["isError"] is False
    await asyncio.wait_for(listed.wait(), 30)
    body = await (await call(gateway, "calc__newcomer", {})).json()
    assert body["content"][0]["text"] == "I am newcomer"
    async with sdk_client(gateway) as mcp:
        assert "calc__newcomer" in {t.name for t in (await mcp.list_tools()).tools}


async def test_an_upstreams_list_change_reaches_a_handshake_client_on_its_session_stream(gateway):
    """The official client, legacy mode: it opens the session's GET stream by itself."""
    heard = asyncio.Event()

    async def on_message(message):
        if getattr(getattr(message, "root", message), "method", None) == "notifications/tools/list_changed":
            heard.set()

    async with sdk_client(gateway, mode="legacy", message_handler=on_message) as mcp:
        assert mcp.protocol_version == "2025-11-25"
        await mcp.call_tool("calc__grow", {"name": "latecomer"})
        await asyncio.wait_for(heard.wait(), 30)
        assert "calc__latecomer" in {t.name for t in (await mcp.list_tools()).tools}


async def test_an_upstreams_list_change_reaches_a_2026_client_that_listens(gateway):
    async with sdk_client(gateway) as mcp:
        assert mcp.protocol_version == "2026-07-28"
        async with mcp.listen(tools_list_changed=True) as subscription:
            assert subscription.honored.tools_list_changed is True
            await mcp.call_tool("calc__grow", {"name": "listener"})
            event = await asyncio.wait_for(anext(subscription), 30)
            assert type(event).__name__ == "ToolsListChanged"
        assert "calc__listener" in {t.name for t in (await mcp.list_tools()).tools}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_upstreams_own_endpoint_serves_its_tools_by_their_own_names(gateway, mode):
    drain_logs()  # what earlier calls left
    async with sdk_client(gateway, mode, path="/mcp/u/calc") as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"add", "echo"} <= names and not any("__" in n or n.startswith("get_") for n in names)
        result = await mcp.call_tool("add", {"a": 2, "b": 40})
        assert result.structured_content == {"total": 42}
        with pytest.raises(Exception, match="Unknown tool"):
            await mcp.call_tool("get_forecast_x", {})
    # this test's key only: another test's audit line may be written after this test began
    ours = [e for e in drain_logs() if gateway.api_key.startswith(str(e.get("key_prefix")))]
    calls = [e for e in ours if e.get("audit") and e.get("mcp_method") == "tools/call"]
    named = {(e["tool"], e.get("upstream")) for e in calls if e["path"] == "/mcp/u/calc"}
    assert named == {("calc__add", "calc"), ("get_forecast_x", None)}  # a refused name as sent: no other tool's


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_an_upstreams_own_endpoint_names_its_tools_by_their_own_names_in_refusals(gateway, mode):
    from mcp.shared.exceptions import MCPError

    key = await create_key(gateway.admin, scopes=["calc__echo"])
    async with httpx2.AsyncClient(headers={"X-API-Key": key["key"]}) as http:
        transport = streamable_http_client(str(gateway.make_url("/mcp/u/calc")), http_client=http)
        async with Client(transport, mode=mode) as mcp:
            with pytest.raises(MCPError) as unknown:
                await mcp.call_tool("nope", {})
            with pytest.raises(MCPError) as forbidden:
                await mcp.call_tool("add", {"a": 1, "b": 2})
            invalid = await mcp.call_tool("echo", {"text": 5})
    assert unknown.value.error.message == "Unknown tool: nope (the upstream calc does not offer it)"
    assert forbidden.value.error.message == "This API key may not use the tool 'add'."
    assert invalid.is_error and invalid.content[0].text.startswith("Invalid arguments for echo: ")
    assert "calc__" not in str([unknown.value.error, forbidden.value.error, invalid.content])


async def test_rate_limits_and_cost_apply_to_upstream_calls(gateway):
    key = await create_key(gateway.admin, scopes=["upstream:calc"], rate_limit="2/minute")
    headers = {"X-API-Key": key["key"]}
    assert (await call(gateway, "calc__echo", {"text": "1"}, headers)).status == 200
    assert (await call(gateway, "calc__echo", {"text": "2"}, headers)).status == 200
    refused = await call(gateway, "calc__echo", {"text": "3"}, headers)
    assert refused.status == 429 and "Retry-After" in refused.headers


async def test_metrics_and_the_audit_event_name_the_upstream(gateway):
    await call(gateway, "remote__echo", {"text": "counted"})
    metrics = await (await gateway.admin.get("/metrics")).text()
    assert 'skywarden_gateway_up{upstream="calc"} 1.0' in metrics
    assert 'skywarden_gateway_up{upstream="remote"} 1.0' in metrics
    assert 'skywarden_gateway_calls_total{upstream="remote"}' in metrics
    events = [e for e in drain_logs() if e.get("audit") and e.get("tool") == "remote__echo"]
    assert events and events[-1]["upstream"] == "remote" and events[-1]["status"] == 200


async def test_an_upstream_that_cannot_start_leaves_the_server_up_and_says_so(make_client, make_settings):
    settings = make_settings(
        upstreams={
            "broken": {"command": "/nonexistent/mcp-server", "connect_timeout": 5},
            "off": {"command": "x", "enabled": False},
        }
    )
    client = await make_client(settings, scopes=["*"])
    ready = await (await client.get("/api/health/ready")).json()
    assert ready["status"] == "ready" and ready["upstreams"] == {"broken": "down", "off": "disabled"}
    key = await create_key(client.admin, scopes=["broken__run", "upstream:off"])  # grantable before listed
    assert key["scopes"] == ["broken__run", "upstream:off"]


@pytest.mark.parametrize("given", ["text", "env", "file"])
async def test_an_upstreams_credential_it_prints_as_it_dies_is_shown_nowhere(
    make_client, make_settings, monkeypatch, tmp_path, given
):
    token = f"dying-secret-{secrets.token_hex(8)}"
    SECRETS.add(token)
    source = {"text": token, "env": {"env": "DYING_TOKEN"}, "file": {"file": str(tmp_path / "token")}}[given]
    monkeypatch.setenv("DYING_TOKEN", token)
    (tmp_path / "token").write_text(token + "\n")
    # its last words well before its pipes close, so that they are read before its end is noted
    code = "import os, sys, time; print('token is', os.environ['UP_TOKEN'], file=sys.stderr); time.sleep(0.3)"
    upstream = {"command": sys.executable, "args": ["-c", code], "env": {"UP_TOKEN": source}, "connect_timeout": 5}
    client = await make_client(make_settings(upstreams={"dying": upstream}))
    connection = client.server.app[GATEWAY].connections["dying"]
    await asyncio.wait_for(connection.first_attempt.wait(), 30)
    assert connection.figures.state == "down"
    assert "token is [REDACTED]" in connection.figures.last_error and token not in connection.figures.last_error
    shown = await (await client.admin.get("/api/admin/upstreams/dying")).text()
    assert "token is [REDACTED]" in shown and token not in shown
    unavailable = [e for e in drain_logs() if e.get("event") == "upstream unavailable" and e.get("upstream") == "dying"]
    assert unavailable and all(token not in json.dumps(e) for e in unavailable)
    # once per attempt: the end of its connection, not again as the SDK's error that follows it
    assert all(e["reason"].startswith("the upstream's connection ended (its last line") for e in unavailable)


async def test_a_private_address_needs_allow_private(http_upstream, make_client, make_settings):
    settings = make_settings(upstreams={"remote": {"url": http_upstream, "connect_timeout": 5}})
    client = await make_client(settings)
    assert (await (await client.get("/api/health/ready")).json())["upstreams"] == {"remote": "down"}
    warnings = [e for e in drain_logs() if e.get("event") == "upstream unavailable" and e.get("upstream") == "remote"]
    assert "127.0.0.1 is not a public address" in warnings[-1]["reason"]


async def test_an_sse_upstream_works_too(make_client, make_settings):
    async with http_upstream_process("sse") as url:
        client = await make_client(
            make_settings(upstreams={"old": {"url": url, "transport": "sse", "allow_private": True}})
        )
        body = await (await call(client, "old__add", {"a": 5, "b": 5})).json()
    assert body["structuredContent"] == {"total": 10}


async def test_stopping_the_server_stops_its_stdio_upstreams(make_server, make_settings):
    server = await make_server(make_settings(upstreams={"calc": stdio_upstream()}))
    connection = server.app[GATEWAY].connections["calc"]
    result = await connection.call("pid", {}, None)
    pid = result.structured["result"]
    assert _alive(pid)
    await server.close()
    assert not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purpose
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split(")")[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def raw_upstream(*args: str) -> dict:
    return {"command": sys.executable, "args": ["-m", "tests.support.raw_upstream", *args], "cwd": str(ROOT)}


@pytest.fixture
async def raw(make_client, make_settings):
    """A hand-written upstream that misbehaves (tests/support/raw_upstream.py)."""
    client = await make_client(make_settings(upstreams={"raw": raw_upstream()}))
    client.connection = client.server.app[GATEWAY].connections["raw"]
    return client


async def test_an_upstream_announcing_a_change_after_every_listing_is_not_listed_back_to_back(
    make_client, make_settings, monkeypatch
):
    monkeypatch.setattr(relisting, "RELIST_INTERVAL", 3600)  # the next listing it asks for: not in this test
    client = await make_client(make_settings(upstreams={"flap": raw_upstream("flap")}))

    async def listings() -> int:
        return int((await (await call(client, "flap__listings", {})).json())["content"][0]["text"])

    while await listings() < 2:  # the listing at connect, and the one its first announcement asks for
        pass
    for _ in range(20):  # back to back, these 20 round trips saw dozens more (each announces a change)
        assert await listings() == 2
    left_out = [e for e in drain_logs() if e.get("event") == "upstream tool left out" and e.get("upstream") == "flap"]
    assert [e["tool"] for e in left_out] == ["bad name!"]  # said once, not at every listing


async def test_a_malformed_tool_is_left_out_and_the_rest_of_its_upstream_offered(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"some": raw_upstream("invalid")}))
    connection = client.server.app[GATEWAY].connections["some"]
    assert connection.figures.state == "up" and connection.figures.connects == 1
    names = {t["name"] for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}
    assert "some__echo" in names and "some__odd" not in names, " ".join(sorted(names))
    assert (await (await call(client, "some__echo", {"text": "still here"})).json())["isError"] is False
    said = [e for e in drain_logs() if (e.get("event"), e.get("upstream")) == ("upstream tool left out", "some")]
    assert [e["tool"] for e in said] == ["odd", "(item 14 of the listing: no object)"]
    assert said[0]["reason"].startswith("it is not valid MCP: inputSchema.type: ")


async def test_a_listing_the_sdk_refuses_is_reported_as_such_not_as_the_connection_ending(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"odd": raw_upstream("notools")}))
    connection = client.server.app[GATEWAY].connections["odd"]
    assert connection.figures.state == "down"
    assert connection.figures.last_error == "its tools/list answer holds no list of tools"
    said = [e["reason"] for e in drain_logs() if (e.get("event"), e.get("upstream")) == ("upstream unavailable", "odd")]
    assert said and said[0] == connection.figures.last_error, said  # not "the upstream's connection ended"


async def test_an_answer_against_its_own_output_schema_is_a_tool_error_and_restarts_nothing(raw):
    body = await (await call(raw, "raw__outs", {})).json()
    assert body["isError"] is True and "does not match its output schema" in body["content"][0]["text"]
    assert (await (await call(raw, "raw__echo", {"text": "same process"})).json())["isError"] is False
    assert raw.connection.figures.connects == 1 and raw.connection.figures.state == "up"


async def test_checks_that_may_be_slow_run_beside_the_server_and_say_the_same(make_client, make_settings, monkeypatch):
    """The tool ``heavy`` matches its string 40 times against a pattern that costs about 250 ns a
    byte: anything over a few hundred bytes is checked in the schema worker (gateway.schema_checks)."""
    monkeypatch.setattr(schema_worker, "CHECK_SECONDS", 0.5)
    client = await make_client(make_settings(upstreams={"heavy": raw_upstream("heavy")}))
    worker = client.server.app[GATEWAY].connections["heavy"].schema_worker
    refused = await call(client, "heavy__heavy", {"s": random_ab(2000) + "c"})
    assert refused.status == 422 and worker.started == 1
    here = first_error(compile_schema(HEAVY["inputSchema"], "input schema"), {"s": random_ab(2000) + "c"})
    assert here is not None and here.kind.__class__.__name__ == "Pattern"
    expected = describe_errors(argument_errors(error_fields(here)))  # what the server would have said
    assert (await refused.json())["detail"] == f"Invalid arguments for heavy__heavy: {expected}"
    passed = await (await call(client, "heavy__heavy", {"s": random_ab(2000)})).json()
    assert passed["isError"] is False and passed["structuredContent"] == {"s": random_ab(2000)}
    # 600 KB of result: about 6 s to check, past the time limit (in the server, the loop held as long)
    body = await (await call(client, "heavy__heavy", {"size": 600_000})).json()
    assert body["isError"] is True
    assert body["content"][0]["text"] == (
        "The result of heavy__heavy could not be checked against its output schema: the check took longer than 0.5 s."
    )
    said = [e for e in drain_logs() if e.get("event") == "upstream result not checked"]
    assert said and said[0]["tool"] == "heavy__heavy"
    again = await (await call(client, "heavy__heavy", {"s": random_ab(2000)})).json()  # a new process
    assert again["isError"] is False and worker.started == 2


async def test_a_key_calling_a_tool_checked_beside_the_server_in_all_its_slots_is_never_refused(
    make_client, make_settings
):
    """Every call of ``heavy`` goes to the schema worker, one check at a time: a key's calls at
    once, as many as its concurrency slots let it make, wait their turns there, none refused;
    and so do the calls of many keys at once."""
    settings = make_settings(upstreams={"heavy": raw_upstream("heavy")}, max_concurrent_calls=12)
    client = await make_client(settings)
    calls = [call(client, "heavy__heavy", {"s": random_ab(2000)}) for _ in range(settings.max_concurrent_calls)]
    bodies = [await answer.json() for answer in await asyncio.gather(*calls)]
    assert [body.get("isError") for body in bodies] == [False] * settings.max_concurrent_calls, bodies[0]

    # ten keys at once, each in all its slots: 120 checks waiting their turns, none refused
    keys = [(await create_key(client.admin, scopes=["*"]))["key"] for _ in range(10)]
    calls = [
        call(client, "heavy__heavy", {"s": random_ab(100)}, headers={"X-API-Key": key})
        for key in keys
        for _ in range(settings.max_concurrent_calls)
    ]
    bodies = [await answer.json() for answer in await asyncio.gather(*calls)]
    assert sum(body.get("isError") is False for body in bodies) == len(calls), bodies[0]


async def test_an_upstream_claiming_a_closed_connection_is_checked_not_restarted(raw):
    for _ in range(3):
        body = await (await call(raw, "raw__closed", {})).json()
        assert body["content"][0]["text"] == "The upstream raw refused the call: Connection closed"
    probe = raw.connection._probe
    if probe is not None:
        await probe  # the liveness check it made: the upstream answered
    assert raw.connection.figures.connects == 1 and raw.connection.figures.state == "up"


async def test_progress_from_an_upstream_is_bounded(raw):
    seen = []

    async def on_progress(progress, total, message):
        seen.append(message)

    async with sdk_client(raw) as mcp:
        result = await mcp.call_tool("raw__flood", {}, progress_callback=on_progress)
    assert result.content[0].text == "flooded"
    assert len(seen) <= 1000 and all(len(m) <= 1000 for m in seen)


async def test_a_stdio_call_is_written_beside_the_sdks_session_and_cancelled_when_it_times_out(
    make_client, make_settings
):
    client = await make_client(make_settings(upstreams={"raw": {**raw_upstream(), "timeout": 1}}))
    sent = json.loads((await (await call(client, "raw__request_id", {})).json())["content"][0]["text"])
    assert isinstance(sent, str) and sent.startswith("skywarden-")  # Skywarden's id, not the SDK's
    body = await (await call(client, "raw__hold", {})).json()
    assert body["content"][0]["text"] == "The upstream raw did not answer within 1 s."
    cancelled = json.loads((await (await call(client, "raw__cancelled", {})).json())["content"][0]["text"])
    assert len(cancelled) == 1 and cancelled[0].startswith("skywarden-") and cancelled[0] != sent


async def test_a_stdio_line_over_the_bound_is_skipped_as_it_arrives_and_its_call_fails(raw):
    for tool in ("raw__long", "raw__long_last"):  # whether the line names its call first or last
        body = await (await call(raw, tool, {})).json()
        assert body["content"][0]["text"] == "The upstream raw answered with more than its limit of 1048576 bytes."
    body = await (await call(raw, "raw__long_note", {})).json()
    assert body["content"][0]["text"] == "after the long line"
    assert raw.connection.figures.connects == 1 and raw.connection.figures.state == "up"


async def test_calls_to_a_stdio_upstream_that_stops_reading_are_refused_not_buffered(
    make_client, make_settings, monkeypatch
):
    from skywarden.server.gateway import stdio_pipes

    monkeypatch.setattr(stdio_pipes, "MAX_UNREAD", 64 * 1024)
    client = await make_client(make_settings(upstreams={"raw": {**raw_upstream(), "timeout": 2}}))
    big = {"text": "x" * 100_000}  # larger than the bound alone: refused only behind unread input
    assert (await (await call(client, "raw__echo", big)).json())["content"][0]["text"] == big["text"]
    assert (await (await call(client, "raw__deaf", {})).json())["content"][0]["text"] == "deaf now"
    connection = client.server.app[GATEWAY].connections["raw"]
    errors = connection.figures.errors
    responses = await asyncio.gather(*(call(client, "raw__echo", big) for _ in range(6)))
    texts = [(await r.json())["content"][0]["text"] for r in responses]
    refused = "The upstream raw has not read the calls sent before this one; it was not sent. Try again shortly."
    timed_out = "The upstream raw did not answer within 2 s."
    assert refused in texts and set(texts) <= {refused, timed_out}
    # a call not sent is no failure of the connection's: only those that timed out count, too
    # few to have the connection checked, so the busy upstream is not restarted under its calls
    assert connection.figures.errors - errors == texts.count(timed_out) < 3
    assert connection.figures.connects == 1 and connection.figures.state == "up"
    said = [e for e in drain_logs() if e.get("event") == "upstream call not sent" and e.get("upstream") == "raw"]
    assert len(said) == texts.count(refused) and all("has not read" in e["error"] for e in said)


async def test_an_upstream_is_answered_its_ping(raw):
    body = await (await call(raw, "raw__pings", {})).json()
    assert json.loads(body["content"][0]["text"]) == {"jsonrpc": "2.0", "id": "ping-1", "result": {}}


async def test_requests_from_an_upstream_that_never_reads_the_answers_are_held_a_few_at_a_time(raw):
    """3,000 requests, then the upstream reads nothing more: the SDK's session answers at most
    MAX_UNANSWERED of them at a time, each in a task that waits for the pipe; the rest are dropped."""
    from skywarden.server.gateway.upstream_requests import MAX_UNANSWERED

    before = len(asyncio.all_tasks())
    body = await (await call(raw, "raw__asks", {})).json()
    assert body["content"][0]["text"] == "asked"  # written after the requests: every one was read
    assert len(asyncio.all_tasks()) - before <= MAX_UNANSWERED + 5
    assert raw.connection.figures.state == "up"


async def test_the_tools_option_offers_those_named_and_warns_of_a_name_the_upstream_lacks(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"raw": {**raw_upstream(), "tools": ["echo", "ecko"]}}))
    names = [
        t["name"] for t in (await (await client.get("/api/mcp/tools")).json())["tools"] if t["name"].startswith("raw")
    ]
    assert names == ["raw__echo"]
    left_out = await (await client.post("/api/mcp/tools/raw__outs", json={})).json()
    assert left_out["detail"] == "Unknown tool: raw__outs (the upstream raw's tools option leaves it out)"
    events = [e for e in drain_logs() if e.get("upstream") == "raw"]
    assert [e["tools"] for e in events if e.get("event") == "upstream connected"][-1] == 1
    assert [e["tools"] for e in events if "does not offer tools" in e.get("event", "")][-1] == ["ecko"]


async def test_a_tool_larger_than_the_bound_is_left_out_and_the_rest_listed(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"raw": raw_upstream("many")}))
    names = {t["name"] for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}
    assert "raw__huge" not in names and {"raw__echo", "raw__n0", "raw__n19"} <= names
    left_out = [e for e in drain_logs() if e.get("event") == "upstream tool left out" and e.get("upstream") == "raw"]
    assert left_out[0]["tool"] == "huge" and "more than 131072" in left_out[0]["reason"]


@pytest.mark.parametrize("bound", ["MAX_TOOLS", "MAX_LISTING_BYTES"])
async def test_a_listing_ends_at_its_bound_in_tools_or_bytes(make_client, make_settings, monkeypatch, bound):
    from skywarden.server.gateway import connection
    from skywarden.server.jsonutil import dumps, loads_exact

    monkeypatch.setattr(connection, bound, 15 if bound == "MAX_TOOLS" else 1000)
    client = await make_client(make_settings(upstreams={"raw": raw_upstream("many")}))
    kept = loads_exact(client.server.app[GATEWAY].connections["raw"]._listed_json)
    names = [tool["name"] for tool in kept]
    listed = [t["name"] for t in RAW_TOOLS] + [f"n{i}" for i in range(20)]  # "huge" is left out for its size
    assert names == listed[: len(names)] and len(names) < len(listed)
    if bound == "MAX_TOOLS":
        assert len(names) == 15
    else:
        assert sum(len(dumps(tool)) for tool in kept) <= 1000
    warned = [e for e in drain_logs() if e.get("event") == "upstream tools past the bound left out"]
    assert warned and warned[-1]["kept"] == len(names)


async def test_a_stdio_upstream_that_ignores_its_input_ending_is_still_stopped(make_server, make_settings):
    server = await make_server(make_settings(upstreams={"raw": raw_upstream("stubborn")}))
    connection = server.app[GATEWAY].connections["raw"]
    await connection.wait_for("up")
    guard = [int(p) for p in open(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read().split()]
    upstreams = [int(p) for g in guard for p in open(f"/proc/{g}/task/{g}/children").read().split()]
    assert upstreams
    await asyncio.wait_for(server.close(), 30)
    assert not any(_alive(pid) for pid in upstreams)


async def test_a_dead_stdio_upstream_is_noticed_at_once(gateway):
    connection = gateway.server.app[GATEWAY].connections["calc"]
    pid = (await (await call(gateway, "calc__pid", {})).json())["structuredContent"]["result"]
    os.kill(pid, 9)
    await asyncio.wait_for(connection.wait_for("down"), 10)  # well before any liveness check
    assert connection.figures.last_error == "the upstream's connection ended (it was ended by SIGKILL)"
    await asyncio.wait_for(connection.wait_for("up", connects=2), 30)


async def test_a_stdio_upstream_that_exits_is_reported_with_its_status(make_client, make_settings):
    script = "import sys; print('nothing to serve', file=sys.stderr); sys.exit(3)"
    client = await make_client(make_settings(upstreams={"gone": {"command": sys.executable, "args": ["-c", script]}}))
    reason = client.server.app[GATEWAY].connections["gone"].figures.last_error
    assert (
        reason == "the upstream's connection ended (its last line on stderr: nothing to serve; it exited with status 3)"
    )


async def test_a_remote_upstream_is_pinned_to_the_address_checked(http_upstream, make_client, make_settings):
    url = http_upstream.replace("127.0.0.1", "localhost")
    settings = make_settings(
        upstreams={"remote": {"url": url, "connect_timeout": 5}},
        upstream_allowed_networks="127.0.0.0/8,::1/128",
    )
    client = await make_client(settings)
    body = await (await call(client, "remote__headers", {})).json()
    seen = {name.lower(): value for name, value in body["structuredContent"].items()}
    assert seen["host"] == url.split("/")[2]  # the name, though the connection went to the address


async def test_the_pin_keeps_the_name_for_host_and_tls():
    from skywarden.server.gateway.transports import pin_address

    request = httpx2.Request("POST", "https://mcp.example.com:8443/mcp", content=b"{}")
    await pin_address("mcp.example.com", "203.0.113.7")(request)
    assert str(request.url) == "https://203.0.113.7:8443/mcp"
    assert request.headers["Host"] == "mcp.example.com:8443"
    assert request.extensions["sni_hostname"] == "mcp.example.com"
    other = httpx2.Request("POST", "https://elsewhere.example/mcp")
    await pin_address("mcp.example.com", "203.0.113.7")(other)
    assert other.url.host == "elsewhere.example"
    international = httpx2.Request("POST", "https://XN--BCHER-KVA.example/mcp")  # httpx's .host: bücher.example
    await pin_address("xn--bcher-kva.example", "203.0.113.7")(international)
    assert str(international.url) == "https://203.0.113.7/mcp"
