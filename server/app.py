"""The app factory: the one place that wires the parts together."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.api import admin, rest
from skywarden.server.api.openapi import setup_openapi
from skywarden.server.appkeys import (
    ADMIN,
    AUTHENTICATOR,
    KEY_STORE,
    LIMITER,
    METRICS_CREDENTIAL,
    REGISTRY,
    RUNNER,
    SECRET,
    SESSIONS,
    SETTINGS,
)
from skywarden.server.auth.authenticator import Authenticator
from skywarden.server.auth.credentials import Credentials, prepare_credentials
from skywarden.server.auth.lifecycle import key_store_context
from skywarden.server.auth.middleware import auth_middleware
from skywarden.server.auth.store import KeyStore, open_store
from skywarden.server.calls.pipeline import ToolRunner
from skywarden.server.calls.ratelimit import (
    RateLimits,
    auth_failure_limit_middleware,
    extra_cost_charger,
    key_limit_middleware,
)
from skywarden.server.calls.upstream import upstream_context
from skywarden.server.http.context import request_context_middleware
from skywarden.server.http.cors import setup_cors
from skywarden.server.http.errors import error_middleware
from skywarden.server.http.host_origin import origin_middleware
from skywarden.server.http.https_policy import https_middleware
from skywarden.server.http.proxy import parse_networks, proxy_middleware_for
from skywarden.server.http.security_headers import on_response_prepare
from skywarden.server.mcp.methods import McpMethods
from skywarden.server.mcp.sessions import MemorySessionStore, SessionStore
from skywarden.server.mcp.transport import McpEndpoint
from skywarden.server.observability.audit import audit_middleware
from skywarden.server.observability.metrics import setup_metrics
from skywarden.server.settings import Settings
from skywarden.tools.registry import ToolRegistry, discover_tools


def create_app(
    settings: Settings,
    *,
    registry: ToolRegistry | None = None,
    credentials: Credentials | None = None,
    key_store: KeyStore | None = None,
    sessions: SessionStore | None = None,
) -> web.Application:
    """Build the application. Middlewares run in the request-path order of DESIGN.md."""
    registry = registry if registry is not None else discover_tools()
    credentials = credentials if credentials is not None else prepare_credentials(settings)
    key_store = key_store if key_store is not None else open_store(settings.resolved_database_url)
    if sessions is None:
        sessions = MemorySessionStore(settings.session_idle_timeout, settings.max_sessions)
    limits = RateLimits.from_settings(settings)

    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            m
            for m, wanted in (
                (proxy_middleware_for(parse_networks(settings.trusted_proxies)), bool(settings.trusted_proxies)),
                (request_context_middleware, True),  # 1. request id + log context
                (audit_middleware, True),  # 6. one audit event when the answer is done
                (https_middleware, settings.require_https),  # 2. HTTPS policy
                (error_middleware, True),  # every failure as problem+json
                (origin_middleware, True),  # 2. Host / Origin
                (auth_failure_limit_middleware, limits.auth_failures is not None),  # 4. per-IP failures
                (auth_middleware, True),  # 3. API key or admin token -> Principal
                (key_limit_middleware, True),  # 4. per-key limit
            )
            if wanted
        ],
        handler_args={"max_field_size": 8190, "max_line_size": 8190},
    )
    app.on_response_prepare.append(on_response_prepare)
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[LIMITER] = limits
    app[RUNNER] = ToolRunner(
        registry=registry,
        upstream=None,
        settings=settings,
        charge=extra_cost_charger(limits),
        max_concurrent=settings.max_concurrent_calls,
    )
    app[SECRET] = credentials.secret
    app[ADMIN] = credentials.admin
    app[METRICS_CREDENTIAL] = credentials.metrics
    app[KEY_STORE] = key_store
    app[AUTHENTICATOR] = Authenticator(key_store, credentials.secret, cache_ttl=settings.key_cache_ttl)
    app[SESSIONS] = sessions

    app.cleanup_ctx.append(key_store_context)
    app.cleanup_ctx.append(upstream_context(app))
    app.on_cleanup.append(lambda app: sessions.close())

    McpEndpoint(McpMethods(app[RUNNER]), sessions).add_routes(app)
    rest.add_routes(app)
    admin.add_routes(app)
    if settings.metrics_enabled:
        setup_metrics(app)
    setup_openapi(app)
    setup_cors(app, settings.cors_origins)
    return app
