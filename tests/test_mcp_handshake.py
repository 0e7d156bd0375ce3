"""Handshake-era revisions on the wire (2025-03-26, 2025-06-18, 2025-11-25), case by case."""

from __future__ import annotations

import asyncio
import re

import pytest

from skywarden.server.mcp.sessions import MemorySessionStore
from skywarden.server.plugins.registry import discover_tools
from tests.support import plugin_samples
from tests.support.mcp_helpers import open_session, post, rpc, session_headers
from tests.support.plugin_samples import fake_distribution

VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25"]
FORECAST = {"latitude": 39.7456, "longitude": -97.0892}


@pytest.mark.parametrize("version", VERSIONS)
async def test_initialize_echoes_a_supported_version_and_opens_a_session(client, version):
    resp = await post(client, rpc("initialize", {"protocolVersion": version, "capabilities": {}}))
    assert resp.status == 200
    body = await resp.json()
    assert body["result"]["protocolVersion"] == version
    assert body["result"]["capabilities"] == {"tools": {"listChanged": True}}
    assert body["result"]["serverInfo"]["name"] == "skywarden"
    assert "resultType" not in body["result"]
    assert re.fullmatch(r"[\x21-\x7e]{32,}", resp.headers["Mcp-Session-Id"])


async def test_initialize_with_unknown_version_answers_the_newest(client):
    resp = await post(client, rpc("initialize", {"protocolVersion": "1999-01-01", "capabilities": {}}))
    assert (await resp.json())["result"]["protocolVersion"] == "2025-11-25"


async def test_initialize_without_protocol_version_is_invalid_params(client):
    resp = await post(client, rpc("initialize", {"capabilities": {}}, id=7))
    assert resp.status == 400
    body = await resp.json()
    assert body["error"]["code"] == -32602 and body["id"] == 7


@pytest.mark.parametrize("version", VERSIONS)
async def test_ping(client, version):
    session = await open_session(client, version)
    resp = await post(client, rpc("ping", id="p1"), session_headers(session, version))
    assert await resp.json() == {"jsonrpc": "2.0", "id": "p1", "result": {}}


@pytest.mark.parametrize("version", VERSIONS)
async def test_tools_list_shape_per_revision(client, version):
    session = await open_session(client, version)
    resp = await post(client, rpc("tools/list"), session_headers(session, version))
    tools = {t["name"]: t for t in (await resp.json())["result"]["tools"]}
    forecast = tools["get_forecast"]
    assert forecast["inputSchema"]["required"] == ["latitude", "longitude"]
    if version == "2025-03-26":
        assert "outputSchema" not in forecast and "title" not in forecast
    else:
        assert forecast["outputSchema"]["type"] == "object" and forecast["title"] == "Weather forecast"


@pytest.mark.parametrize("version", VERSIONS)
async def test_tools_call_shape_per_revision(client, version):
    session = await open_session(client, version)
    resp = await post(
        client, rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST}), session_headers(session, version)
    )
    result = (await resp.json())["result"]
    assert result["isError"] is False and result["content"][0]["type"] == "text"
    assert ("structuredContent" in result) is (version != "2025-03-26")
    assert "resultType" not in result


@pytest.mark.parametrize(("version", "as_result"), [("2025-03-26", False), ("2025-06-18", False), ("2025-11-25", True)])
async def test_invalid_arguments_per_revision(client, version, as_result):
    session = await open_session(client, version)
    message = rpc("tools/call", {"name": "get_forecast", "arguments": {"latitude": "x"}}, id=41)
    resp = await post(client, message, session_headers(session, version))
    assert resp.status == 200
    body = await resp.json()
    if as_result:  # SEP-1303: a tool execution error the model can read and fix
        assert body["result"]["isError"] is True
        text = body["result"]["content"][0]["text"]
        assert "latitude: Not a valid number." in text and "longitude: Missing data" in text
    else:
        assert body["error"]["code"] == -32602 and body["id"] == 41
        fields = {e["field"] for e in body["error"]["data"]["errors"]}
        assert fields == {"latitude", "longitude"}


