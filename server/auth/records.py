"""What the key store keeps about a key (never the key itself)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from skywarden.server.errors import STORE_UNAVAILABLE, ApiError

ACTIVE, DISABLED, REVOKED, EXPIRED = "active", "disabled", "revoked", "expired"
STORE_RETRY_SECONDS = 5


CHANGES_AT_MOST = 10_000  # ids one change-feed read returns; more means "forget every cached key"


class KeyNotFound(LookupError):
    """No key with this id (raised by stores)."""


class SchemaTooNew(RuntimeError):
    """The store was upgraded by a newer Skywarden than this one."""


class StoreUnavailable(ApiError):
    """The key store cannot be reached now: 503 with Retry-After at either door."""

    def __init__(self) -> None:
        super().__init__(
            STORE_UNAVAILABLE,
            "The key store cannot be reached; try again shortly.",
            headers={"Retry-After": str(STORE_RETRY_SECONDS)},
        )


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class KeyRecord:
    id: str
    name: str
    prefix: str
    environment: str
    scopes: list[str]
    created_at: datetime
    owner: str | None = None
    expires_at: datetime | None = None
    last_used_at: datetime | None = None
    use_count: int = 0
    disabled: bool = False
    disabled_reason: str | None = None
    revoked_at: datetime | None = None
    revoked_reason: str | None = None
    rate_limit: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    updated_at: datetime | None = None
    created_by: str | None = None  # who made it: "admin", "cli", or a signed-in admin's email or name

    def status(self, now: datetime | None = None) -> str:
        now = now or utcnow()
        if self.revoked_at is not None:
            return REVOKED
        if self.disabled:
            return DISABLED
        if self.expires_at is not None and self.expires_at <= now:
            return EXPIRED
        return ACTIVE


@dataclass(frozen=True)
class StoredHash:
    """A key hash as stored, for moving keys between stores (``skywarden db copy``)."""

    key_hash: str
    valid_until: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class HashMatch:
    """A stored hash and the key it belongs to; ``valid_until`` is set for a rotated-out hash."""

    record: KeyRecord
    valid_until: datetime | None


@dataclass(frozen=True)
class KeyFilter:
    name: str | None = None
    owner: str | None = None
    environment: str | None = None
    status: str | None = None
    limit: int = 100
    offset: int = 0


UPDATABLE = frozenset(
    {"name", "owner", "scopes", "expires_at", "rate_limit", "metadata", "disabled", "disabled_reason"}
)


USAGE_KEPT_DAYS = 31  # hourly use counts older than this are deleted


def usage_hour(when: datetime) -> datetime:
    """The hour a use is counted in (UTC)."""
    return when.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def usage_cutoff(now: datetime) -> datetime:
    return usage_hour(now) - timedelta(days=USAGE_KEPT_DAYS)


@dataclass
class PurgeSchedule:
    """Old usage rows are deleted at most once an hour per process, with a usage write."""

    last: datetime | None = None

    def due(self, now: datetime) -> bool:
        if self.last is not None and now - self.last < timedelta(hours=1):
            return False
        self.last = now
        return True


class UpstreamExists(LookupError):
    """An upstream of this name is already stored (raised by stores)."""


class TooManyUpstreams(Exception):
    """The store keeps as many upstreams as it may (raised by stores, counted in the insert's own
    transaction, so that adds racing each other cannot pass the bound)."""


@dataclass(frozen=True)
class StoredUpstream:
    """An upstream added through the admin API or CLI: its table as given (the same options as a
    ``[skywarden.upstreams.<name>]`` table), every ``env`` and ``headers`` value sealed."""

    name: str
    spec: dict[str, Any]
    created_at: datetime
    updated_at: datetime
    created_by: str | None = None
