"""CORS with aiohttp-cors: deny by default, allow the origins in ``cors_origins``.

API keys travel in headers, never cookies, so credentials are never allowed.
Preflights are answered by aiohttp-cors before authentication and never reach
a handler or a tool.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import aiohttp_cors
from aiohttp import hdrs, web
from aiohttp_cors.cors_config import _CorsConfigImpl

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
    _only_for_cross_origin_requests(app)


def _only_for_cross_origin_requests(app: web.Application) -> None:
    """aiohttp-cors looks up the route's CORS configuration on every answer before it checks for
    an Origin header, without which it does nothing (CORS 6.1.1). Most requests (agents, scripts)
    send none: ask it only when there is one."""
    for index, hook in enumerate(app.on_response_prepare):
        if getattr(hook, "__func__", None) is _CorsConfigImpl._on_response_prepare:
            app.on_response_prepare[index] = _when_origin(hook)


def _when_origin(
    hook: Callable[[web.Request, web.StreamResponse], Awaitable[object]],
) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        if hdrs.ORIGIN in request.headers:
            await hook(request, response)

    return on_response_prepare
