"""Rate limits with the ``limits`` library (sliding-window counters, in-memory storage).

- Per client IP, failed or missing authentication (``auth_failure_limit``): checked
  before the key is looked up, so guessing keys gets 429 quickly.
- Per key (``rate_limit``, or the key's own ``rate_limit``), on tool routes and /mcp.
- A tool's ``cost`` charges its extra units when it is called.

Answers carry the IETF ``RateLimit-Policy`` / ``RateLimit`` fields; a 429 also
``Retry-After``. A sliding-window counter keeps two integers per key and
expires them, so memory stays flat however many distinct keys or IPs appear.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from aiohttp import web
from limits import RateLimitItem, parse_many
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import SlidingWindowCounterRateLimiter

from skywarden.server.appkeys import LIMITER, PREPAID, PRINCIPAL
from skywarden.server.auth.principal import Principal
from skywarden.server.calls.pipeline import Prepaid
from skywarden.server.errors import RATE_LIMITED, UNAUTHORIZED, ApiError
from skywarden.server.http.paths import is_public

MAX_PARSED_RATES = 10_000  # distinct per-key rate strings kept parsed; cleared when exceeded
MAX_TRACKED_FAILING_IPS = 10_000  # addresses with recent failures; expired ones dropped when exceeded


class RateLimited(ApiError):
    def __init__(self, policy: str, item: RateLimitItem, reset_time: float) -> None:
        retry = max(1, math.ceil(reset_time - time.time()))
        super().__init__(
            RATE_LIMITED,
            f"Rate limit {item} exceeded. Retry after {retry} seconds.",
            headers={
                "Retry-After": str(retry),
                "RateLimit-Policy": policy_field(policy, item),
                "RateLimit": f'"{policy}";r=0;t={retry}',
            },
            data={"policy": policy},
            audit={"limit": policy},
        )
        self.policy = policy


def policy_field(name: str, item: RateLimitItem) -> str:
    return f'"{name}";q={item.amount};w={item.get_expiry()}'


def _first(rate: str) -> RateLimitItem | None:
    return parse_many(rate)[0] if rate else None


@dataclass
class RateLimits:
    default: RateLimitItem | None
    auth_failures: RateLimitItem | None
    storage: MemoryStorage = field(default_factory=MemoryStorage)
    _per_key: dict[str, RateLimitItem] = field(default_factory=dict)
    # Addresses with a failure inside the current window: the common case (no failures) skips the store.
    _failed_recently: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.limiter = SlidingWindowCounterRateLimiter(self.storage)

    @classmethod
    def from_settings(cls, settings) -> RateLimits:
        return cls(default=_first(settings.rate_limit), auth_failures=_first(settings.auth_failure_limit))

    def item_for(self, principal: Principal) -> RateLimitItem | None:
        if not principal.rate_limit:
            return self.default
        item = self._per_key.get(principal.rate_limit)
        if item is None:
            if len(self._per_key) > MAX_PARSED_RATES:
                self._per_key.clear()
            item = self._per_key[principal.rate_limit] = parse_many(principal.rate_limit)[0]
        return item

    async def check_ip(self, ip: str) -> None:
        if self.auth_failures is None or ip not in self._failed_recently:
            return
        if self._failed_recently[ip] < time.monotonic() - self.auth_failures.get_expiry():
            del self._failed_recently[ip]
            return
        if not await self.limiter.test(self.auth_failures, "authfail", ip):
            stats = await self.limiter.get_window_stats(self.auth_failures, "authfail", ip)
            raise RateLimited("auth", self.auth_failures, stats.reset_time)

    async def record_failure(self, ip: str) -> None:
        if self.auth_failures is None:
            return
        now = time.monotonic()
        if len(self._failed_recently) > MAX_TRACKED_FAILING_IPS:
            cutoff = now - self.auth_failures.get_expiry()
            self._failed_recently = {k: v for k, v in self._failed_recently.items() if v >= cutoff}
        self._failed_recently[ip] = now
        await self.limiter.hit(self.auth_failures, "authfail", ip)

    async def charge(self, principal: Principal, cost: int = 1) -> dict[str, str]:
        """Take ``cost`` units from the key's limit; return the RateLimit fields or raise RateLimited."""
        item = self.item_for(principal)
        if item is None:
            return {}
        allowed = await self.limiter.hit(item, "key", principal.id, cost=cost)
        stats = await self.limiter.get_window_stats(item, "key", principal.id)
        if not allowed:
            raise RateLimited("key", item, stats.reset_time)
        reset = max(0, math.ceil(stats.reset_time - time.time()))
        return {"RateLimit-Policy": policy_field("key", item), "RateLimit": f'"key";r={stats.remaining};t={reset}'}


@web.middleware
async def auth_failure_limit_middleware(request: web.Request, handler):
    """Wraps authentication: a client IP with too many failures is refused before any key lookup."""
    limits: RateLimits = request.app[LIMITER]
    if is_public(request.path) or request.method == "OPTIONS":
        return await handler(request)
    ip = request.remote or "unknown"
    await limits.check_ip(ip)
    try:
        return await handler(request)
    except ApiError as exc:
        if exc.kind is UNAUTHORIZED:
            await limits.record_failure(ip)
        raise


@web.middleware
async def key_limit_middleware(request: web.Request, handler):
    """After authentication: one unit of the key's own limit per request; a tool call's cost is
    charged by the pipeline, which uses this unit for the first call of the request."""
    principal = request.get(PRINCIPAL)
    if principal is None or principal.kind != "key" or request.method == "OPTIONS":
        return await handler(request)
    fields = await request.app[LIMITER].charge(principal)
    request[PREPAID] = Prepaid(1)
    response = await handler(request)
    if not response.prepared:
        response.headers.update(fields)
    return response
