"""The stateless revision 2026-07-28 on the wire, case by case."""

from __future__ import annotations

import base64

import pytest

from tests.support.mcp_helpers import MODERN, modern_headers, modern_rpc, post, rpc

FORECAST = {"latitude": 39.7456, "longitude": -97.0892}
SERVER_INFO = "io.modelcontextprotocol/serverInfo"


async def call(client, message, **header_overrides):
    resp = await post(client, message, modern_headers(message, **header_overrides))
    return resp, await resp.json()


async def test_discover(client):
    resp, body = await call(client, modern_rpc("server/discover", id="d"))
    assert resp.status == 200 and body["id"] == "d"
    result = body["result"]
    assert result["resultType"] == "complete"
    assert result["supportedVersions"] == [MODERN]
    assert result["capabilities"] == {"tools": {"listChanged": True}}
    assert result["ttlMs"] > 0 and result["cacheScope"] == "public"
    assert result["_meta"][SERVER_INFO]["name"] == "skywarden"
    assert "Mcp-Session-Id" not in resp.headers


async def test_tools_list_is_private_and_cacheable(client):
    _, body = await call(client, modern_rpc("tools/list"))
    result = body["result"]
    assert result["resultType"] == "complete" and result["cacheScope"] == "private" and result["ttlMs"] > 0
    assert {"get_forecast", "get_alerts"} <= {t["name"] for t in result["tools"]}


async def test_tools_call_result(client):
    _, body = await call(client, modern_rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST}))
    result = body["result"]
    assert result["resultType"] == "complete" and result["isError"] is False
    assert result["structuredContent"]["location"] == "Linn, KS"


async def test_invalid_arguments_are_a_tool_error(client):
    resp, body = await call(client, modern_rpc("tools/call", {"name": "get_alerts", "arguments": {"state": 5}}))
    assert resp.status == 200
    assert body["result"]["isError"] is True
    assert "state: Not a valid string." in body["result"]["content"][0]["text"]


async def test_unknown_tool_is_400_invalid_params(client):
    resp, body = await call(client, modern_rpc("tools/call", {"name": "nope"}, id=77))
    assert resp.status == 400 and body["error"]["code"] == -32602 and body["id"] == 77


@pytest.mark.parametrize("method", ["ping", "initialize", "resources/list", "logging/setLevel"])
async def test_removed_and_unknown_methods_are_404(client, method):
    resp, body = await call(client, modern_rpc(method, id="m"))
    assert resp.status == 404 and body["error"]["code"] == -32601 and body["id"] == "m"


@pytest.mark.parametrize(
    "overrides",
    [
        {"Mcp-Method": None},
        {"Mcp-Method": "tools/list"},
        {"Mcp-Method": "TOOLS/CALL"},
        {"Mcp-Name": None},
        {"Mcp-Name": "get_alerts"},
        {"Mcp-Name": "=?base64?not base64?="},
    ],
)
async def test_routing_header_mismatch_is_32020(client, overrides):
    message = modern_rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST}, id=5)
    resp, body = await call(client, message, **overrides)
    assert resp.status == 400 and body["error"]["code"] == -32020 and body["id"] == 5


async def test_base64_header_values_are_decoded(client):
    message = modern_rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST})
    encoded = "=?base64?" + base64.b64encode(b"get_forecast").decode() + "?="
    resp, body = await call(client, message, **{"Mcp-Name": encoded})
    assert resp.status == 200 and body["result"]["isError"] is False


async def test_duplicated_routing_header_is_32020(client):
    message = modern_rpc("tools/list", id=1)
    headers = [(k, v) for k, v in modern_headers(message).items()] + [("Mcp-Method", "tools/list")]
    headers.append(("Content-Type", "application/json"))
    from multidict import CIMultiDict

    resp = await client.post("/mcp", json=message, headers=CIMultiDict(headers))
    assert resp.status == 400 and (await resp.json())["error"]["code"] == -32020


async def test_version_header_must_match_meta(client):
    message = modern_rpc("tools/list", id=1)
    message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2026-01-01"
    resp, body = await call(client, message)
    assert resp.status == 400 and body["error"]["code"] == -32020


