"""An upstream's changes of tools, answered by listing them again at most once per interval.

An upstream says when its tools changed (``notifications/tools/list_changed``, or an event of
its ``subscriptions/listen`` stream). Each listing costs Skywarden the upstream's whole listing,
every client's tool lists and a change notice to each. An upstream that announced a change after
every listing (carelessly or on purpose) made Skywarden list it back to back, at full CPU. So
changes are coalesced: the first after a quiet ``interval`` is listed at once, those that come
while a listing runs or waits make one more listing, which starts at least ``interval`` after
the previous one ended (a slow listing is not followed by another at once), and a change
announced during a listing is never lost.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable

RELIST_INTERVAL = 2.0  # seconds between two listings an upstream's announcements cause, at least


class Relisting:
    """``changed()`` after each announcement; ``relist`` runs as described above."""

    def __init__(
        self,
        relist: Callable[[], Awaitable[None]],
        interval: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._relist = relist
        self._interval = RELIST_INTERVAL if interval is None else interval
        self._clock = clock
        self._sleep = sleep
        self._last = -math.inf  # when the last listing ended
        self._pending = False
        self._task: asyncio.Task[None] | None = None

    def changed(self) -> None:
        self._pending = True
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run())

    def cancel(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _run(self) -> None:
        while self._pending:
            wait = self._last + self._interval - self._clock()
            if wait > 0:
                await self._sleep(wait)
            self._pending = False
            try:
                await self._relist()
            finally:
                self._last = self._clock()
