"""The shared upstream client tools use: built from settings, its pool opened on start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

from aiohttp import web

from skywarden.server import __version__
from skywarden.server.plugins.http_client import Upstream
from skywarden.server.settings import Settings
from skywarden.server.ttlcache import TTLCache


def build_upstream(
    settings: Settings, cache: TTLCache, observer: Callable[[str, float, bool], None] | None
) -> Upstream:
    """The one pool every plugin's client shares. Its own User-Agent (``skywarden/<version>``) is
    only what a client sends whose plugin gives none; each plugin's runtime gives one."""
    return Upstream(
        user_agent=f"skywarden/{__version__}",
        timeout=settings.upstream_timeout,
        max_bytes=settings.upstream_max_bytes,
        cache=cache,
        max_connections=settings.upstream_max_connections,
        observer=observer,
        allowed_networks=settings.upstream_allowed_networks,
    )


def upstream_context(upstream: Upstream) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await upstream.open()
        try:
            yield
        finally:
            await upstream.close()

    return ctx
