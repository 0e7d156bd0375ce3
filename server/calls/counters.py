"""Where rate-limit counters live: in this process, or in Redis for every instance at once.

A counter takes ``cost`` from every window of a limit or from none, and tells for each window
what remains and when it next frees a unit. Both kinds keep the ``limits`` library's
sliding-window counter (the previous window's count, weighted by how much of it still
overlaps, plus the current one), so a limit means the same wherever it is counted. The rates
themselves are parsed by ``limits``.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import NamedTuple, Protocol

from limits import RateLimitItem

Windows = tuple[RateLimitItem, ...]


@functools.lru_cache(maxsize=4096)
def _shape(window: RateLimitItem) -> tuple[int, int]:
    """A window's (amount, seconds), computed once per window."""
    return window.amount, window.get_expiry()


class CountersUnavailable(RuntimeError):
    """The shared counters cannot be reached."""


class WindowState(NamedTuple):  # a named tuple: built on every charge, at a third of a frozen dataclass's cost
    window: RateLimitItem
    remaining: int
    reset_seconds: int  # until the window frees a unit (at least 1 when refused)


class Outcome(NamedTuple):
    refused: RateLimitItem | None  # the first window that had too little left; None = taken
    states: tuple[WindowState, ...]


class Counters(Protocol):
    async def take(self, scope: str, identity: str, windows: Windows, cost: int) -> Outcome: ...
    async def reachable(self) -> bool: ...


class MemoryCounters:
    """In this process (one instance, or one worker), with the same arithmetic as the Redis script.

    Each (scope, identity, window) keeps three numbers: its current bucket and the counts of that
    bucket and the one before. Entries whose buckets have passed are swept every ``SWEEP_EVERY``
    new entries and at least every ``SWEEP_SECONDS`` (on the next charge after them), so memory
    follows the identities seen in the last two windows, not all that were ever seen, and a burst
    of entries (an outage's, say) leaves with time, not only when more arrive.
    (The ``limits`` library's memory storage did the same job at four times the cost per charge:
    two storage calls, key strings built per call, and an expiry task.)
    """

    SWEEP_EVERY = 10_000  # new entries between sweeps
    SWEEP_SECONDS = 60.0  # and at least this often while charges arrive

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._entries: dict[tuple[str, str, int, int], list[int]] = {}
        self._added = 0
        self._next_sweep = clock() + self.SWEEP_SECONDS

    def __len__(self) -> int:
        return len(self._entries)

    def _sweep(self, now: float) -> None:
        stale = [k for k, entry in self._entries.items() if entry[0] < int(now // k[3]) - 1]
        for key in stale:
            del self._entries[key]

    async def take(self, scope: str, identity: str, windows: Windows, cost: int) -> Outcome:
        now = self._clock()
        entries = self._entries
        refused = None
        found = []
        for window in windows:
            amount, size = _shape(window)
            key = (scope, identity, amount, size)
            bucket = int(now // size)
            entry = entries.get(key)
            if entry is None or entry[0] < bucket - 1:
                previous = current = 0
            elif entry[0] == bucket - 1:
                previous, current = entry[2], 0
            else:
                previous, current = entry[1], entry[2]
            previous_left = size - (now - bucket * size)
            count = previous * previous_left / size + current
            if refused is None and count >= amount - cost + 1:
                refused = window
            found.append((window, key, entry, bucket, previous, current, count, previous_left))
        taken = refused is None
        states = []
        for window, key, entry, bucket, previous, current, count, previous_left in found:
            if taken:
                current += cost
                count += cost
                if entry is None:
                    self._added += 1
                    entries[key] = [bucket, previous, current]
                else:
                    entry[0], entry[1], entry[2] = bucket, previous, current
            # The next unit frees when the previous window's weight drops by one (every size /
            # previous seconds); with nothing from it, when the current window's count leaves.
            if previous:
                reset_seconds = math.ceil(previous_left % (key[3] / previous))
            else:
                reset_seconds = math.ceil(previous_left) if current else 0
            states.append(WindowState(window, max(0, key[2] - math.floor(count)), reset_seconds))
        if self._added >= self.SWEEP_EVERY or now >= self._next_sweep:
            self._added = 0
            self._next_sweep = now + self.SWEEP_SECONDS
            self._sweep(now)
        return Outcome(refused, tuple(states))

    async def reachable(self) -> bool:
        return True
