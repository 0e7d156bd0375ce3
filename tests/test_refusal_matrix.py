"""Every refusal point x both doors: /mcp always answers a JSON-RPC error object, the REST and
admin paths always problem+json, each with the status and code of the one error table.

Each case names how to provoke the refusal; the same provocation is sent through the REST door
(``POST /api/mcp/tools/echo``) and the MCP door (a 2026-07-28 ``tools/call`` of ``echo``).
Where the server has read the body before refusing, the MCP answer echoes the request id.
"""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from skywarden.server.appkeys import AUTHENTICATOR, SETTINGS
from skywarden.server.calls.pipeline import ToolPipeline
from skywarden.server.errors import KINDS
from skywarden.server.plugins.registry import ToolRegistry, register_tool
from tests.support import plugin_samples
from tests.support.admin import ADMIN_HEADERS, create_key
from tests.support.mcp_helpers import modern_headers, modern_rpc

REQUEST_ID = 41


@dataclass
class Case:
    name: str
    status: int
    slug: str  # problem type at the REST door
    rpc_code: int
    id_echoed: bool  # the MCP door read the body before refusing
    settings: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    raw: bytes | None = None  # replaces the body at both doors
    tool: str = "echo"
    arguments: Any = None
    scopes: list[str] = field(default_factory=lambda: ["*"])
    query: str = ""
    before: Callable[[Any], Awaitable[None]] | None = None  # runs first, with the client
    patch: Callable[[pytest.MonkeyPatch], None] | None = None
    method: str = "POST"


async def _use_up_the_key(client) -> None:
    await client.post("/api/mcp/tools/echo", json={"text": "x"})


async def _fail_auth_twice(client) -> None:
    for _ in range(2):
        await client.post("/api/mcp/tools/echo", json={}, headers={"X-API-Key": "skw_live_nope"})


def _explode(monkeypatch: pytest.MonkeyPatch) -> None:
    async def explode(self, *args, **kwargs):
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(ToolPipeline, "call", explode)


async def _store_a_rate_that_allows_nothing(client) -> None:
    """As an earlier version could have stored it: straight into the SQLite store."""
    database = client.server.app[SETTINGS].resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE api_keys SET rate_limit = '0/second'")
    conn.close()
    client.server.app[AUTHENTICATOR].forget_all()


async def _hold_the_only_slot(client) -> None:
    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client.held = asyncio.create_task(client.post("/api/mcp/tools/waits", json={"text": "x"}))
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)


CASES = [
    Case("header not ASCII", 400, "invalid-header", -32600, False, headers={"X-Request-ID": "caf\u00e9"}),
    Case("Host not host[:port]", 400, "invalid-header", -32600, False, headers={"Host": "x@127.0.0.1"}),
    Case("foreign Host", 403, "forbidden-origin", -32600, False, headers={"Host": "evil.example"}),
    Case("HTTPS required", 403, "https-required", -32600, False, settings={"require_https": "true"}),
    Case("key in the URL", 400, "credential-in-url", -32600, False, query="?api_key=x"),
    Case("no key", 401, "unauthorized", -32001, False, headers={"X-API-Key": ""}),
    Case(
        "X-API-Key and Authorization both",
        400,
        "ambiguous-credentials",
        -32600,
        False,
        headers={"Authorization": "Bearer skw_live_other"},
    ),
    Case("wrong key", 401, "unauthorized", -32001, False, headers={"X-API-Key": "skw_live_wrong"}),
    Case(
        "too many failed authentications",
        429,
        "rate-limited",
        -32029,
        False,
        settings={"auth_failure_limit": "2/minute"},
        headers={"X-API-Key": "skw_live_wrong"},
        before=_fail_auth_twice,
    ),
    Case(
        "key rate limit",
        429,
        "rate-limited",
        -32029,
        False,
        settings={"rate_limit": "1/minute"},
        before=_use_up_the_key,
    ),
    Case(
        "the key's stored rate limit allows nothing",
        403,
        "key-rate-limit-unusable",
        -32003,
        False,
        before=_store_a_rate_that_allows_nothing,
    ),
    Case(
        "body too large",
        413,
        "payload-too-large",
        -32600,
        False,
        raw=b'{"a":"' + b"x" * 2048 + b'"}',
        settings={"max_body_bytes": "1024"},
    ),
    Case("unmet expectation", 417, "expectation-failed", -32600, False, headers={"Expect": "teapot"}),
    Case(
        "body not in its Content-Encoding",
        400,
        "invalid-body",
        -32600,
        False,
        headers={"Content-Encoding": "gzip"},
        raw=b"notgzip",
    ),
    Case(
        "a Content-Encoding the server cannot undo",
        415,
        "unsupported-media-type",
        -32600,
        False,
        headers={"Content-Encoding": "compress"},
    ),
    Case("wrong content type", 415, "unsupported-media-type", -32600, False, headers={"Content-Type": "text/plain"}),
    Case("invalid JSON", 400, "invalid-json", -32700, False, raw=b"{nope"),
    Case("nesting too deep", 400, "invalid-json", -32700, False, raw=b'{"a":' * 40 + b"1" + b"}" * 40),
    Case("invalid UTF-8", 400, "invalid-json", -32700, False, raw=b'{"a":"\xff"}'),
    Case("tool outside the key's scopes", 403, "insufficient-scope", -32003, True, scopes=["get_alerts"]),
    Case(
        "too many calls at once",
        429,
        "rate-limited",
        -32029,
        True,
        tool="waits",
        settings={"max_concurrent_calls": "1"},
        before=_hold_the_only_slot,
    ),
    Case("unexpected exception", 500, "internal-error", -32603, True, patch=_explode),
]


