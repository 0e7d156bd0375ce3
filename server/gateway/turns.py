"""Turns at one thing, taken a key at a time in rotation: while a key holds the turn or has just
had it, every other key waiting goes first. A first-come queue would let one key with several
checks waiting keep the others waiting for all of them."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager


class Turns:
    def __init__(self) -> None:
        self._held_by: str | None = None
        self._busy = False
        self._queues: dict[str, deque[asyncio.Future[None]]] = {}  # by key, in the order they are served
        self.waiting = 0

    def of(self, key: str) -> int:
        """The turns ``key`` holds or waits for."""
        return len(self._queues.get(key, ())) + (self._held_by == key)

    @asynccontextmanager
    async def take(self, key: str, seconds: float) -> AsyncIterator[None]:
        """Hold the turn for ``key``, waiting at most ``seconds`` for it (``TimeoutError``)."""
        if self._busy or self._queues:
            await self._wait(key, seconds)
        else:
            self._busy = True
            self._held_by = key
        try:
            yield
        finally:
            self._hand_on()

    async def _wait(self, key: str, seconds: float) -> None:
        turn = asyncio.get_running_loop().create_future()
        queue = self._queues.setdefault(key, deque())
        queue.append(turn)
        self.waiting += 1
        try:
            async with asyncio.timeout(seconds):
                await turn
        except BaseException:
            if turn.done() and not turn.cancelled():  # handed the turn as it gave up: pass it on
                self._hand_on()
            elif turn in queue:
                queue.remove(turn)
                if not queue and self._queues.get(key) is queue:
                    del self._queues[key]
            raise
        finally:
            self.waiting -= 1

    def _hand_on(self) -> None:
        held_by, self._held_by = self._held_by, None
        if held_by in self._queues:  # the key that just had the turn goes after the others
            self._queues[held_by] = self._queues.pop(held_by)
        while self._queues:
            key = next(iter(self._queues))
            queue = self._queues.pop(key)
            turn = queue.popleft()
            if queue:
                self._queues[key] = queue
            if not turn.done():
                turn.set_result(None)
                self._held_by = key  # from now: the waiter resumes holding it
                return
        self._busy = False
