"""Rate limits: which budgets a request draws on, and the answers when one runs out (counters: calls/counters.py).

- Per key (``rate_limit``, or the key's own ``rate_limit``): one unit per request on tool
  routes and /mcp; a tool call costs its tool's ``cost`` in all (the pipeline charges the rest).
- Per client IP, wrong credentials (``auth_failure_limit``): counted after the store said no,
  atomically, so exactly that many wrong attempts get 401 and the rest 429. A valid key is
  never refused because of other requests from its address.
- Per client IP, requests without any credential (``unauthenticated_limit``): a separate,
  higher budget; they never feed the failure limit.

When the shared counters (Redis) cannot be reached, the per-key limits follow
``rate_limit_when_unavailable`` (let through, or 503). The two per-IP refusal limits never
lapse: they are what stands between an address and guessing keys or tokens, so they are
always counted in this process as well (``local``), and a refusal is refused when either count
says so. Redis coming back empty, or answering again after it froze, therefore adds no budget:
the local count remembers what was spent meanwhile. The local count never exceeds the shared
one while Redis answers (it counts a subset of the same refusals, on the same wall clock), so
with Redis up the shared count alone decides. An address is a client as
``http/client_address.client_of`` says: an IPv4 address or an IPv6 /64.

A rate may have several windows (``"100/minute;1000/day"``): each is enforced and each is
advertised. Answers carry the IETF ``RateLimit-Policy`` / ``RateLimit`` fields; a 429 also
``Retry-After``. A sliding-window counter keeps two integers per window and identity and
expires them, so memory stays flat however many distinct keys or IPs appear.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import structlog
from aiohttp import web
from limits import RateLimitItem

from skywarden.server.calls.counters import Counters, CountersUnavailable, MemoryCounters, Outcome, Windows
from skywarden.server.calls.stored_rates import key_windows
from skywarden.server.errors import LIMITER_UNAVAILABLE, RATE_LIMITED, ApiError
from skywarden.server.http.client_address import client_of
from skywarden.server.observability.log_interval import OncePer
from skywarden.server.principal import Principal
from skywarden.server.rates import parse_rate
from skywarden.server.request_state import Prepaid, state_of
from skywarden.server.settings import Settings

log = structlog.get_logger("skywarden.server")


@functools.lru_cache(maxsize=4096)
def window_name(scope: str, item: RateLimitItem) -> str:
    """A policy name per window: ``key-minute``, ``key-5minute``, ``auth-hour``."""
    multiple = item.multiples if item.multiples != 1 else ""
    return f"{scope}-{multiple}{item.GRANULARITY.name}"


@functools.lru_cache(maxsize=4096)
def policy_field(scope: str, windows: Windows) -> str:
    return ", ".join(f'"{window_name(scope, w)}";q={w.amount};w={w.get_expiry()}' for w in windows)


class RateLimited(ApiError):
    def __init__(self, scope: str, windows: Windows, refused: RateLimitItem, retry: int) -> None:
        super().__init__(
            RATE_LIMITED,
            f"Rate limit {refused} exceeded. Retry after {retry} seconds.",
            headers={
                "Retry-After": str(retry),
                "RateLimit-Policy": policy_field(scope, windows),
                "RateLimit": f'"{window_name(scope, refused)}";r=0;t={retry}',
            },
            data={"policy": scope},
            audit={"limit": scope},
        )
        self.policy = scope


LIMITER_RETRY_SECONDS = 5


@functools.lru_cache(maxsize=4096)
def _description(scope: str, windows: Windows) -> tuple[tuple[str, ...], str]:
    """Each window's policy name and the RateLimit-Policy field, made once per limit."""
    return tuple(window_name(scope, w) for w in windows), policy_field(scope, windows)


def _fields(scope: str, windows: Windows, outcome: Outcome) -> dict[str, str]:
    names, policy = _description(scope, windows)
    states = outcome.states
    if len(states) == 1:  # the usual limit: one window
        remaining = f'"{names[0]}";r={states[0].remaining};t={states[0].reset_seconds}'
    else:
        remaining = ", ".join(f'"{n}";r={s.remaining};t={s.reset_seconds}' for n, s in zip(names, states, strict=True))
    return {"RateLimit-Policy": policy, "RateLimit": remaining}


