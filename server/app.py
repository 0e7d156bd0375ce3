"""The app factory: the one place that wires the parts together (see docs/architecture.md)."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.api import discovery
from skywarden.server.api.admin import AdminApi
from skywarden.server.api.admin_upstreams import UpstreamAdminApi
from skywarden.server.api.openapi import ToolDocs, setup_openapi
from skywarden.server.api.rest import RestApi
from skywarden.server.appkeys import (
    AUTHENTICATOR,
    GATEWAY,
    IDENTITY,
    KEY_OPERATIONS,
    KEY_STORE,
    LIMITER,
    REGISTRY,
    SESSIONS,
    SETTINGS,
    STREAMS,
)
from skywarden.server.auth.admission import admission_middleware_for
from skywarden.server.auth.authenticate import Authentication, check_credential_in_url
from skywarden.server.auth.authenticator import Authenticator
from skywarden.server.auth.backends import open_store
from skywarden.server.auth.credentials import Credentials, prepare_credentials
from skywarden.server.auth.key_operations import KeyOperations
from skywarden.server.auth.lifecycle import key_store_context
from skywarden.server.auth.store import KeyStore
from skywarden.server.auth.upstream_operations import UpstreamOperations
from skywarden.server.calls.caches import RequestCaches
from skywarden.server.calls.pipeline import ToolPipeline, forbid_tool
from skywarden.server.calls.ratelimit import RateLimits
from skywarden.server.console import pages
from skywarden.server.console.binding import SignInCookie, derive_key
from skywarden.server.console.sso import ConsoleSignIn
from skywarden.server.gateway.gateway import Gateway, gateway_context
from skywarden.server.http.body import BodyReader, body_size_check, check_content_coding
from skywarden.server.http.connections import MAX_HEADER_FIELD_BYTES, MAX_REQUEST_LINE_BYTES
from skywarden.server.http.cors import setup_cors
from skywarden.server.http.errors import DoorRenderers, error_middleware_for
from skywarden.server.http.headers import header_text_check
from skywarden.server.http.host_origin import host_origin_check
from skywarden.server.http.https_policy import https_check
from skywarden.server.http.proxy import parse_networks, proxy_middleware_for
from skywarden.server.http.routes import Door
from skywarden.server.http.security_headers import security_headers_for
from skywarden.server.identity.service import build_identity, identity_context
from skywarden.server.mcp.methods import McpMethods, ToolView
from skywarden.server.mcp.sessions import SessionStore
from skywarden.server.mcp.streams import ChangeStreams
from skywarden.server.mcp.transport import McpEndpoint
from skywarden.server.mcp.wire import rpc_error_answer
from skywarden.server.observability.audit import audit_middleware_for, note_refusal
from skywarden.server.observability.metrics import Metrics
from skywarden.server.observability.redaction import register_secret
from skywarden.server.plugins.lifecycle import PluginLifecycle, lifecycle_context
from skywarden.server.plugins.registry import ToolRegistry, discover_tools
from skywarden.server.plugins.runtime import plugin_runtimes, tool_runtimes
from skywarden.server.plugins.settings import secret_texts
from skywarden.server.plugins.upstream_setup import build_upstream, upstream_context
from skywarden.server.request_state import open_state, state_of
from skywarden.server.settings import Settings
from skywarden.server.shared.backends import open_shared_state, shared_state_context
from skywarden.server.upstreams import grantable_names


def create_app(
    settings: Settings,
    *,
    registry: ToolRegistry | None = None,
    credentials: Credentials | None = None,
    key_store: KeyStore | None = None,
    sessions: SessionStore | None = None,
) -> web.Application:
    """Build the application. Middlewares run in the order of the request path (docs/architecture.md)."""
    registry = registry if registry is not None else discover_tools()
    credentials = credentials if credentials is not None else prepare_credentials(settings)
    key_store = key_store if key_store is not None else open_store(settings.resolved_database_url)
    shared = open_shared_state(settings, sessions)
    sessions, broadcast = shared.sessions, shared.broadcast
    limits = RateLimits.from_settings(settings, shared.counters)
    caches = RequestCaches.from_settings(settings)
    upstream_operations = UpstreamOperations(
        store=key_store,
        secret=credentials.secret,
        declared=settings.upstreams,
        separator=settings.gateway_separator,
        admin_commands=settings.upstream_admin_commands,
        admin_env=settings.upstream_admin_env,
        changed=lambda: broadcast.publish("upstreams-changed"),
    )
    grantable_now: list[frozenset[str]] = []  # made again after every change of tools or upstreams

    def grantable() -> frozenset[str]:
        if not grantable_now:
            grantable_now.append(
                grantable_names(registry.grantable_names(), gateway.configs, settings.gateway_separator)
            )
        return grantable_now[0]

    tool_docs: list[ToolDocs] = []  # set below, once the app exists

    def tools_changed() -> None:
        caches.tool_lists.clear()
        grantable_now.clear()
        change_streams.tools_changed()
        for docs in tool_docs:
            docs.refresh()

    # upstream MCP servers, declared or stored: their tools join the registry as they list them (docs/gateway.md)
    gateway = Gateway(settings, registry, tools_changed, upstream_operations.load)
    broadcast.on("upstreams-changed", gateway.refresh)
    metrics = None
    if settings.metrics_enabled:
        metrics = Metrics(sessions, caches.upstream, caches.results, registry.get, shared.denials)
    upstream = build_upstream(settings, caches.upstream, metrics.observe_upstream if metrics else None)
    runtimes = plugin_runtimes(registry, settings, upstream)
    for runtime in runtimes.values():
        for secret in secret_texts(runtime.settings):
            register_secret(secret)  # a plugin's secret is redacted from every log line
    authenticator = Authenticator(
        key_store,
        credentials.secret,
        cache_ttl=settings.key_cache_ttl,
        max_cached=settings.key_cache_entries,
        trust_cache=lambda: broadcast.listening,
    )
    broadcast.on("key-changed", authenticator.invalidate)
    broadcast.on("flush-usage", authenticator.flush_usage)
    broadcast.on_resubscribe.append(authenticator.forget_all)
    identity = build_identity(settings, grantable)
    pipeline = ToolPipeline(
        registry=registry,
        runtimes=tool_runtimes(registry, runtimes),
        charge=limits.charge,
        max_concurrent=settings.max_concurrent_calls,
        refuse=identity.scope_refusal if identity is not None else forbid_tool,
        results=caches.results,
        validated=caches.validated,
        why_absent=gateway.why_absent,
    )
    operations = KeyOperations(
        store=key_store,
        secret=credentials.secret,
        tool_names=grantable,
        default_environment=settings.key_environment,
        changed=lambda key_id: broadcast.publish("key-changed", key_id),
        flush_usage=lambda: broadcast.publish("flush-usage"),
    )

    authentication = Authentication(authenticator, credentials.admin, credentials.metrics, identity)
    edge_checks = [
        check_credential_in_url,  # first: nothing may answer, or echo the URL, before it is refused
        header_text_check(bool(settings.trusted_proxies)),  # before any header is used
        host_origin_check(settings),
        *([https_check(settings)] if settings.require_https else []),  # after the Host check
        body_size_check(settings.max_body_bytes),  # an announced body over the limit: 413 before a byte is read
        check_content_coding,  # a body in a coding the server cannot undo: 415 before a byte is read
    ]
    body_reader = BodyReader(settings.body_timeout, settings.max_json_depth)
    renderers = DoorRenderers()  # problem+json, and each door's own format
    renderers.register(Door.JSON_RPC, rpc_error_answer)
    proxied = bool(settings.trusted_proxies)  # then the proxy middleware is outermost and makes the request state
    app = web.Application(
        client_max_size=settings.max_body_bytes,
        middlewares=[
            m
            for m, wanted in (
                (proxy_middleware_for(parse_networks(settings.trusted_proxies)), proxied),  # 0
                # 1-2. request id, one audit event per answer
                (audit_middleware_for(metrics, shared.denials, state_of if proxied else open_state), True),
                (error_middleware_for(renderers, note_refusal), True),  # 3. every error in the door's format
                (admission_middleware_for(edge_checks, authentication, limits), True),  # 4-9. edge, credential, limits
            )
            if wanted
        ],
        handler_args={"max_field_size": MAX_HEADER_FIELD_BYTES, "max_line_size": MAX_REQUEST_LINE_BYTES},
    )
    app.on_response_prepare.append(security_headers_for(bool(settings.trusted_proxies)))
    app[SETTINGS] = settings
    app[REGISTRY] = registry
    app[LIMITER] = limits
    app[KEY_STORE] = key_store
    app[AUTHENTICATOR] = authenticator
    app[KEY_OPERATIONS] = operations
    app[SESSIONS] = sessions
    app[IDENTITY] = identity
    app[GATEWAY] = gateway

    app.cleanup_ctx.append(key_store_context(key_store, authenticator))
    app.cleanup_ctx.append(shared_state_context(shared))
    app.cleanup_ctx.append(upstream_context(upstream))
    app.cleanup_ctx.append(gateway_context(gateway))
    if identity is not None:
        app.cleanup_ctx.append(identity_context(identity))
    # last: start-up hooks see the open upstream pool; shutdown hooks run first, after the last call
    app.cleanup_ctx.append(lifecycle_context(PluginLifecycle(registry.plugins, runtimes, settings.plugin_hook_timeout)))

    change_streams = ChangeStreams(
        lambda principal, view: frozenset(t.name for t in pipeline.visible_tools(principal) if view.shows(t)),
        authentication.still_valid,
        settings.max_streams_per_key,
    )
    broadcast.on("session-ended", change_streams.end_session)

    def upstream_view(name: str) -> ToolView | None:
        if not any(c.name == name for c in gateway.configs):
            return None
        return ToolView(name, name + settings.gateway_separator)

    broadcast.on("key-changed", change_streams.end_for_key)
    authenticator.on_changes.append(change_streams.check_keys)  # changes no broadcast told of (the CLI)
    app.on_shutdown.append(change_streams.end_all)
    app[STREAMS] = change_streams
    McpEndpoint(
        McpMethods(pipeline, caches.tool_lists),
        sessions,
        body_reader,
        limits.charge,
        settings.max_batch_size,
        change_streams,
        upstream_view,
        lambda session_id: broadcast.publish("session-ended", session_id),
    ).add_routes(app)
    readiness = {"key_store": key_store.ping, "rate_limiter": limits.reachable, "broadcast": broadcast.reachable}
    RestApi(pipeline, body_reader, readiness, gateway.states).add_routes(app)
    AdminApi(operations, shared.denials, body_reader).add_routes(app)
    UpstreamAdminApi(upstream_operations, gateway, body_reader).add_routes(app)
    discovery.add_routes(app, identity)
    if metrics is not None:
        metrics.registry.register(gateway.collector())
        metrics.add_routes(app)
    if settings.console_enabled:
        sso = identity is not None and identity.admin_sign_in and bool(settings.console_oidc_client_id)
        signs_in = identity if sso else None
        pages.add_routes(app, lambda: registry.grantable_names(upstreams=False), signs_in is not None)
        if signs_in is not None:
            ConsoleSignIn(
                signs_in,
                signs_in.verifier.issuers[signs_in.issuers[0]],
                settings.console_oidc_client_id,
                settings.console_oidc_client_secret,
                SignInCookie(derive_key(credentials.secret)),
                body_reader,
                limits,
            ).add_routes(app)
    tool_docs.append(setup_openapi(app, registry, settings.openapi_upstream_tools))
    setup_cors(app, settings.cors_origins)
    return app