async def test_unknown_version_is_32022_with_supported(client):
    message = modern_rpc("tools/list", id=4)
    message["params"]["_meta"]["io.modelcontextprotocol/protocolVersion"] = "2099-01-01"
    resp, body = await call(client, message, **{"MCP-Protocol-Version": "2099-01-01"})
    assert resp.status == 400
    assert body["error"]["code"] == -32022 and body["error"]["data"]["supported"] == [MODERN] and body["id"] == 4


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"_meta": "nope"},
        {"_meta": {"io.modelcontextprotocol/protocolVersion": MODERN}},
        {"_meta": {"io.modelcontextprotocol/clientCapabilities": {}}},
    ],
)
async def test_meta_envelope_is_required(client, params):
    message = rpc("tools/list", params, id=8)
    resp, body = await call(client, message)
    assert resp.status == 400 and body["error"]["code"] == -32602 and body["id"] == 8


async def test_client_info_is_optional(client):
    message = modern_rpc("tools/list")
    del message["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]
    resp, _ = await call(client, message)
    assert resp.status == 200


async def test_notification_is_202(client):
    message = rpc("notifications/cancelled", {"requestId": 1}, id=None)
    resp = await post(client, message, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "notifications/cancelled"})
    assert resp.status == 202


async def test_notification_at_unknown_version_is_32022(client):
    message = rpc("notifications/cancelled", {"requestId": 1}, id=None)
    resp = await post(client, message, {"MCP-Protocol-Version": "2099-01-01"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == -32022


async def test_batch_is_400(client):
    batch = [modern_rpc("tools/list"), modern_rpc("tools/list")]
    resp = await post(client, batch, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"})
    assert resp.status == 400 and (await resp.json())["error"]["code"] == -32600


@pytest.mark.parametrize(
    ("raw", "status", "code"),
    [(b"{nope", 400, -32700), (b'{"jsonrpc":"2.0","id":1}', 400, -32600), (b"42", 400, -32600)],
)
async def test_malformed_bodies(client, raw, status, code):
    resp = await post(client, None, {"MCP-Protocol-Version": MODERN, "Mcp-Method": "tools/list"}, raw=raw)
    assert resp.status == status and (await resp.json())["error"]["code"] == code


@pytest.mark.parametrize("method", ["GET", "DELETE"])
async def test_only_post(client, method):
    resp = await client.request(method, "/mcp", headers={"MCP-Protocol-Version": MODERN})
    assert resp.status == 405 and resp.headers["Allow"] == "POST"
    assert (await resp.json())["error"]["code"] == -32600


async def test_every_request_is_authenticated(client):
    message = modern_rpc("tools/list")
    assert (await post(client, message, modern_headers(message))).status == 200
    resp = await post(client.anonymous, message, modern_headers(message))
    assert resp.status == 401 and (await resp.json())["error"]["code"] == -32001
    resp = await post(client.anonymous, message, {**modern_headers(message), "X-API-Key": "skw_live_bogus"})
    assert resp.status == 401


async def test_scope_403_with_insufficient_scope(make_client):
    client = await make_client(scopes=["get_alerts"])
    _, listed = await call(client, modern_rpc("tools/list"))
    assert [t["name"] for t in listed["result"]["tools"]] == ["get_alerts"]
    resp, body = await call(client, modern_rpc("tools/call", {"name": "get_forecast", "arguments": FORECAST}, id=2))
    assert resp.status == 403 and body["error"]["code"] == -32003 and body["id"] == 2
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


async def test_missing_client_capability_is_400_32021(client):
    resp, body = await call(client, modern_rpc("tools/call", {"name": "test_missing_capability"}, id=3))
    assert resp.status == 400 and body["error"]["code"] == -32021
    assert body["error"]["data"]["requiredCapabilities"] == {"sampling": {}}
    message = modern_rpc("tools/call", {"name": "test_missing_capability"}, capabilities={"sampling": {}})
    resp, body = await call(client, message)
    assert resp.status == 200 and body["result"]["isError"] is False


async def test_a_progress_token_too_long_is_refused(client):
    message = modern_rpc("tools/call", {"name": "test_tool_with_progress"}, id=10)
    message["params"]["_meta"]["progressToken"] = "t" * 257
    resp = await post(client, message, modern_headers(message))
    body = await resp.json()
    assert body["error"]["code"] == -32602 and "progressToken" in body["error"]["message"]


async def test_progress_over_sse(client):
    message = modern_rpc("tools/call", {"name": "test_tool_with_progress"}, id=9)
    message["params"]["_meta"]["progressToken"] = 5
    resp = await post(client, message, modern_headers(message))
    assert resp.content_type == "text/event-stream"
    frames = [line for line in (await resp.text()).splitlines() if line.startswith("data: ")]
    assert len(frames) == 4 and '"resultType":"complete"' in frames[-1]
