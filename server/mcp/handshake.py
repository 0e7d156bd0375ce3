"""Handshake-era revisions (2025-03-26, 2025-06-18, 2025-11-25): initialize, sessions, batches.

Errors before a request is dispatched are raised as ``RpcError`` with their HTTP
status; the endpoint answers them with the id of the message once it was read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from skywarden.server.calls.pipeline import Charger
from skywarden.server.errors import BATCH_TOO_LARGE, NOT_ACCEPTABLE, TOO_MANY_SESSIONS, ApiError
from skywarden.server.http.body import BodyReader
from skywarden.server.http.responses import json_response
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp import protocol as p
from skywarden.server.mcp.dispatch import Handlers, answer, run_request, session_fingerprint
from skywarden.server.mcp.methods import McpMethods, initialize_result
from skywarden.server.mcp.sessions import Session, SessionStore, TooManySessions
from skywarden.server.mcp.streams import ChangeStreams, notification
from skywarden.server.mcp.wire import accepts, progress_token, read_message
from skywarden.server.observability.audit import note
from skywarden.server.request_state import Prepaid, state_of

SUPPORTED = [*p.HANDSHAKE_VERSIONS, *p.MODERN_VERSIONS]
SESSION_RETRY_SECONDS = 60
LIST_CHANGED = notification("notifications/tools/list_changed")


def _handshake_status(error: p.RpcError) -> int:
    return 200  # handshake-era JSON-RPC errors travel in a 200 answer


def _ping(params: Any) -> dict[str, Any]:
    return {}


def _no_reinitialize(params: Any) -> dict[str, Any]:
    raise p.RpcError(p.INVALID_REQUEST, "This session is already initialized")


HANDLERS: Handlers = {"ping": _ping, "initialize": _no_reinitialize}


def _check_version(version_header: str | None) -> None:
    if version_header is not None and version_header not in p.HANDSHAKE_VERSIONS:
        raise p.RpcError(
            p.UNSUPPORTED_VERSION,
            f"Unsupported MCP-Protocol-Version {version_header[:40]!r}",
            data={"supported": SUPPORTED, "requested": version_header[:40]},
            status=400,
        )


class HandshakeEra:
    def __init__(
        self,
        methods: McpMethods,
        sessions: SessionStore,
        body_reader: BodyReader,
        charge: Charger,
        max_batch_size: int,
        streams: ChangeStreams,
        session_ended: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.streams = streams
        self.session_ended = session_ended or streams.end_session  # every instance's streams of it end
        self.methods = methods
        self.sessions = sessions
        self.body_reader = body_reader
        self.charge = charge
        self.max_batch_size = max_batch_size

    async def handle(
        self, request: web.Request, version_header: str | None, methods: McpMethods | None = None
    ) -> web.StreamResponse:
        """``methods``: the endpoint's view of the tools (``/mcp/u/<name>``), else every tool."""
        methods = methods if methods is not None else self.methods
        if request.method == "POST":
            return await self._post(request, version_header, methods)
        _check_version(version_header)
        if request.method == "DELETE":
            return await self._delete(request)
        return await self._listen(request, methods)

    async def _listen(self, request: web.Request, methods: McpMethods) -> web.StreamResponse:
        """GET: the session's stream of server-initiated messages, ``notifications/tools/list_changed``
        alone; one per session."""
        _, sse_ok = accepts(request)
        if not sse_ok:
            raise ApiError(NOT_ACCEPTABLE, "Accept must include text/event-stream")
        session = await self._session(request, request.headers.get(p.SESSION_HEADER))
        if self.streams.has_session(session.id):
            raise p.RpcError(p.INVALID_REQUEST, "This session's stream is already open", status=409)
        stream = self.streams.add(state_of(request).caller, session.id, methods.view)
        note(request, mcp_method="stream/listen", protocol_version=session.protocol_version)
        return await self.streams.serve(request, stream, LIST_CHANGED)

    async def _session(self, request: web.Request, session_id: str | None) -> Session:
        if not session_id:
            raise p.RpcError(p.INVALID_REQUEST, "Mcp-Session-Id header is required", status=400)
        session = await self.sessions.get(session_id)
        if session is None or session.principal_id != state_of(request).caller.id:
            note(request, session=session_fingerprint(session_id), denied="session")
            raise p.RpcError(p.INVALID_REQUEST, "Session not found", status=404)
        note(request, session=session_fingerprint(session_id))
        return session

    async def _delete(self, request: web.Request) -> web.Response:
        session = await self._session(request, request.headers.get(p.SESSION_HEADER))
        await self.sessions.delete(session.id)
        await self.session_ended(session.id)
        note(request, mcp_method="session/delete")
        return web.Response(status=204)

    async def _post(self, request: web.Request, version_header: str | None, methods: McpMethods) -> web.StreamResponse:
        """One POST. A supported version header that differs from the negotiated revision is
        accepted, as the official SDK does (the conformance suite relies on it); answers follow
        the negotiated revision."""
        message = await read_message(request, self.body_reader)
        _check_version(version_header)
        session_id = request.headers.get(p.SESSION_HEADER)
        if session_id is None and isinstance(message, dict) and message.get("method") == "initialize":
            return await self._initialize(request, message)
        session = await self._session(request, session_id)
        if isinstance(message, list):
            return await self._batch(request, session, message, methods)
        return await self._single(request, session, message, methods)

    async def _initialize(self, request: web.Request, message: dict[str, Any]) -> web.StreamResponse:
        if not p.is_request(message):
            raise p.RpcError(p.INVALID_REQUEST, "initialize must be a JSON-RPC request", status=400)
        params = message.get("params") or {}
        if not isinstance(params.get("protocolVersion"), str):
            raise p.RpcError(p.INVALID_PARAMS, "params.protocolVersion must be a string", status=400)
        result = initialize_result(params["protocolVersion"])
        client_info = params.get("clientInfo")
        capabilities = params.get("capabilities")
        try:
            session = await self.sessions.create(
                state_of(request).caller.id,
                result["protocolVersion"],
                client_info if isinstance(client_info, dict) else {},
                capabilities if isinstance(capabilities, dict) else {},
            )
        except TooManySessions as exc:
            raise ApiError(
                TOO_MANY_SESSIONS,
                str(exc),
                headers={"Retry-After": str(SESSION_RETRY_SECONDS)},
                audit={"limit": "sessions"},
            ) from None
        note(
            request,
            mcp_method="initialize",
            protocol_version=result["protocolVersion"],
            session=session_fingerprint(session.id),
        )
        return json_response(p.result_message(message["id"], result), 200, {p.SESSION_HEADER: session.id})

    async def _single(
        self, request: web.Request, session: Session, message: Any, methods: McpMethods
    ) -> web.StreamResponse:
        if p.is_notification(message):
            note(request, mcp_method=message["method"], protocol_version=session.protocol_version)
            if message["method"] == "notifications/initialized" and not session.initialized:
                session.initialized = True
                await self.sessions.save(session)
            return web.Response(status=202)
        if p.is_response(message):
            return web.Response(status=202)
        if not p.is_request(message):
            raise p.RpcError(p.INVALID_REQUEST, "Not a valid JSON-RPC 2.0 message", status=400)
        version = session.protocol_version
        return await run_request(
            request, methods, message, version, HANDLERS, _handshake_status, session.client_capabilities
        )

    async def _charge_batch(self, request: web.Request, requests: int) -> None:
        """A batch costs what its messages would cost as separate requests: one unit each (the
        HTTP request paid the first), then each tool call its tool's cost. All or nothing."""
        state = state_of(request)
        principal = state.caller
        if requests > 1 and principal.metered:
            state.rate_limit_fields = await self.charge(principal, requests - 1)

    async def _batch(
        self, request: web.Request, session: Session, batch: list[Any], methods: McpMethods
    ) -> web.StreamResponse:
        if session.protocol_version not in p.BATCH_VERSIONS:
            raise p.RpcError(
                p.INVALID_REQUEST, f"JSON-RPC batches are not supported at {session.protocol_version}", status=400
            )
        if not batch:
            raise p.RpcError(p.INVALID_REQUEST, "Empty batch", status=400)
        limit = self.max_batch_size
        if len(batch) > limit:
            raise ApiError(BATCH_TOO_LARGE, f"A batch may hold at most {limit} messages; this one has {len(batch)}.")
        await self._charge_batch(request, sum(1 for m in batch if p.is_request(m)))
        replies: list[bytes] = []
        headers: dict[str, str] = {}
        status = 200
        for message in batch:
            if p.is_notification(message) or p.is_response(message):
                continue
            if not p.is_request(message) or message.get("method") == "initialize":
                error = p.RpcError(p.INVALID_REQUEST, "Invalid request in batch")
                replies.append(dumps(p.error_message(p.echo_id(message), error)))
                continue
            try:
                progress_token(message.get("params"))  # bounded here too, though a batch streams no progress
                reply = await answer(
                    request,
                    methods,
                    message,
                    session.protocol_version,
                    HANDLERS,
                    client_capabilities=session.client_capabilities,
                    prepaid=Prepaid(1),  # each message paid its unit in _charge_batch
                )
            except p.RpcError as error:
                note(request, rpc_error=error.code)
                headers.update(error.headers)
                status = max(status, error.status or 200)
                reply = p.error_message(message["id"], error)
            replies.append(reply if isinstance(reply, bytes) else dumps(reply))
        if not replies:
            return web.Response(status=202)
        return json_response(b"[" + b",".join(replies) + b"]", status, headers)
