"""Where rate-limit counters live: in this process, or in Redis for every instance at once.

A counter takes ``cost`` from every window of a limit or from none, and tells for each window
what remains and when it next frees a unit. Both kinds keep the ``limits`` library's
sliding-window counter (the previous window's count, weighted by how much of it still
overlaps, plus the current one), so a limit means the same wherever it is counted.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Protocol

from limits import RateLimitItem
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

Windows = tuple[RateLimitItem, ...]


class CountersUnavailable(RuntimeError):
    """The shared counters cannot be reached."""


@dataclass(frozen=True, slots=True)
class WindowState:
    window: RateLimitItem
    remaining: int
    reset_seconds: int  # until the window frees a unit (at least 1 when refused)


@dataclass(frozen=True, slots=True)
class Outcome:
    refused: RateLimitItem | None  # the first window that had too little left; None = taken
    states: tuple[WindowState, ...]


class Counters(Protocol):
    async def take(self, scope: str, identity: str, windows: Windows, cost: int) -> Outcome: ...
    async def reachable(self) -> bool: ...
    async def close(self) -> None: ...


class MemoryCounters:
    """In this process (one instance, or one worker): the ``limits`` library's memory storage."""

    def __init__(self) -> None:
        self.limiter = SlidingWindowCounterRateLimiter(MemoryStorage())

    async def take(self, scope: str, identity: str, windows: Windows, cost: int) -> Outcome:
        refused = None
        if len(windows) > 1:  # one window's hit is all-or-nothing by itself: no test needed
            for window in windows:
                if not await self.limiter.test(window, scope, identity, cost=cost):
                    refused = window
                    break
        if refused is None:
            for window in windows:
                if not await self.limiter.hit(window, scope, identity, cost=cost):
                    refused = window
                    break
        now = time.time()
        states = []
        for window in windows:
            stats = await self.limiter.get_window_stats(window, scope, identity)
            states.append(WindowState(window, stats.remaining, max(0, math.ceil(stats.reset_time - now))))
        return Outcome(refused, tuple(states))

    async def reachable(self) -> bool:
        return True

    async def close(self) -> None:
        return None
