"""Recent denials: the last refused requests (wrong or missing credentials, scope refusals,
rate limits), kept bounded for the admin console.

In this process a ring buffer; with Redis one capped list every instance writes to, so the
console shows the denials of the whole deployment. What is kept is what the audit event
already says, minus anything a client could make large: time, client IP, status, reason,
path, the key (its id once authenticated, or the display prefix of a well-formed key that
was refused) or the token subject.
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

import structlog

from skywarden.server.errors import DENIALS_UNAVAILABLE, ApiError
from skywarden.server.jsonutil import dumps, loads_guarded

log = structlog.get_logger("skywarden.server")
KEPT = 500  # denials kept, newest first
RETRY_SECONDS = 5
FIELDS = ("time", "client_ip", "status", "reason", "path", "key_id", "key_prefix", "subject", "method")
MAX_FIELD = 200


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
    async def add(self, denial: dict[str, Any]) -> None: ...
    async def recent(self, limit: int) -> list[dict[str, Any]]: ...


class MemoryDenials:
    def __init__(self, kept: int = KEPT) -> None:
        self._ring: deque[dict[str, Any]] = deque(maxlen=kept)

    async def add(self, denial: dict[str, Any]) -> None:
        self._ring.appendleft(denial)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
        return list(self._ring)[:limit]


class RedisDenials:
    """LPUSH + LTRIM in one round trip; a Redis fault loses a denial record, never a request."""

    def __init__(self, client: Any, key_prefix: str, kept: int = KEPT) -> None:
        self.client = client
        self.key = f"{key_prefix}:denials"
        self.kept = kept

    async def add(self, denial: dict[str, Any]) -> None:
        try:
            async with self.client.pipeline(transaction=False) as pipe:
                pipe.lpush(self.key, dumps(denial))
                pipe.ltrim(self.key, 0, self.kept - 1)
                await pipe.execute()
        except Exception as exc:
            log.warning("recent denial not recorded", reason=type(exc).__name__)

    async def recent(self, limit: int) -> list[dict[str, Any]]:
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
