"""The /mcp endpoint: routing to an era by MCP-Protocol-Version alone, and the era's own errors.

Host/Origin, authentication and rate limits ran before (middlewares); an ``RpcError`` an era
raises outside a dispatched request is answered here, with the id of the message once read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web
from aiohttp_apigami import docs

from skywarden.server.calls.pipeline import Charger
from skywarden.server.http.body import BodyReader
from skywarden.server.http.paths import MCP_PATH, MCP_UPSTREAM_PATH
from skywarden.server.http.routes import MCP, add_route
from skywarden.server.mcp import protocol as p
from skywarden.server.mcp.handshake import HandshakeEra
from skywarden.server.mcp.methods import McpMethods, ToolView
from skywarden.server.mcp.sessions import SessionStore
from skywarden.server.mcp.stateless import StatelessEra
from skywarden.server.mcp.streams import ChangeStreams
from skywarden.server.mcp.wire import error_answer
from skywarden.server.observability.audit import note
from skywarden.server.request_state import state_of


class McpEndpoint:
    def __init__(
        self,
        methods: McpMethods,
        sessions: SessionStore,
        body_reader: BodyReader,
        charge: Charger,
        max_batch_size: int,
        streams: ChangeStreams,
        views: Callable[[str], ToolView | None] = lambda name: None,
        session_ended: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.methods = methods
        self.views = views  # an upstream's name -> its endpoint's view of the tools (None: no such upstream)
        self.handshake = HandshakeEra(methods, sessions, body_reader, charge, max_batch_size, streams, session_ended)
        self.stateless = StatelessEra(methods, body_reader, streams)

    @docs(
        tags=["mcp"],
        summary="MCP Streamable HTTP (2025-03-26 to 2026-07-28)",
        description=(
            "JSON-RPC 2.0 over HTTP as the MCP transport specifies; see docs/mcp.md. The revision is "
            "chosen by the MCP-Protocol-Version header. Answers are application/json, or text/event-stream "
            "when a tool call streams progress. GET (a session's stream, 2025-03-26 to 2025-11-25) and "
            "subscriptions/listen (2026-07-28) carry notifications/tools/list_changed. Errors are JSON-RPC "
            "error objects."
        ),
        responses={
            200: {"description": "JSON-RPC result or error (or an SSE stream: progress, or list changes)"},
            202: {"description": "Notification or response accepted"},
            204: {"description": "Session ended (DELETE)"},
            400: {"description": "Parse error, invalid request, header mismatch, bad _meta, missing session"},
            403: {"description": "Tool outside the key's scopes"},
            404: {"description": "Unknown session (handshake era) or unknown method (2026-07-28)"},
            405: {"description": "Method not allowed (see Allow)"},
            409: {"description": "The session's stream is already open (GET)"},
            406: {"description": "Accept does not include application/json (text/event-stream for a stream)"},
            408: {"description": "The body arrived too slowly"},
            413: {"description": "Body too large"},
            415: {"description": "Content-Type is not application/json"},
            429: {"description": "Rate limited, too many calls at once, or too many open sessions or streams"},
            500: {"description": "Unexpected server error (a JSON-RPC -32603 error; logged with the request id)"},
            503: {"description": "The session store (Redis) cannot be reached"},
        },
    )
    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.headers.get(p.VERSION_HEADER)
        try:
            methods = self._methods_of(request)
            if version is None or version in p.HANDSHAKE_ERA_NAMES:
                return await self.handshake.handle(request, version, methods)
            return await self.stateless.handle(request, version, methods)
        except p.RpcError as error:
            note(request, rpc_error=error.code)
            return error_answer(state_of(request).rpc_id, error, error.status or 400)

    def _methods_of(self, request: web.Request) -> McpMethods:
        """``/mcp``: every tool; ``/mcp/u/<name>``: that upstream's tools alone, by their own names."""
        name = request.match_info.get("upstream")
        if name is None:
            return self.methods
        view = self.views(name)
        if view is None:
            raise p.RpcError(p.INVALID_REQUEST, f"There is no upstream named {name[:40]!r} here.", status=404)
        return self.methods.viewed(view)

    def add_routes(self, app: web.Application) -> None:
        # POST, GET (a handshake session's stream; 405 at 2026-07-28) and DELETE. Any other method
        # is aiohttp's 405, answered before authentication. (Explicit methods, not "*":
        # aiohttp-cors adds its own OPTIONS.)
        for method in ("POST", "GET", "DELETE"):
            add_route(app, method, MCP_PATH, self.handle, rule=MCP)
            add_route(app, method, MCP_UPSTREAM_PATH, self.handle, rule=MCP)
