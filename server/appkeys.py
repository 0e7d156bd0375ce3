"""Typed keys for what the app factory puts on the application and request."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from skywarden.server.calls.pipeline import ToolRunner
    from skywarden.server.settings import Settings
    from skywarden.tools.registry import ToolRegistry

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
REGISTRY: web.AppKey[ToolRegistry] = web.AppKey("registry")
RUNNER: web.AppKey[ToolRunner] = web.AppKey("runner")
KEY_STORE: web.AppKey[Any] = web.AppKey("key_store")
AUTHENTICATOR: web.AppKey[Any] = web.AppKey("authenticator")
ADMIN: web.AppKey[Any] = web.AppKey("admin_credential")
SECRET: web.AppKey[bytes] = web.AppKey("server_secret")
METRICS_CREDENTIAL: web.AppKey[Any] = web.AppKey("metrics_credential")
SESSIONS: web.AppKey[Any] = web.AppKey("sessions")
LIMITER: web.AppKey[Any] = web.AppKey("limiter")
METRICS: web.AppKey[Any] = web.AppKey("metrics")

# request-scoped values (request[...])
REQUEST_ID: web.RequestKey[str] = web.RequestKey("request_id")
PRINCIPAL: web.RequestKey[Any] = web.RequestKey("principal")
AUDIT: web.RequestKey[Any] = web.RequestKey("audit")
AUTH_FAILURE: web.RequestKey[str] = web.RequestKey("auth_failure")
# The scheme a trusted proxy vouched for; set on the original request too, which aiohttp
# hands to on_response_prepare.
FORWARDED_HTTPS: web.RequestKey[bool] = web.RequestKey("forwarded_https")
