"""The app factory: the one place that wires the parts together."""

from __future__ import annotations

from aiohttp import web
from skywarden.server import rest
from skywarden.server.appkeys import REGISTRY, RUNNER, SETTINGS
from skywarden.server.errors import error_middleware
from skywarden.server.openapi import setup_openapi
from skywarden.server.request_context import request_context_middleware
from skywarden.server.security_headers import on_response_prepare
from skywarden.server.settings import Settings
from skywarden.server.tool_calls import ToolRunner
from skywarden.server.upstream_setup import upstream_context
from skywarden.tools.registry import ToolRegistry, discover_tools


def create_app(settings: Settings, *, registry: ToolRegistry | None = None) -> web.Application:
    registry = registry if registry is not None else discover_tools()
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_context_middleware,
            error_middleware,
        ],
        handler_args={"max_field_size": 8190, "max_line_size": 8190},
    )
    app.on_response_prepare.append(on_response_prepare)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[RUNNER] = ToolRunner(registry=registry, upstream=None, settings=settings)
    app.cleanup_ctx.append(upstream_context(app))
    rest.add_routes(app)
    setup_openapi(app)
    return app
