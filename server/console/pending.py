"""One-use entries kept for console sign-ins (one-time handles, the sign-ins that made one),
bounded without eviction.

A store that drops its oldest entry to make room lets any set of callers push out everyone
else's entries. This one refuses the newcomer instead (``Full``, with how long until room is
made): each client may hold ``per_client`` live entries and the store ``total``; entries leave
when they are taken or when their lifetime ends, never because of other callers. A client is
what ``http/client_address.client_of`` makes of its address (an IPv4 address or an IPv6 /64).

Refusing is only safe where filling the store takes more than asking: the console keeps an
entry only while a code is at the provider or once it gave a token (``sso``), never for a
sign-in that was merely started.
"""

from __future__ import annotations

import math
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

V = TypeVar("V")


class Full(Exception):
    """No room for another entry from this client (or at all) until ``retry_after`` seconds pass."""

    def __init__(self, retry_after: int, whole_store: bool) -> None:
        super().__init__(f"full for {retry_after} s")
        self.retry_after = retry_after
        self.whole_store = whole_store


@dataclass(slots=True)
class _Entry(Generic[V]):
    expires: float
    client: str
    value: V


class OnceStore(Generic[V]):
    """Entries that live ``lifetime`` seconds at most and are taken once. Every entry has the same
    lifetime, so insertion order is expiry order: expired entries are dropped from the front."""

    def __init__(
        self, lifetime: float, per_client: int, total: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.lifetime = lifetime
        self.per_client = per_client
        self.total = total
        self.clock = clock
        self._entries: OrderedDict[str, _Entry[V]] = OrderedDict()
        self._by_client: dict[str, OrderedDict[str, float]] = {}

    def _expire(self) -> None:
        now = self.clock()
        while self._entries:
            key, entry = next(iter(self._entries.items()))
            if entry.expires > now:
                return
            self._remove(key)

    def _remove(self, key: str) -> _Entry[V] | None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            mine = self._by_client[entry.client]
            del mine[key]
            if not mine:
                del self._by_client[entry.client]
        return entry

    def _wait(self, oldest_expiry: float) -> int:
        return max(1, math.ceil(oldest_expiry - self.clock()))

    def check_room(self, client: str) -> None:
        """Raise ``Full`` unless ``client`` may add an entry now."""
        self._expire()
        mine = self._by_client.get(client)
        if mine is not None and len(mine) >= self.per_client:
            raise Full(self._wait(next(iter(mine.values()))), whole_store=False)
        if len(self._entries) >= self.total:
            raise Full(self._wait(next(iter(self._entries.values())).expires), whole_store=True)

    def put(self, key: str, value: V, client: str) -> None:
        """Add an entry for ``client`` or raise ``Full``; no other entry is ever removed to make room."""
        self.check_room(client)
        self._remove(key)
        expires = self.clock() + self.lifetime
        self._entries[key] = _Entry(expires, client, value)
        self._by_client.setdefault(client, OrderedDict())[key] = expires

    def replace(self, key: str, value: V) -> bool:
        """Give a live entry a new value and a whole lifetime from now, in the room it already
        holds (a reservation made with ``put`` being filled). False if it is gone."""
        self._expire()
        entry = self._remove(key)
        if entry is None:
            return False
        expires = self.clock() + self.lifetime
        self._entries[key] = _Entry(expires, entry.client, value)
        self._by_client.setdefault(entry.client, OrderedDict())[key] = expires
        return True

    def __contains__(self, key: str) -> bool:
        self._expire()
        return key in self._entries

    def peek(self, key: str) -> V | None:
        """A live entry, left in place."""
        self._expire()
        entry = self._entries.get(key)
        return entry.value if entry is not None else None

    def take(self, key: str) -> V | None:
        """Remove and return a live entry: each is used once."""
        self._expire()
        entry = self._remove(key)
        return entry.value if entry is not None else None

    def __len__(self) -> int:
        self._expire()
        return len(self._entries)
