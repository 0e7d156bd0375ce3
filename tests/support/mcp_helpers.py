"""Raw-HTTP helpers for MCP protocol tests: build requests exactly as a client would."""

from __future__ import annotations

import itertools
from typing import Any

MODERN = "2026-07-28"
ACCEPT_BOTH = "application/json, text/event-stream"
_ids = itertools.count(1)


def rpc(method: str, params: dict | None = None, id: Any = "auto") -> dict:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = next(_ids) if id == "auto" else id
    return message


def modern_meta(version: str = MODERN, capabilities: dict | None = None) -> dict:
    return {
        "io.modelcontextprotocol/protocolVersion": version,
        "io.modelcontextprotocol/clientCapabilities": capabilities or {},
        "io.modelcontextprotocol/clientInfo": {"name": "raw-test", "version": "1"},
    }


def modern_rpc(method: str, params: dict | None = None, capabilities: dict | None = None, **kw) -> dict:
    params = dict(params or {})
    params["_meta"] = modern_meta(capabilities=capabilities)
    return rpc(method, params, **kw)


def modern_headers(message: dict, **overrides: str) -> dict[str, str]:
    headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": message["method"], "Accept": ACCEPT_BOTH}
    name = (message.get("params") or {}).get("name")
    if message["method"] == "tools/call" and isinstance(name, str):
        headers["Mcp-Name"] = name
    headers.update(overrides)
    return {k: v for k, v in headers.items() if v is not None}


async def post(client, body: Any, headers: dict[str, str] | None = None, raw: bytes | None = None):
    all_headers = {"Accept": ACCEPT_BOTH, "Content-Type": "application/json", **(headers or {})}
    if raw is not None:
        return await client.post("/mcp", data=raw, headers=all_headers)
    return await client.post("/mcp", json=body, headers=all_headers)


async def open_session(client, version: str = "2025-11-25", capabilities: dict | None = None) -> str:
    params = {
        "protocolVersion": version,
        "capabilities": capabilities or {},
        "clientInfo": {"name": "t", "version": "1"},
    }
    resp = await post(client, rpc("initialize", params))
    assert resp.status == 200, await resp.text()
    body = await resp.json()
    assert body["result"]["protocolVersion"] == version
    session = resp.headers["Mcp-Session-Id"]
    resp = await post(client, rpc("notifications/initialized", id=None), session_headers(session, version))
    assert resp.status == 202
    return session


def session_headers(session: str, version: str | None = None) -> dict[str, str]:
    headers = {"Mcp-Session-Id": session}
    if version and version != "2025-03-26":
        headers["MCP-Protocol-Version"] = version
    return headers
