"""Run one JSON-RPC request against the methods, for either era."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

from aiohttp import web

from skywarden.server.errors import ApiError
from skywarden.server.mcp import protocol as p
from skywarden.server.mcp.methods import McpMethods
from skywarden.server.mcp.wire import EventStream, accepts, progress_token
from skywarden.server.observability.audit import note, note_refusal
from skywarden.server.request_state import Prepaid, state_of
from skywarden.tools.contract import ProgressReporter, no_progress

Handlers = dict[str, Callable[[Any], dict[str, Any]]]


def session_fingerprint(session_id: str) -> str:
    """What the audit log keeps of a session id: enough to correlate, useless to replay."""
    return hashlib.sha256(session_id.encode()).hexdigest()[:16]


async def answer(
    request: web.Request,
    methods: McpMethods,
    message: dict[str, Any],
    version: str,
    handlers: Handlers,
    report_progress: ProgressReporter = no_progress,
    client_capabilities: dict[str, Any] | None = None,
    prepaid: Prepaid | None = None,
) -> dict[str, Any] | bytes:
    """The JSON-RPC answer to one request (a dict, or bytes around an already-encoded result).

    Raises ``RpcError``; a refusal from the tool-call pipeline is translated here, the one
    place where an ``ApiError`` becomes a JSON-RPC error inside a request."""
    request_id = message["id"]
    method = message["method"]
    params = message.get("params") or {}
    state = state_of(request)
    principal = state.caller
    note(request, mcp_method=method, protocol_version=version)
    if method == "tools/call":
        name = params.get("name")
        # the tool's full name (``calc__add`` at ``/mcp/u/calc``): what scopes and the audit trail know it by
        note(request, tool=methods.audited_name(name)[:128] if isinstance(name, str) else None)
        try:
            encoded, is_error, upstream = await methods.tools_call(
                version,
                params,
                principal,
                prepaid=prepaid if prepaid is not None else state.prepaid,
                report_progress=report_progress,
                client_capabilities=client_capabilities,
            )
        except ApiError as exc:
            note_refusal(request, exc)
            raise p.rpc_error_from(exc) from None
        note(request, tool_error=is_error, **({"upstream": upstream} if upstream is not None else {}))
        return p.result_bytes(request_id, encoded)
    if method == "tools/list":
        return p.result_bytes(request_id, methods.tools_list(version, principal))
    handler = handlers.get(method)
    if handler is None:
        raise p.RpcError(p.METHOD_NOT_FOUND, f"Method not found: {method[:100]}")
    return p.result_message(request_id, handler(params))


async def run_request(
    request: web.Request,
    methods: McpMethods,
    message: dict[str, Any],
    version: str,
    handlers: Handlers,
    error_status: Callable[[p.RpcError], int],
    client_capabilities: dict[str, Any] | None = None,
) -> web.StreamResponse:
    """Answer as JSON, or as SSE once a tool reports progress to a client that asked for it and accepts SSE."""
    stream = EventStream(request, {})
    try:
        token = progress_token(message.get("params"))
        reporter = stream.progress_reporter(token) if token is not None and accepts(request)[1] else no_progress
        reply = await answer(request, methods, message, version, handlers, reporter, client_capabilities)
    except p.RpcError as error:
        note(request, rpc_error=error.code)
        stream.headers.update(error.headers)
        return await stream.finish(p.error_message(message["id"], error), error.status or error_status(error))
    return await stream.finish(reply, 200)
