"""The app factory: the one place that wires the parts together."""

from __future__ import annotations

from aiohttp import web
from skywarden.server import admin, rest
from skywarden.server.appkeys import (
    ADMIN,
    AUTHENTICATOR,
    KEY_STORE,
    METRICS_CREDENTIAL,
    REGISTRY,
    RUNNER,
    SECRET,
    SESSIONS,
    SETTINGS,
)
from skywarden.server.audit import audit_middleware
from skywarden.server.auth.authenticator import Authenticator
from skywarden.server.auth.credentials import Credentials, prepare_credentials
from skywarden.server.auth.lifecycle import key_store_context
from skywarden.server.auth.middleware import auth_middleware
from skywarden.server.auth.store import KeyStore, open_store
from skywarden.server.errors import error_middleware
from skywarden.server.mcp.methods import McpMethods
from skywarden.server.mcp.sessions import MemorySessionStore, SessionStore
from skywarden.server.mcp.transport import McpEndpoint
from skywarden.server.metrics import setup_metrics
from skywarden.server.openapi import setup_openapi
from skywarden.server.origin import origin_middleware
from skywarden.server.request_context import request_context_middleware
from skywarden.server.security_headers import on_response_prepare
from skywarden.server.settings import Settings
from skywarden.server.tool_calls import ToolRunner
from skywarden.server.upstream_setup import upstream_context
from skywarden.tools.registry import ToolRegistry, discover_tools


def create_app(
    settings: Settings,
    *,
    registry: ToolRegistry | None = None,
    credentials: Credentials | None = None,
    key_store: KeyStore | None = None,
    sessions: SessionStore | None = None,
) -> web.Application:
    registry = registry if registry is not None else discover_tools()
    credentials = credentials if credentials is not None else prepare_credentials(settings)
    key_store = key_store if key_store is not None else open_store(settings.resolved_database_url)
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            request_context_middleware,
            audit_middleware,
            error_middleware,
            origin_middleware,
            auth_middleware,
        ],
        handler_args={"max_field_size": 8190, "max_line_size": 8190},
    )
    app.on_response_prepare.append(on_response_prepare)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[RUNNER] = ToolRunner(registry=registry, upstream=None, settings=settings)
    app[SECRET] = credentials.secret
    app[ADMIN] = credentials.admin
    app[METRICS_CREDENTIAL] = credentials.metrics
    if settings.metrics_enabled:
        setup_metrics(app)
    app[KEY_STORE] = key_store
    app[AUTHENTICATOR] = Authenticator(key_store, credentials.secret, cache_ttl=settings.key_cache_ttl)
    app.cleanup_ctx.append(key_store_context)
    app.cleanup_ctx.append(upstream_context(app))
    if sessions is None:
        sessions = MemorySessionStore(settings.session_idle_timeout, settings.max_sessions)
    app[SESSIONS] = sessions
    app.on_cleanup.append(lambda app: sessions.close())
    McpEndpoint(McpMethods(app[RUNNER]), sessions).add_routes(app)
    rest.add_routes(app)
    admin.add_routes(app)
    setup_openapi(app)
    return app
