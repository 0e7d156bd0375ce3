"""Turns at one thing, shared fairly by time between keys: the next turn goes to the waiting
check whose key has held the turn least lately (its seconds, halved every ``HALF_LIFE``), plus
the check's own estimate of its time, less a ``AGING``th of the time it has waited. A key whose
checks ran long waits behind keys whose checks did not, and a check estimated to be long waits
behind short ones, so a few keys sending checks that run to their time limit cannot keep
another key's quick check waiting for all of theirs; and a long check still comes to its turn
while quick ones keep arriving, once it has waited long enough. Between equals, the keys take
turns in the order they came, the key that just had the turn last."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

HALF_LIFE = 10.0  # seconds in which what a key had of the turn counts half as much
# A check's wait counts for a quarter of its time against what its key had and its estimate:
# keys busy with quick checks have had at most HALF_LIFE / ln 2 (14.4 s) between them, so a
# check estimated at 2 s from a key that had nothing comes before any of theirs within 8 s.
AGING = 4.0
REMEMBERED = 4096  # keys whose recent time is kept; beyond, the one charged longest ago is forgotten


class Held:
    """The turn as its holder has it: time it spends on something that is not its own doing
    (starting the process again after another key's check ended it) is ``excused``."""

    def __init__(self) -> None:
        self.excused = 0.0


class Turns:
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        self._clock = clock
        self._held_by: str | None = None  # the key holding the turn; None: it is free
        # by key, in the order they are served among equals: each check's future, estimate, arrival
        self._queues: dict[str, deque[tuple[asyncio.Future[None], float, float]]] = {}
        self._had: dict[str, tuple[float, float]] = {}  # key -> (seconds held, as of when)
        self.waiting = 0

    def of(self, key: str) -> int:
        """The turns ``key`` holds or waits for."""
        return len(self._queues.get(key, ())) + (self._held_by == key)

    def had(self, key: str) -> float:
        """The seconds ``key`` held the turn lately, halved every ``HALF_LIFE``."""
        seconds, since = self._had.get(key, (0.0, 0.0))
        return seconds * 0.5 ** (max(0.0, self._now() - since) / HALF_LIFE) if seconds else 0.0

    @asynccontextmanager
    async def take(self, key: str, seconds: float, estimate: float = 0.0) -> AsyncIterator[Held]:
        """Hold the turn for ``key``, waiting at most ``seconds`` for it (``TimeoutError``);
        ``estimate``: the seconds the check may take, by what is known of it beforehand."""
        if self._held_by is not None or self._queues:
            await self._wait(key, seconds, estimate)
        else:
            self._held_by = key
        started, held = self._now(), Held()
        try:
            yield held
        finally:
            try:
                self._charge(key, self._now() - started - held.excused)
            finally:
                self._hand_on()

    def _now(self) -> float:
        return self._clock() if self._clock is not None else asyncio.get_running_loop().time()

    def _charge(self, key: str, seconds: float) -> None:
        had = self.had(key) + max(0.0, seconds)
        self._had.pop(key, None)  # kept in the order charged: the first is the one charged longest ago
        self._had[key] = (had, self._now())
        if len(self._had) > REMEMBERED:
            del self._had[next(iter(self._had))]

    def _rank(self, key: str, now: float) -> float:
        _, estimate, arrived = self._queues[key][0]
        return self.had(key) + estimate - (now - arrived) / AGING

    async def _wait(self, key: str, seconds: float, estimate: float) -> None:
        turn = asyncio.get_running_loop().create_future()
        entry = (turn, estimate, self._now())
        queue = self._queues.setdefault(key, deque())
        queue.append(entry)
        self.waiting += 1
        try:
            async with asyncio.timeout(seconds):
                await turn
        except BaseException:
            if turn.done() and not turn.cancelled():  # handed the turn as it gave up: pass it on
                self._hand_on()
            elif entry in queue:
                queue.remove(entry)
                if not queue and self._queues.get(key) is queue:
                    del self._queues[key]
            raise
        finally:
            self.waiting -= 1

    def _hand_on(self) -> None:
        held_by, self._held_by = self._held_by, None
        if held_by in self._queues:  # among equals, the key that just had the turn goes last
            self._queues[held_by] = self._queues.pop(held_by)
        now = self._now()
        while self._queues:
            key = min(self._queues, key=lambda k: self._rank(k, now))
            queue = self._queues[key]
            turn, _, _ = queue.popleft()
            if not queue:
                del self._queues[key]
            if not turn.done():
                turn.set_result(None)
                self._held_by = key  # from now: the waiter resumes holding it
                return
