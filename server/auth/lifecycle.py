"""Open the key store on start-up; while running, flush usage counters and follow the store's
change feed; close on clean-up."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable

import structlog
from aiohttp import web

from skywarden.server.auth.authenticator import CHANGE_FEED_SECONDS, Authenticator
from skywarden.server.auth.backends import open_checked
from skywarden.server.auth.store import KeyStore

log = structlog.get_logger("skywarden.server")
USAGE_FLUSH_SECONDS = 5.0


async def _flush_forever(authenticator: Authenticator) -> None:
    while True:
        await asyncio.sleep(USAGE_FLUSH_SECONDS)
        try:
            await authenticator.flush_usage()
        except Exception as exc:
            log.warning("usage flush failed; will retry", error=type(exc).__name__)


async def _follow_changes_forever(authenticator: Authenticator) -> None:
    failing = False
    while True:
        await asyncio.sleep(CHANGE_FEED_SECONDS)
        try:
            await authenticator.follow_changes()
            failing = False
        except Exception as exc:
            if not failing:  # once per outage, not once a second
                log.warning("reading the key change feed failed; will retry", error=type(exc).__name__)
            failing = True


def key_store_context(
    store: KeyStore, authenticator: Authenticator
) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's clean-up context for the key store (the app factory gives it both)."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await open_checked(store)
        tasks = [
            asyncio.create_task(_flush_forever(authenticator)),
            asyncio.create_task(_follow_changes_forever(authenticator)),
        ]
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            try:
                await authenticator.flush_usage()
            finally:
                await store.close()

    return ctx
