"""Open the key store on start-up, flush usage counters while running, close on clean-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import structlog
from aiohttp import web

from skywarden.server.appkeys import AUTHENTICATOR, KEY_STORE

log = structlog.get_logger("skywarden.server")
USAGE_FLUSH_SECONDS = 5.0


async def _flush_forever(app: web.Application) -> None:
    while True:
        await asyncio.sleep(USAGE_FLUSH_SECONDS)
        try:
            await app[AUTHENTICATOR].flush_usage()
        except Exception as exc:
            log.warning("usage flush failed; will retry", error=type(exc).__name__)


async def key_store_context(app: web.Application) -> AsyncIterator[None]:
    store = app[KEY_STORE]
    await store.open()
    flusher = asyncio.create_task(_flush_forever(app))
    try:
        yield
    finally:
        flusher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await flusher
        try:
            await app[AUTHENTICATOR].flush_usage()
        finally:
            await store.close()
