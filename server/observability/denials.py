"""Recent denials: the last refused requests (wrong or missing credentials, scope refusals,
rate limits), kept bounded for the admin console.

In this process a ring buffer; with Redis one capped list every instance writes to, so the
console shows the denials of the whole deployment. Recording one never makes an answer wait:
a denial for Redis joins a bounded queue that a background task writes out, and while Redis
is slow or away the queue fills and further denials are dropped (counted in
``skywarden_denials_dropped``, logged at most once a minute); the audit log keeps them all.

What is kept is what the audit event already says, minus anything a client could make large:
time, client IP, status, reason, path, the key (its id once authenticated, or the display
prefix of a well-formed key that was refused) or the token subject.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any, Protocol

import structlog

from skywarden.server.errors import DENIALS_UNAVAILABLE, ApiError
from skywarden.server.jsonutil import dumps, loads_guarded
from skywarden.server.observability.log_interval import OncePer

log = structlog.get_logger("skywarden.server")
KEPT = 500  # denials kept, newest first
RETRY_SECONDS = 5
FIELDS = ("time", "client_ip", "status", "reason", "path", "key_id", "key_prefix", "subject", "method")
MAX_FIELD = 200
QUEUED = 1_000  # denials waiting for Redis at most; more are dropped
WRITE_BATCH = 100  # denials per write


def compact(event: dict[str, Any]) -> dict[str, Any]:
    """The denial fields of an audit event, each short."""
    found = {}
    for name in FIELDS:
        value = event.get(name)
        if value is None:
            continue
        found[name] = value[:MAX_FIELD] if isinstance(value, str) else value
    return found


class RecentDenials(Protocol):
    dropped: int  # denials that could not be kept (Redis slow or away)

    def add(self, denial: dict[str, Any]) -> None: ...
    async def recent(self, limit: int) -> list[dict[str, Any]]: ...
    async def close(self) -> None: ...


class MemoryDenials:
    dropped = 0

    def __init__(self, kept: int = KEPT) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=kept)

    def add(self, denial: dict[str, Any]) -> None:
        self._ring.appendleft(denial)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return list(self._ring)[:limit]

    async def close(self) -> None:
        return None


class RedisDenials:
    """LPUSH + LTRIM per denial, written by one background task from a bounded queue; a Redis
    fault loses denial records (counted), never a request or its time."""

    def __init__(self, client: Any, key_prefix: str, kept: int = KEPT, queued: int = QUEUED) -> None:
        self.client = client
        self.key = f"{key_prefix}:denials"
        self.kept = kept
        self.dropped = 0
        self._queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=queued)
        self._writer: asyncio.Task[None] | None = None
        self._warning = OncePer()

    def add(self, denial: dict[str, Any]) -> None:
        try:
            self._queue.put_nowait(denial)
        except asyncio.QueueFull:
            self._lost(1, "QueueFull")
            return
        if self._writer is None or self._writer.done():
            self._writer = asyncio.get_running_loop().create_task(self._write())

    def _lost(self, count: int, reason: str) -> None:
        self.dropped += count
        if self._warning.due() is not None:
            log.warning("recent denials not recorded", reason=reason, dropped_so_far=self.dropped)

    async def _write(self) -> None:
        while not self._queue.empty():
            batch = [self._queue.get_nowait() for _ in range(min(WRITE_BATCH, self._queue.qsize()))]
            try:
                async with self.client.pipeline(transaction=False) as pipe:
                    pipe.lpush(self.key, *(dumps(denial) for denial in batch))
                    pipe.ltrim(self.key, 0, self.kept - 1)
                    await pipe.execute()
            except Exception as exc:
                self._lost(len(batch), type(exc).__name__)

    async def idle(self) -> None:
        """Wait until every queued denial was written or dropped (for tests and shutdown)."""
        if self._writer is not None:
            await asyncio.shield(self._writer)

    async def close(self) -> None:
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._writer

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        await self.idle()  # this instance's own denials so far are in the list
        try:
            kept = await self.client.lrange(self.key, 0, max(0, limit - 1))
        except Exception as exc:  # connection refused, timeout, Redis error: all mean "not reachable"
            raise ApiError(
                DENIALS_UNAVAILABLE,
                "The recent denials are kept in Redis, which cannot be reached; try again shortly.",
                headers={"Retry-After": str(RETRY_SECONDS)},
            ) from exc
        found = []
        for raw in kept:
            try:
                item = loads_guarded(raw if isinstance(raw, bytes) else raw.encode(), 4)
            except ValueError:
                continue
            if isinstance(item, dict):
                found.append(compact(item))
        return found
