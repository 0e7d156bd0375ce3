"""The one bounded cache of the server: a least-recently-used map whose entries may expire."""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Hashable
from typing import Any

_NEVER = math.inf  # the expiry of an entry that is only ever evicted


class TTLCache:
    """The one bounded cache of the request path: a least-recently-used map of at most
    ``max_entries`` (0 keeps nothing) whose entries may expire. The server's caches are built in
    ``skywarden.server.calls.caches``."""

    def __init__(self, max_entries: int, clock: Any = time.monotonic) -> None:
        self.max_entries = max_entries
        self._clock = clock
        self._data: OrderedDict[Hashable, tuple[float, Any]] = OrderedDict()
        self.hits = 0
        self.misses = 0

    def get(self, key: Hashable, *, count: bool = True) -> Any | None:
        entry = self._data.get(key)
        if entry is None or (entry[0] != _NEVER and entry[0] <= self._clock()):  # kept entries skip the clock
            if entry is not None:
                del self._data[key]
            self.misses += count
            return None
        self._data.move_to_end(key)
        self.hits += count
        return entry[1]

    def put(self, key: Hashable, value: Any, ttl: float, until: float = _NEVER) -> None:
        """Keep ``value`` for ``ttl`` seconds, and not past ``until`` (on this cache's clock)."""
        if ttl > 0:
            self.put_until(key, value, min(self._clock() + ttl, until))

    def keep(self, key: Hashable, value: Any) -> None:
        """An entry that never expires: it leaves only as the least recently used."""
        self.put_until(key, value, _NEVER)

    def put_until(self, key: Hashable, value: Any, expires: float) -> None:
        if expires <= self._clock() or self.max_entries <= 0:
            return
        self._data[key] = (expires, value)
        self._data.move_to_end(key)
        while len(self._data) > self.max_entries:
            self._data.popitem(last=False)

    def take(self, key: Hashable) -> Any | None:
        """Remove and return a live entry (a value meant to be used once)."""
        found = self.get(key, count=False)
        self._data.pop(key, None)
        return found

    def expires(self, key: Hashable) -> float | None:
        entry = self._data.get(key)
        return entry[0] if entry is not None else None

    def clear(self) -> None:
        """Forget every entry (what they were made from changed: an upstream listed new tools)."""
        self._data.clear()

    def __len__(self) -> int:
        return len(self._data)