@dataclass
class RateLimits:
    default: Windows
    auth_failures: Windows
    unauthenticated: Windows
    counters: Counters = field(default_factory=MemoryCounters)
    fail_open: bool = True  # per-key limits when the shared counters (Redis) cannot be reached
    # The refusal limits, counted here too: on the wall clock, as Redis counts, so that both
    # place their windows alike.
    local: Counters = field(default_factory=lambda: MemoryCounters(clock=time.time))
    clock: Callable[[], float] = time.monotonic  # for how often an outage is logged
    _warned: dict[str, OncePer] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: Settings, counters: Counters) -> RateLimits:
        return cls(
            default=parse_rate(settings.rate_limit),
            auth_failures=parse_rate(settings.auth_failure_limit),
            unauthenticated=parse_rate(settings.unauthenticated_limit),
            counters=counters,
            fail_open=settings.rate_limit_when_unavailable == "open",
        )

    async def reachable(self) -> bool:
        return await self.counters.reachable()

    def _warn(self, message: str, **fields: str) -> None:
        """Log an outage's warning at most once per interval for each message, not once a request."""
        every = self._warned.get(message)
        if every is None:
            every = self._warned[message] = OncePer(clock=self.clock)
        left_out = every.due()
        if left_out is not None:
            log.warning(message, left_out=left_out, **fields)

    def _unavailable(self) -> None:
        """The shared counters cannot be reached: let the request through, or refuse it (a setting)."""
        if self.fail_open:
            self._warn("rate limiter unreachable; letting requests through (rate_limit_when_unavailable=open)")
            return
        raise ApiError(
            LIMITER_UNAVAILABLE,
            "The rate limiter cannot be reached; try again shortly.",
            headers={"Retry-After": str(LIMITER_RETRY_SECONDS)},
        )

    def windows_for(self, principal: Principal) -> Windows:
        """The default, or the key's own rate as stored: what it meant when an earlier version
        stored it, or a refusal of the key (``calls/stored_rates.py``), never the looser default.
        Parsed once per distinct text (``rates.stored_rate`` keeps them)."""
        return key_windows(principal) if principal.rate_limit else self.default

    async def _take(
        self, scope: str, windows: Windows, identity: str, cost: int, *, never_lapses: bool = False
    ) -> dict[str, str]:
        """Take ``cost`` from every window or from none; the RateLimit fields, or raise RateLimited.
        A limit that ``never_lapses`` is also counted in this process (``local``) and refused when
        either count refuses; when the shared counters cannot be reached the local count alone
        decides. Any other limit gives no fields when the request was let through unavailable."""
        if not windows:
            return {}
        try:
            outcome = await self.counters.take(scope, identity, windows, cost)
        except CountersUnavailable:
            if not never_lapses:
                self._unavailable()
                return {}
            self._warn("rate limiter unreachable; counting the refusal limits in this process")
            outcome = await self.local.take(scope, identity, windows, cost)
        else:
            if never_lapses and outcome.refused is None:
                # Not counted locally when the shared count refused: the local count stays a subset
                # of the shared one, so it never refuses before the shared count would.
                here = await self.local.take(scope, identity, windows, cost)
                if here.refused is not None:
                    outcome = here
        if outcome.refused is not None:
            state = next(s for s in outcome.states if s.window is outcome.refused)
            raise RateLimited(scope, windows, outcome.refused, max(1, state.reset_seconds))
        return _fields(scope, windows, outcome)

    async def charge(self, principal: Principal, cost: int = 1) -> dict[str, str]:
        """Take ``cost`` units from each of the key's (or token subject's) windows; return the
        RateLimit fields or raise."""
        return await self._take(principal.kind, self.windows_for(principal), principal.id, cost)

    async def count_failure(self, ip: str) -> None:
        """Count one wrong credential from ``ip``; raise RateLimited once it is over its budget."""
        await self._take("auth", self.auth_failures, ip, 1, never_lapses=True)

    async def count_unauthenticated(self, ip: str) -> None:
        """Count one request without a credential (or another anonymous start of something that
        holds state, such as a console sign-in) from ``ip``; raise RateLimited over its budget."""
        await self._take("anonymous", self.unauthenticated, ip, 1, never_lapses=True)


async def count_refusal(request: web.Request, limits: RateLimits) -> None:
    """Step 7, for a refused credential only: decide between its 401 and a 429 (raised here).

    Nothing is counted before authentication: a request with a valid credential passes
    whatever else came from its address (an IPv6 /64 is one address here). A wrong credential
    counts toward ``auth_failure_limit`` and a missing one toward ``unauthenticated_limit``;
    over either, the 401 becomes a 429."""
    ip = client_of(request.remote)
    if state_of(request).auth_failure == "missing":
        await limits.count_unauthenticated(ip)
    else:
        await limits.count_failure(ip)


async def charge_request(request: web.Request, principal: Principal, limits: RateLimits) -> bool:
    """Step 9, after authentication: one unit of the key's own limit per request (its RateLimit
    fields kept in the request state's ``rate_limit_fields``); a tool call's cost is charged by the pipeline, which
    uses this unit for the first call of the request. False when nothing was charged."""
    if not principal.metered or request.method == "OPTIONS":
        return False
    state = state_of(request)
    state.rate_limit_fields = await limits.charge(principal)
    state.prepaid = Prepaid(1)
    return True
