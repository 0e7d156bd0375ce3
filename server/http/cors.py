"""CORS with aiohttp-cors: deny by default, allow the origins in ``cors_origins``.

API keys travel in headers, never cookies, so credentials are never allowed.
Preflights are answered by aiohttp-cors before authentication and never reach
a handler or a tool.
"""

from __future__ import annotations

import aiohttp_cors
from aiohttp import web

ALLOW_HEADERS = (
    "Content-Type",
    "Authorization",
    "X-API-Key",
    "X-Request-ID",
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
)
EXPOSE_HEADERS = (
    "Mcp-Session-Id",
    "X-Request-ID",
    "RateLimit",
    "RateLimit-Policy",
    "Retry-After",
    "WWW-Authenticate",
)


def setup_cors(app: web.Application, origins: tuple[str, ...]) -> None:
    """Call after every route is added."""
    options = aiohttp_cors.ResourceOptions(
        allow_credentials=False,
        allow_headers=ALLOW_HEADERS,
        expose_headers=EXPOSE_HEADERS,
        allow_methods=["GET", "POST", "PATCH", "DELETE"],
        max_age=600,
    )
    cors = aiohttp_cors.setup(app, defaults={origin: options for origin in origins})
    for route in list(app.router.routes()):
        if route.method != "OPTIONS":
            cors.add(route)
