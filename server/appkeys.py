"""Typed keys for what the app factory puts on the application and the middlewares on a request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from skywarden.server.auth.authenticator import Authenticator
    from skywarden.server.auth.key_operations import KeyOperations
    from skywarden.server.auth.principal import Principal
    from skywarden.server.auth.store import KeyStore
    from skywarden.server.calls.pipeline import Prepaid
    from skywarden.server.calls.ratelimit import RateLimits
    from skywarden.server.identity.service import Identity
    from skywarden.server.mcp.sessions import SessionStore
    from skywarden.server.settings import Settings
    from skywarden.tools.registry import ToolRegistry

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
REGISTRY: web.AppKey[ToolRegistry] = web.AppKey("registry")
KEY_STORE: web.AppKey[KeyStore] = web.AppKey("key_store")
KEY_OPERATIONS: web.AppKey[KeyOperations] = web.AppKey("key_operations")
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions")
LIMITER: web.AppKey[RateLimits] = web.AppKey("limiter")
IDENTITY: web.AppKey[Identity | None] = web.AppKey("identity")  # None unless oidc_issuers is set

# request-scoped values (request[...])
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PRINCIPAL: web.RequestKey[Principal] = web.RequestKey("principal")
AUDIT: web.RequestKey[dict[str, Any]] = web.RequestKey("audit")
AUTH_FAILURE: web.RequestKey[str] = web.RequestKey("auth_failure")
PREPAID: web.RequestKey[Prepaid] = web.RequestKey("prepaid")
# The RateLimit fields of the key's latest charge, sent on the answer.
RATE_LIMIT_FIELDS: web.RequestKey[dict[str, str]] = web.RequestKey("rate_limit_fields")
# The id of the JSON-RPC message on /mcp once its body was read, echoed in every later error.
RPC_ID: web.RequestKey[str | int | None] = web.RequestKey("rpc_id")
# The scheme a trusted proxy vouched for; set on the original request too, which aiohttp
# hands to on_response_prepare.
FORWARDED_HTTPS: web.RequestKey[bool] = web.RequestKey("forwarded_https")
