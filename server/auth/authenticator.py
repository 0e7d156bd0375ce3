"""Verify a presented API key: format and checksum, then a cached hash lookup.

A verified key is cached for ``cache_ttl`` seconds so the hot path makes no
store round-trip. A revocation or change drops the entry at once on every
instance (``shared.broadcast``); while an instance cannot hear the broadcast,
``trust_cache`` says no and every request is verified with the store. A change
made by anyone else (the CLI, an instance without Redis) is read from the
store's change feed within a second or two (``follow_changes``); ``cache_ttl``
is the backstop behind both. Use
counts are gathered in memory and flushed in batches (and on demand, on every
instance, before an admin reads them).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from skywarden.server import keys
from skywarden.server.auth.records import CHANGES_AT_MOST, DISABLED, EXPIRED, REVOKED, HashMatch, KeyRecord, utcnow
from skywarden.server.auth.store import KeyStore
from skywarden.server.principal import Principal


class AuthFailure(Exception):
    """Authentication failed; ``reason`` is for the audit log only, never the client. ``key`` is
    the key that was refused when the store knows it (revoked, disabled, expired, rotated out)."""

    def __init__(self, reason: str, key: Principal | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.key = key


USAGE_FLUSH_CHUNK = 1_000  # keys' use counts per store write
CHANGE_FEED_SECONDS = 1.0  # how often the store's change feed is read
CLOCK_SKEW = timedelta(seconds=5)  # how far behind ours another writer's clock may be
_SCOPE_SETS: dict[tuple[str, ...], frozenset[str]] = {}  # keys with the same scopes share one set
MAX_SCOPE_SETS = 1_000


def _scopes(scopes: list[str]) -> frozenset[str]:
    wanted = tuple(sorted(scopes))
    shared = _SCOPE_SETS.get(wanted)
    if shared is None:
        shared = frozenset(wanted)
        if len(_SCOPE_SETS) < MAX_SCOPE_SETS:
            _SCOPE_SETS[wanted] = shared
    return shared


def principal_for(record: KeyRecord, prefix: str) -> Principal:
    """The caller a key record makes; ``prefix`` is the display prefix of the key presented."""
    return Principal(
        kind="key",
        id=record.id,
        name=record.name,
        scopes=_scopes(record.scopes),
        rate_limit=record.rate_limit,
        prefix=prefix,
    )


@dataclass(slots=True)
class _Cached:
    """What a request needs of a verified key, and no more (about 0.5 KB an entry with its key)."""

    fresh_until: float
    principal: Principal
    refused: str | None  # revoked or disabled: refused whatever the time
    expires_at: datetime | None
    valid_until: datetime | None  # a rotated-out key's end of grace


def cached_entry(fresh_until: float, match: HashMatch, prefix: str) -> _Cached:
    record = match.record
    status = record.status(datetime.min.replace(tzinfo=UTC))  # time-independent states only
    return _Cached(
        fresh_until,
        principal_for(record, prefix),
        status if status in (REVOKED, DISABLED) else None,
        record.expires_at,
        match.valid_until,
    )


@dataclass
class Authenticator:
    store: KeyStore
    secret: bytes
    cache_ttl: float = 30.0
    max_cached: int = 10_000
    monotonic: Callable[[], float] = time.monotonic
    now: Callable[[], datetime] = utcnow
    trust_cache: Callable[[], bool] = lambda: True
    _cache: OrderedDict[str, _Cached] = field(default_factory=OrderedDict)
    _usage: dict[str, tuple[int, datetime]] = field(default_factory=dict)
    _flushing: asyncio.Lock = field(default_factory=asyncio.Lock)
    _changes_read_at: datetime | None = None
    # told after each read of the change feed that found changes: the keys it names (None: more
    # than one read names, so any key may have changed); their cached entries are gone by then
    on_changes: list[Callable[[frozenset[str] | None], None]] = field(default_factory=list)
    _hash: Callable[[str], str] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._hash = keys.key_hasher(self.secret)

    async def authenticate(self, presented: str | None) -> Principal:
        entry = await self._verified(presented)
        now = self.now()
        count, _ = self._usage.get(entry.principal.id, (0, now))
        self._usage[entry.principal.id] = (count + 1, now)
        return entry.principal

    async def still_valid(self, presented: str | None) -> bool:
        """Whether the key a long-lived answer (a change stream) was opened with still holds:
        not revoked, disabled, expired or rotated out. No use is counted."""
        try:
            await self._verified(presented)
        except AuthFailure:
            return False
        return True

    async def _verified(self, presented: str | None) -> _Cached:
        if not presented:
            raise AuthFailure("missing")
        key_hash = self._hash(presented)
        entry = self._cache.get(key_hash)
        if entry is None or entry.fresh_until <= self.monotonic() or not self.trust_cache():
            # Only well-formed keys are ever cached, so the format is checked on a miss alone.
            if not keys.is_well_formed(presented):
                raise AuthFailure("malformed")
            if keys.key_environment(presented) == "admin":
                raise AuthFailure("admin_token_as_key")
            match = await self.store.find_by_hash(key_hash)
            if match is None:
                self._cache.pop(key_hash, None)
                raise AuthFailure("unknown")
            entry = cached_entry(self.monotonic() + self.cache_ttl, match, keys.display_prefix(presented))
            self._cache[key_hash] = entry
            self._cache.move_to_end(key_hash)
            while len(self._cache) > self.max_cached:
                self._cache.popitem(last=False)
        if entry.refused is not None:
            raise AuthFailure(entry.refused, entry.principal)
        now = self.now()
        if entry.expires_at is not None and entry.expires_at <= now:
            raise AuthFailure(EXPIRED, entry.principal)
        if entry.valid_until is not None and entry.valid_until <= now:
            raise AuthFailure("rotated", entry.principal)
        return entry

    async def known_key(self, presented: str) -> Principal | None:
        """The key ``presented`` is, when the store knows it, to name a refused request by: the
        cache first, else one store read (refusals only, so never on the hot path). Nothing is
        counted or cached, and a store that cannot answer names nothing."""
        if not keys.is_well_formed(presented) or keys.key_environment(presented) == "admin":
            return None
        key_hash = self._hash(presented)
        entry = self._cache.get(key_hash)
        if entry is not None:
            return entry.principal
        try:
            match = await self.store.find_by_hash(key_hash)
        except Exception:
            return None
        return None if match is None else principal_for(match.record, keys.display_prefix(presented))

    def _drop(self, key_ids: AbstractSet[str]) -> int:
        """Drop every cached entry of these keys (a rotated key may have two); how many went."""
        stale = [h for h, e in self._cache.items() if e.principal.id in key_ids]
        for key_hash in stale:
            del self._cache[key_hash]
        return len(stale)

    async def invalidate(self, key_id: str) -> None:
        self._drop({key_id})

    def forget_all(self) -> int:
        dropped = len(self._cache)
        self._cache.clear()
        return dropped

    async def follow_changes(self) -> int:
        """Drop cached keys that changed in the store since the last read of its change feed,
        whoever changed them (another instance without Redis, the CLI, a restore). Called every
        CHANGE_FEED_SECONDS; reads back CLOCK_SKEW further, for writers whose clocks lag ours.
        Returns how many cached entries were dropped."""
        started = self.now()
        since = (self._changes_read_at or started) - CLOCK_SKEW
        changed = await self.store.changed_since(since)
        self._changes_read_at = started
        if not changed:
            return 0
        if len(changed) >= CHANGES_AT_MOST:  # more than one read names: assume anything changed
            dropped, named = self.forget_all(), None
        else:
            named = frozenset(changed)
            dropped = self._drop(named)
        for listener in self.on_changes:
            listener(named)
        return dropped

    async def flush_usage(self, _: str = "") -> None:
        """Add the counts gathered so far to the store. One flush at a time: a caller that must
        see every count (an admin read) waits for a flush already under way to be written."""
        async with self._flushing:
            await self._flush_usage()

    async def _flush_usage(self) -> None:
        """In chunks: one write of 50,000 keys' counts would hold the loop (and every request's
        p99) for as long as it takes; a chunk at a time lets requests through in between."""
        usage, self._usage = self._usage, {}
        items = list(usage.items())
        for start in range(0, len(items), USAGE_FLUSH_CHUNK):
            chunk = dict(items[start : start + USAGE_FLUSH_CHUNK])
            try:
                await self.store.record_usage(chunk)
            except Exception:
                for key_id, (count, last) in items[start:]:  # keep what was not written for the next flush
                    old_count, old_last = self._usage.get(key_id, (0, last))
                    self._usage[key_id] = (old_count + count, max(old_last, last))
                raise