async def test_unknown_tool_is_invalid_params(client):
    session = await open_session(client)
    resp = await post(client, rpc("tools/call", {"name": "nope"}, id=3), session_headers(session, "2025-11-25"))
    body = await resp.json()
    assert body["error"]["code"] == -32602 and "Unknown tool: nope" in body["error"]["message"] and body["id"] == 3


async def test_tools_call_without_a_name(client):
    session = await open_session(client)
    resp = await post(client, rpc("tools/call", {"arguments": {}}), session_headers(session, "2025-11-25"))
    assert (await resp.json())["error"]["code"] == -32602


async def test_unknown_method(client):
    session = await open_session(client)
    resp = await post(client, rpc("resources/list", id=9), session_headers(session, "2025-11-25"))
    body = await resp.json()
    assert body["error"]["code"] == -32601 and body["id"] == 9


async def test_second_initialize_in_a_session_is_refused(client):
    session = await open_session(client)
    resp = await post(
        client, rpc("initialize", {"protocolVersion": "2025-11-25"}), session_headers(session, "2025-11-25")
    )
    assert (await resp.json())["error"]["code"] == -32600


async def test_missing_session_is_400(client):
    resp = await post(client, rpc("tools/list"), {"MCP-Protocol-Version": "2025-11-25"})
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == -32600


async def test_unknown_session_is_404(client):
    resp = await post(client, rpc("tools/list"), session_headers("not-a-session", "2025-11-25"))
    assert resp.status == 404


async def test_delete_ends_the_session(client):
    session = await open_session(client)
    resp = await client.delete("/mcp", headers=session_headers(session, "2025-11-25"))
    assert resp.status == 204
    resp = await post(client, rpc("tools/list"), session_headers(session, "2025-11-25"))
    assert resp.status == 404
    assert (await client.delete("/mcp", headers=session_headers(session, "2025-11-25"))).status == 404
    assert (await client.delete("/mcp")).status == 400


async def test_unsupported_handshake_version_header_is_400(client):
    session = await open_session(client)
    resp = await post(client, rpc("tools/list"), session_headers(session, "2024-11-05"))
    assert resp.status == 400


async def test_session_is_bound_to_the_key_that_opened_it(client):
    session = await open_session(client)
    other = await client.admin.post("/api/admin/keys", json={"name": "other"})
    other_key = (await other.json())["key"]
    headers = {**session_headers(session, "2025-11-25"), "X-API-Key": other_key}
    resp = await post(client.anonymous, rpc("tools/list"), headers)
    assert resp.status == 404
    resp = await client.anonymous.delete("/mcp", headers=headers)
    assert resp.status == 404
    ok = await post(client, rpc("tools/list"), session_headers(session, "2025-11-25"))
    assert ok.status == 200


async def test_notifications_and_responses_get_202(client):
    session = await open_session(client)
    headers = session_headers(session, "2025-11-25")
    assert (await post(client, rpc("notifications/cancelled", {"requestId": 1}, id=None), headers)).status == 202
    assert (await post(client, {"jsonrpc": "2.0", "id": 5, "result": {}}, headers)).status == 202


@pytest.mark.parametrize(
    ("raw", "ctype", "accept", "status", "code"),
    [
        (b"{bad json", "application/json", "application/json, text/event-stream", 400, -32700),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', "text/plain", "application/json, text/event-stream", 415, -32600),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"}', "application/json", "text/html", 406, -32600),
        (b"[" * 100 + b"]" * 100, "application/json", "application/json", 400, -32700),
        (b'{"jsonrpc":"1.0","id":1,"method":"ping"}', "application/json", "application/json", 400, -32600),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', "application/json", "application/json", 400, -32600),
        (b'"just a string"', "application/json", "application/json", 400, -32600),
    ],
)
async def test_malformed_posts(client, raw, ctype, accept, status, code):
    session = await open_session(client)
    headers = {**session_headers(session, "2025-11-25"), "Content-Type": ctype, "Accept": accept}
    resp = await client.post("/mcp", data=raw, headers=headers)
    assert resp.status == status
    body = await resp.json()
    assert body["error"]["code"] == code and body["jsonrpc"] == "2.0"
    assert "Traceback" not in str(body)


