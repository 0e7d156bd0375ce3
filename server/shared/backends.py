"""Pick where shared state lives: in this process, or in Redis when ``redis_url`` is set.

Rate-limit counters, handshake sessions, the key-change broadcast and the recent denials
move together: with Redis every instance (and every worker) draws on one budget, continues
any session, hears every revocation and shows every denial; without it each process keeps
its own.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from skywarden.server.calls.counters import Counters, MemoryCounters
from skywarden.server.mcp.sessions import MemorySessionStore, SessionStore
from skywarden.server.observability.denials import MemoryDenials, RecentDenials
from skywarden.server.settings import Settings, hide_url_passwords
from skywarden.server.shared.broadcast import LocalBroadcast, RedisBroadcast


@dataclass
class SharedState:
    mode: str  # "redis" or "in-process": said at start-up
    counters: Counters
    sessions: SessionStore
    broadcast: LocalBroadcast
    denials: RecentDenials
    client: Any = None  # the Redis client, closed last
    location: str = ""  # the Redis URL as logs show it (no password)


def open_shared_state(settings: Settings, sessions: SessionStore | None = None) -> SharedState:
    """``sessions`` replaces the session store (tests hand in one with a clock of their own)."""
    if not settings.redis_url:
        if sessions is None:
            sessions = MemorySessionStore(
                settings.session_idle_timeout, settings.max_sessions, max_per_key=settings.max_sessions_per_key
            )
        broadcast = LocalBroadcast(alone=settings.workers == 1)
        return SharedState("in-process", MemoryCounters(), sessions, broadcast, MemoryDenials())
    from skywarden.server.calls.redis_counters import RedisCounters
    from skywarden.server.mcp.redis_sessions import RedisSessionStore
    from skywarden.server.observability.denials import RedisDenials
    from skywarden.server.shared.redis_connection import redis_client

    client = redis_client(settings.redis_url)
    prefix = settings.redis_key_prefix
    if sessions is None:
        sessions = RedisSessionStore(
            client, prefix, settings.session_idle_timeout, settings.max_sessions, settings.max_sessions_per_key
        )
    return SharedState(
        "redis",
        RedisCounters(client, prefix),
        sessions,
        RedisBroadcast(client, prefix),
        RedisDenials(client, prefix),
        client,
        hide_url_passwords(settings.redis_url),
    )


def shared_state_context(state: SharedState) -> Callable[[web.Application], AsyncIterator[None]]:
    """Subscribe to the broadcast before serving (a Redis that does not answer then is logged
    once: the server starts, readiness says 503 until it answers); on clean-up close the
    sessions, then Redis."""

    async def context(app: web.Application) -> AsyncIterator[None]:
        await state.broadcast.start()
        if state.client is not None and not await state.counters.reachable():
            structlog.get_logger("skywarden.server").warning(
                "redis unreachable at start; shared limits, sessions and key-change news wait for it "
                "(/api/health/ready answers 503 meanwhile)",
                redis_url=state.location,
            )
        try:
            yield
        finally:
            await state.broadcast.close()
            await state.sessions.close()
            await state.denials.close()
            if state.client is not None:
                await state.client.aclose()

    return context
