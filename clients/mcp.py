"""MCP Streamable HTTP transport: 2026-07-28 when the server has it, else the handshake.

``server/discover`` is tried first; any answer but an authentication or rate
limit refusal means "not a 2026 server" and the client falls back to
``initialize`` (newest handshake revision the server accepts). A handshake
session that the server no longer knows (404, e.g. after a restart) is opened
again and the request repeated once. SSE answers are read as they arrive, so
progress notifications reach the callback live.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp

from skywarden.clients import errors as e
from skywarden.clients.http import Answer, HttpCore
from skywarden.clients.mapping import rpc_error
from skywarden.clients.results import ToolCallResult, ToolInfo

MODERN = "2026-07-28"
HANDSHAKE = ("2025-11-25", "2025-06-18", "2025-03-26")
ACCEPT = "application/json, text/event-stream"
CLIENT_INFO = {"name": "skywarden-client", "version": "0.1.0"}
NO_FALLBACK = (e.AuthenticationError, e.PermissionDenied, e.RateLimited, e.TransportError)

ProgressCallback = Callable[[float, float | None, str | None], Awaitable[None]]


async def _read_sse(resp: aiohttp.ClientResponse, on_event: Callable[[dict[str, Any]], Awaitable[None]]) -> bytes:
    """Read an event stream; hand each JSON-RPC message to ``on_event``; return the last one."""
    last = b""
    data: list[bytes] = []
    async for raw in resp.content:
        line = raw.rstrip(b"\r\n")
        if line.startswith(b"data:"):
            data.append(line[5:].lstrip())
        elif not line and data:
            payload = b"\n".join(data)
            data = []
            try:
                message = json.loads(payload)
            except ValueError:
                continue
            last = payload
            await on_event(message)
    return last


class McpTransport:
    name = "mcp"

    def __init__(self, core: HttpCore, path: str = "/mcp", mode: str = "auto") -> None:
        if mode not in ("auto", "legacy"):
            raise ValueError("mode must be 'auto' (2026-07-28 first) or 'legacy' (initialize handshake)")
        self.core = core
        self.path = path
        self.mode = mode
        self.protocol_version: str | None = None
        self.session_id: str | None = None
        self._ids = itertools.count(1)

    async def _post(
        self,
        message: dict[str, Any],
        headers: dict[str, str],
        *,
        idempotent: bool,
        progress: ProgressCallback | None = None,
    ) -> Answer:
        async def on_event(event: dict[str, Any]) -> None:
            if progress is not None and event.get("method") == "notifications/progress":
                params = event.get("params") or {}
                await progress(params.get("progress", 0), params.get("total"), params.get("message"))

        async def read(resp: aiohttp.ClientResponse) -> bytes:
            if resp.content_type == "text/event-stream":
                return await _read_sse(resp, on_event)
            return await resp.read()

        return await self.core.request(
            "POST",
            self.path,
            json=message,
            headers={"Accept": ACCEPT, "Content-Type": "application/json", **headers},
            idempotent=idempotent,
            read=read,
        )

    @staticmethod
    def _result(answer: Answer) -> Any:
        try:
            body = json.loads(answer.body) if answer.body else None
        except ValueError:
            body = None
        if isinstance(body, dict) and isinstance(body.get("error"), dict):
            raise rpc_error(answer, body["error"])
        if answer.status >= 400 or not isinstance(body, dict) or "result" not in body:
            raise rpc_error(answer, {"message": f"unexpected answer from the MCP server (HTTP {answer.status})"})
        return body["result"]

    # -- connecting ----------------------------------------------------------------

    async def connect(self) -> None:
        if self.protocol_version is not None:
            return
        if self.mode == "legacy":
            await self._initialize()
            return
        try:
            result = await self._modern_call("server/discover", {}, idempotent=True)
            if MODERN in result.get("supportedVersions", []):
                self.protocol_version = MODERN
                return
        except NO_FALLBACK:
            raise
        except e.SkywardenError:
            pass
        await self._initialize()

    async def _initialize(self) -> None:
        message = {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": "initialize",
            "params": {"protocolVersion": HANDSHAKE[0], "capabilities": {}, "clientInfo": CLIENT_INFO},
        }
        answer = await self._post(message, {}, idempotent=True)
        result = self._result(answer)
        version = result.get("protocolVersion")
        if version not in HANDSHAKE:
            raise e.ServerError(f"the server chose protocol {version!r}, which this client does not speak")
        self.protocol_version = version
        self.session_id = answer.headers.get("Mcp-Session-Id")
        await self._post(
            {"jsonrpc": "2.0", "method": "notifications/initialized"}, self._session_headers(), idempotent=True
        )

    def _session_headers(self) -> dict[str, str]:
        headers = {"MCP-Protocol-Version": self.protocol_version or HANDSHAKE[0]}
        if self.session_id:
            headers["Mcp-Session-Id"] = self.session_id
        return headers

    # -- calls ---------------------------------------------------------------------

    async def _modern_call(
        self, method: str, params: dict[str, Any], *, idempotent: bool, progress: ProgressCallback | None = None
    ) -> Any:
        meta = {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
            "io.modelcontextprotocol/clientInfo": CLIENT_INFO,
        }
        if progress is not None:
            meta["progressToken"] = f"p{next(self._ids)}"
        message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": {**params, "_meta": meta}}
        headers = {"MCP-Protocol-Version": MODERN, "Mcp-Method": method}
        if method == "tools/call":
            headers["Mcp-Name"] = params["name"]
        return self._result(await self._post(message, headers, idempotent=idempotent, progress=progress))

    async def _handshake_call(
        self, method: str, params: dict[str, Any], *, idempotent: bool, progress: ProgressCallback | None = None
    ) -> Any:
        for attempt in range(2):
            call_params = dict(params)
            if progress is not None:
                call_params["_meta"] = {"progressToken": f"p{next(self._ids)}"}
            message = {"jsonrpc": "2.0", "id": next(self._ids), "method": method, "params": call_params}
            answer = await self._post(message, self._session_headers(), idempotent=idempotent, progress=progress)
            if answer.status == 404 and attempt == 0:  # the session ended (server restart, idle expiry)
                self.protocol_version = self.session_id = None
                await self._initialize()
                continue
            return self._result(answer)
        raise AssertionError("unreachable")

    async def call(
        self, method: str, params: dict[str, Any], *, idempotent: bool, progress: ProgressCallback | None = None
    ) -> Any:
        await self.connect()
        if self.protocol_version == MODERN:
            return await self._modern_call(method, params, idempotent=idempotent, progress=progress)
        return await self._handshake_call(method, params, idempotent=idempotent, progress=progress)

    async def list_tools(self) -> list[ToolInfo]:
        tools: list[ToolInfo] = []
        cursor: str | None = None
        for _ in range(100):
            result = await self.call("tools/list", {"cursor": cursor} if cursor else {}, idempotent=True)
            tools.extend(ToolInfo.from_wire(t) for t in result.get("tools", []))
            cursor = result.get("nextCursor")
            if not cursor:
                break
        return tools

    async def call_tool(
        self, name: str, arguments: dict[str, Any], progress: ProgressCallback | None = None
    ) -> ToolCallResult:
        result = await self.call(
            "tools/call", {"name": name, "arguments": arguments}, idempotent=False, progress=progress
        )
        return ToolCallResult.from_wire(result)

    async def close(self) -> None:
        if self.session_id:
            with contextlib.suppress(e.SkywardenError):
                await self.core.request("DELETE", self.path, headers=self._session_headers(), idempotent=True)
            self.session_id = None
            self.protocol_version = None