async def test_json_only_accept_is_allowed(client):
    session = await open_session(client)
    headers = {**session_headers(session, "2025-11-25"), "Accept": "application/json"}
    resp = await post(client, rpc("ping"), headers)
    assert resp.status == 200


async def test_a_get_that_does_not_accept_a_stream_is_406_and_other_methods_405(client):
    session = await open_session(client)
    headers = {**session_headers(session, "2025-11-25"), "Accept": "application/json"}
    resp = await client.get("/mcp", headers=headers)
    assert resp.status == 406
    assert (await resp.json())["error"]["code"] == -32600  # the door's format, as every refusal
    for method in ("PUT", "PATCH", "TRACE"):  # never routed: 405 before authentication
        resp = await client.anonymous.request(method, "/mcp")
        assert resp.status == 405 and "POST" in resp.headers["Allow"]
        assert (await resp.json())["jsonrpc"] == "2.0"


async def test_batches_at_2025_03_26(client):
    session = await open_session(client, "2025-03-26")
    headers = session_headers(session, "2025-03-26")
    batch = [
        rpc("ping", id=1),
        rpc("notifications/progress", {"progressToken": 1, "progress": 1}, id=None),
        rpc("tools/list", id=2),
        rpc("nope", id=3),
    ]
    resp = await post(client, batch, headers)
    assert resp.status == 200
    replies = {r["id"]: r for r in await resp.json()}
    assert replies[1]["result"] == {} and "tools" in replies[2]["result"]
    assert replies[3]["error"]["code"] == -32601
    only_notifications = [rpc("notifications/initialized", id=None)]
    assert (await post(client, only_notifications, headers)).status == 202
    assert (await post(client, [], headers)).status == 400


@pytest.mark.parametrize("version", ["2025-06-18", "2025-11-25"])
async def test_batches_refused_from_2025_06_18(client, version):
    session = await open_session(client, version)
    resp = await post(client, [rpc("ping"), rpc("ping")], session_headers(session, version))
    assert resp.status == 400
    assert (await resp.json())["error"]["code"] == -32600


async def test_no_key_is_401_with_a_jsonrpc_body(client):
    resp = await post(client.anonymous, rpc("initialize", {"protocolVersion": "2025-11-25"}))
    assert resp.status == 401
    assert resp.headers["WWW-Authenticate"].startswith("Bearer ")
    body = await resp.json()
    assert body["error"]["code"] == -32001 and body["jsonrpc"] == "2.0"


async def test_tool_outside_the_scope_is_403_and_never_runs(make_client, fake_nws):
    client = await make_client(scopes=["get_alerts"])
    session = await open_session(client)
    resp = await post(
        client,
        rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST}, id=12),
        session_headers(session, "2025-11-25"),
    )
    assert resp.status == 403
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
    body = await resp.json()
    assert body["id"] == 12 and body["error"]["code"] == -32003
    assert fake_nws.requests == []


async def test_bad_origin_is_403_and_allowed_origins_pass(make_client, make_settings):
    client = await make_client(make_settings(cors_origins="https://app.example"))
    init = rpc("initialize", {"protocolVersion": "2025-11-25"})
    assert (await post(client, init, {"Origin": "https://evil.example"})).status == 403
    assert (await post(client, init, {"Origin": "https://app.example"})).status == 200
    port = client.server.port
    assert (await post(client, init, {"Origin": f"http://localhost:{port}"})).status == 200


async def test_foreign_host_header_is_403(client):
    resp = await post(client, rpc("initialize", {"protocolVersion": "2025-11-25"}), {"Host": "evil.example.com"})
    assert resp.status == 403


