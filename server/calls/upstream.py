"""The shared upstream HTTP session: created on start-up, closed on clean-up."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web

from skywarden.server.appkeys import METRICS, RUNNER, SETTINGS
from skywarden.tools.upstream import TTLCache, Upstream


def upstream_context(app: web.Application):
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        settings = app[SETTINGS]
        connector = aiohttp.TCPConnector(limit=settings.upstream_max_connections, limit_per_host=0, ttl_dns_cache=300)
        session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=settings.upstream_timeout, connect=min(5.0, settings.upstream_timeout)),
            raise_for_status=False,
            trust_env=False,
        )
        app[RUNNER].upstream = Upstream(
            session=session,
            user_agent=settings.nws_user_agent,
            timeout=settings.upstream_timeout,
            max_bytes=settings.upstream_max_bytes,
            cache=TTLCache(settings.upstream_cache_entries),
            observer=app[METRICS].observe_upstream if METRICS in app else None,
        )
        try:
            yield
        finally:
            await session.close()

    return ctx
