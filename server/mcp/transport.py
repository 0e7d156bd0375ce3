"""The /mcp endpoint: Host/Origin checks, then routing to an era by MCP-Protocol-Version alone."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.mcp import protocol as p
from skywarden.server.mcp.handshake import HandshakeEra
from skywarden.server.mcp.methods import McpMethods
from skywarden.server.mcp.sessions import SessionStore
from skywarden.server.mcp.stateless import StatelessEra

MCP_PATH = p.MCP_PATH


class McpEndpoint:
    def __init__(self, methods: McpMethods, sessions: SessionStore) -> None:
        self.handshake = HandshakeEra(methods, sessions)
        self.stateless = StatelessEra(methods)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        version = request.headers.get(p.VERSION_HEADER)
        if version is None or version in p.HANDSHAKE_ERA_NAMES:
            return await self.handshake.handle(request, version)
        return await self.stateless.handle(request, version)

    def add_routes(self, app: web.Application) -> None:
        # Every method goes to ``handle``, which answers 405 with the era's Allow header.
        # (Explicit methods, not "*": aiohttp-cors adds its own OPTIONS route.)
        for method in ("POST", "GET", "DELETE", "PUT", "PATCH"):
            app.router.add_route(method, MCP_PATH, self.handle)