async def test_session_cap_and_idle_expiry(make_client):
    now = [0.0]
    store = MemorySessionStore(idle_timeout=60, max_sessions=2, clock=lambda: now[0])
    client = await make_client(sessions=store)
    first = await open_session(client)
    await open_session(client)
    resp = await post(client, rpc("initialize", {"protocolVersion": "2025-11-25"}))
    assert resp.status == 429 and (await resp.json())["error"]["code"] == -32029  # the key is the only holder
    now[0] = 61.0
    assert (await post(client, rpc("ping"), session_headers(first, "2025-11-25"))).status == 404
    await open_session(client)  # expired sessions made room


@pytest.mark.parametrize(
    ("token", "refused"),
    [("t" * 256, False), ("t" * 257, True), (2**255, False), (2**256, True), (-(2**256), True), ("t" * 100_000, True)],
)
async def test_a_progress_token_longer_than_a_notification_should_repeat_is_refused(client, token, refused):
    session = await open_session(client)
    message = rpc("tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": token}}, id=22)
    resp = await post(client, message, session_headers(session, "2025-11-25"))
    if not refused:
        assert resp.content_type == "text/event-stream"
        return
    body = await resp.json()
    assert body["id"] == 22 and body["error"]["code"] == -32602
    assert body["error"]["message"].startswith("params._meta.progressToken must be a string of at most 256 characters")


async def test_a_progress_token_too_long_is_refused_inside_a_batch_too(client):
    session = await open_session(client, "2025-03-26")
    long_token = {"name": "test_tool_with_progress", "_meta": {"progressToken": "t" * 257}}
    batch = [rpc("tools/call", long_token, id=1), rpc("tools/list", id=2)]
    replies = {r["id"]: r for r in await (await post(client, batch, session_headers(session, "2025-03-26"))).json()}
    assert replies[1]["error"]["code"] == -32602 and "progressToken" in replies[1]["error"]["message"]
    assert "tools" in replies[2]["result"]


async def test_progress_streams_as_sse_when_asked(client):
    session = await open_session(client)
    message = rpc("tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": "t1"}}, id=21)
    resp = await post(client, message, session_headers(session, "2025-11-25"))
    assert resp.content_type == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store, no-transform"  # proxies must not buffer it
    text = await resp.text()
    events = [line[len("data: ") :] for line in text.splitlines() if line.startswith("data: ")]
    assert len(events) == 4
    assert '"progressToken":"t1"' in events[0] and '"id":21' in events[-1]


async def test_progress_without_sse_accept_is_plain_json(client):
    session = await open_session(client)
    message = rpc("tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": "t1"}})
    headers = {**session_headers(session, "2025-11-25"), "Accept": "application/json"}
    resp = await post(client, message, headers)
    assert resp.content_type == "application/json"
    assert (await resp.json())["result"]["content"][0]["text"] == "Progress tool completed"


async def test_client_disconnect_cancels_the_tool_call(make_client, tmp_path):
    fake_distribution(tmp_path, "acme-waits", {"waits": "tests.support.plugin_samples:waits"})
    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client = await make_client(registry=discover_tools(paths=[str(tmp_path)]))
    session = await open_session(client)
    call = asyncio.create_task(
        post(client, rpc("tools/call", {"name": "waits", "arguments": {"text": "x"}}), session_headers(session))
    )
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)
    call.cancel()  # closes the connection
    await asyncio.wait_for(plugin_samples.SIGNALS["cancelled"].wait(), 10)


async def test_missing_client_capability(client):
    session = await open_session(client)
    resp = await post(
        client, rpc("tools/call", {"name": "test_missing_capability"}), session_headers(session, "2025-11-25")
    )
    body = await resp.json()
    assert body["error"]["code"] == -32021
    assert body["error"]["data"] == {"requiredCapabilities": {"sampling": {}}}
    with_sampling = await open_session(client, capabilities={"sampling": {}})
    resp = await post(
        client, rpc("tools/call", {"name": "test_missing_capability"}), session_headers(with_sampling, "2025-11-25")
    )
    assert (await resp.json())["result"]["isError"] is False
