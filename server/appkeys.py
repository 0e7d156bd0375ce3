"""Typed keys for what the app factory puts on the application (per-request state is
``request_state.RequestState``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from skywarden.server.auth.authenticator import Authenticator
    from skywarden.server.auth.key_operations import KeyOperations
    from skywarden.server.auth.store import KeyStore
    from skywarden.server.calls.ratelimit import RateLimits
    from skywarden.server.gateway.gateway import Gateway
    from skywarden.server.identity.service import Identity
    from skywarden.server.mcp.sessions import SessionStore
    from skywarden.server.mcp.streams import ChangeStreams
    from skywarden.server.plugins.registry import ToolRegistry
    from skywarden.server.settings import Settings

SETTINGS: web.AppKey[Settings] = web.AppKey("settings")
REGISTRY: web.AppKey[ToolRegistry] = web.AppKey("registry")
KEY_STORE: web.AppKey[KeyStore] = web.AppKey("key_store")
KEY_OPERATIONS: web.AppKey[KeyOperations] = web.AppKey("key_operations")
AUTHENTICATOR: web.AppKey[Authenticator] = web.AppKey("authenticator")
SESSIONS: web.AppKey[SessionStore] = web.AppKey("sessions")
LIMITER: web.AppKey[RateLimits] = web.AppKey("limiter")
IDENTITY: web.AppKey[Identity | None] = web.AppKey("identity")  # None unless oidc_issuers is set
GATEWAY: web.AppKey[Gateway] = web.AppKey("gateway")
STREAMS: web.AppKey[ChangeStreams] = web.AppKey("change_streams")