def _registry() -> ToolRegistry:
    return ToolRegistry(
        [
            register_tool(plugin_samples.echo, "samples"),
            register_tool(plugin_samples.waits, "samples"),
            register_tool(plugin_samples.FakeAlerts(), "samples"),
        ]
    )


async def _client(make_server, make_settings, aiohttp_client, case: Case):
    """The key is made on a plain server; the case's settings apply to a second one on the same store."""
    admin = await aiohttp_client(await make_server(make_settings(), registry=_registry()), headers=ADMIN_HEADERS)
    key = await create_key(admin, scopes=case.scopes)
    server = await make_server(make_settings(**case.settings), registry=_registry())
    return await aiohttp_client(server, headers={"X-API-Key": key["key"]})


def _mcp_request(case: Case) -> tuple[bytes, dict[str, str]]:
    message = modern_rpc("tools/call", {"name": case.tool, "arguments": case.arguments or {"text": "x"}}, id=REQUEST_ID)
    headers = {**modern_headers(message), "Content-Type": "application/json", **case.headers}
    return case.raw if case.raw is not None else json.dumps(message).encode(), headers


def _rest_request(case: Case) -> tuple[bytes, dict[str, str]]:
    body = case.raw if case.raw is not None else json.dumps(case.arguments or {"text": "x"}).encode()
    return body, {"Content-Type": "application/json", **case.headers}


async def _provoke(make_server, make_settings, aiohttp_client, monkeypatch, case: Case, door: str):
    """Send the case's request through ``door``; return the answer's status, headers and text."""
    client = await _client(make_server, make_settings, aiohttp_client, case)
    if case.before is not None:
        await case.before(client)
    if case.patch is not None:
        case.patch(monkeypatch)
    path, (body, headers) = (
        ("/mcp", _mcp_request(case)) if door == "mcp" else (f"/api/mcp/tools/{case.tool}", _rest_request(case))
    )
    resp = await client.request(case.method, path + case.query, data=body, headers=headers)
    text = await resp.text()
    if getattr(client, "held", None):
        client.held.cancel()
    assert resp.status == case.status, text
    assert "Traceback" not in text and "secret internal detail" not in text
    if case.status == 429:
        assert int(resp.headers["Retry-After"]) >= 1
    return resp, text


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_rest_door_answers_problem_json(make_server, make_settings, aiohttp_client, monkeypatch, case):
    resp, text = await _provoke(make_server, make_settings, aiohttp_client, monkeypatch, case, "rest")
    assert resp.content_type == "application/problem+json", text
    problem = json.loads(text)
    assert problem["type"].endswith("/" + case.slug) and problem["status"] == case.status and problem["detail"]
    assert problem["request_id"] == resp.headers["X-Request-ID"]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_mcp_door_answers_json_rpc(make_server, make_settings, aiohttp_client, monkeypatch, case):
    resp, text = await _provoke(make_server, make_settings, aiohttp_client, monkeypatch, case, "mcp")
    assert resp.content_type == "application/json", text
    answer = json.loads(text)
    assert answer["jsonrpc"] == "2.0" and "result" not in answer
    assert answer["error"]["code"] == case.rpc_code and answer["error"]["message"]
    assert answer["id"] == (REQUEST_ID if case.id_echoed else None)


async def test_admin_door_answers_problem_json_for_aiohttp_refusals(client):
    for method, path, status in [
        ("PUT", "/api/admin/keys", 405),
        ("GET", "/api/admin/nothing-here", 404),
        ("GET", "/api/nothing-here", 401),  # deny by default: outside /api/admin a key is needed first
    ]:
        resp = await client.admin.request(method, path)
        assert resp.status == status and resp.content_type == "application/problem+json"


async def test_mcp_door_answers_json_rpc_for_aiohttp_refusals(client):
    resp = await client.head("/mcp")
    assert resp.status == 405 and resp.content_type == "application/json"


def test_every_error_kind_maps_to_both_doors():
    slugs = {kind.slug for kind in KINDS}
    assert {case.slug for case in CASES} <= slugs
    for kind in KINDS:
        assert 400 <= kind.status <= 599 and -32768 <= kind.rpc_code <= -32000 and kind.slug and kind.title


async def test_mcp_door_refuses_a_foreign_origin_as_json_rpc(client):
    message = modern_rpc("tools/list", id=REQUEST_ID)
    resp = await client.post(
        "/mcp", json=message, headers={**modern_headers(message), "Origin": "https://evil.example"}
    )
    answer = await resp.json()
    assert resp.status == 403 and answer["error"]["code"] == -32600 and answer["id"] is None


@pytest.mark.parametrize(
    ("headers", "status", "code"),
    [
        ({"Mcp-Session-Id": "no-such-session", "MCP-Protocol-Version": "2025-11-25"}, 404, -32600),
        ({"Mcp-Session-Id": "no-such-session", "MCP-Protocol-Version": "2024-11-05"}, 400, -32022),
        ({"MCP-Protocol-Version": "2025-11-25"}, 400, -32600),  # no session id
    ],
)
async def test_handshake_era_refusals_echo_the_id_once_the_body_was_read(client, headers, status, code):
    message = {"jsonrpc": "2.0", "id": REQUEST_ID, "method": "tools/list"}
    resp = await client.post("/mcp", json=message, headers={"Accept": "application/json, text/event-stream", **headers})
    answer = await resp.json()
    assert resp.status == status and answer["error"]["code"] == code and answer["id"] == REQUEST_ID
    if code == -32022:
        assert "2025-11-25" in answer["error"]["data"]["supported"]
