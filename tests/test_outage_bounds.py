"""What an outage of the shared counters (Redis) may cost, bounded: log lines, the time an answer
waits, counter entries, and the budgets a client spread over many addresses gets."""

from __future__ import annotations

import asyncio
import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from limits import parse_many
from structlog.testing import capture_logs

from skywarden.server.calls.counters import CountersUnavailable, MemoryCounters
from skywarden.server.calls.ratelimit import RateLimited, RateLimits, count_refusal
from skywarden.server.observability.denials import QUEUED, RedisDenials
from skywarden.server.observability.log_interval import WARNING_INTERVAL_SECONDS
from skywarden.server.principal import Principal
from skywarden.server.request_state import STATE, RequestState
from tests.support.clock import Clock


class _Away:
    async def take(self, scope, identity, windows, cost):
        raise CountersUnavailable("TimeoutError")

    async def reachable(self) -> bool:
        return False


def _limits(clock: Clock, counters=None, **rates: str) -> RateLimits:
    return RateLimits(
        default=tuple(parse_many(rates.get("default", "1000/minute"))),
        auth_failures=tuple(parse_many(rates.get("auth", "1000/minute"))),
        unauthenticated=tuple(parse_many(rates.get("anonymous", "1000/minute"))),
        counters=counters if counters is not None else _Away(),
        local=MemoryCounters(clock=clock),
        clock=clock,
    )


async def test_an_outage_of_many_requests_logs_each_warning_once_per_interval():
    clock = Clock()
    limits = _limits(clock)
    key = Principal(kind="key", id="k1", name="k")
    with capture_logs() as logs:
        for number in range(300):
            await limits.count_failure(f"198.51.100.{number % 250}")
            await limits.count_unauthenticated(f"203.0.113.{number % 250}")
            await limits.charge(key)  # open: let through
    warnings = [e for e in logs if e["log_level"] == "warning"]
    assert len(warnings) == 2  # one per kind of outage warning, not one per request (900 requests)
    clock.now += WARNING_INTERVAL_SECONDS
    with capture_logs() as logs:
        await limits.count_failure("198.51.100.1")
        await limits.charge(key)
    assert sorted(e["left_out"] for e in logs) == [299, 599]  # what the last interval left out is said


class _FrozenRedis:
    """A Redis client whose writes never finish, as with a Redis that stopped answering."""

    def __init__(self) -> None:
        self.released = asyncio.Event()

    def pipeline(self, transaction: bool = False):
        client = self

        class _Pipe:
            async def __aenter__(self):
                return self

            async def __aexit__(self, *exc):
                return False

            def lpush(self, *args):
                pass

            def ltrim(self, *args):
                pass

            async def execute(self):
                await client.released.wait()
                raise ConnectionError("gone")

        return _Pipe()


async def test_recording_a_denial_never_waits_and_drops_are_counted_and_logged_once():
    redis = _FrozenRedis()
    denials = RedisDenials(redis, "test")
    with capture_logs() as logs:
        for number in range(QUEUED + 700):
            denials.add({"status": 401, "n": number})  # returns at once: nothing to await
        assert denials.dropped == 700  # the queue holds QUEUED; the rest are dropped, not waited for
        redis.released.set()
        await denials.idle()
    assert denials.dropped == QUEUED + 700  # the frozen writes failed too: every loss counted
    assert len([e for e in logs if e["log_level"] == "warning"]) == 1
    await denials.close()


def _request(remote: str, failure: str = "unknown") -> dict:
    class _Request(dict):
        pass

    request = _Request({STATE: RequestState(auth_failure=failure)})
    request.remote = remote
    return request


def _in_network(prefix: int, host: int) -> str:
    return str(ipaddress.IPv6Address((prefix << 64) | host))


@settings(max_examples=60, deadline=None)
@given(
    prefix=st.integers(1, 2**64 - 1),  # any /64 but ::/64, where the IPv4-mapped addresses live
    hosts=st.lists(st.integers(0, 2**64 - 1), min_size=5, max_size=12, unique=True),
    failure=st.sampled_from(["unknown", "missing", "revoked", "bad_admin_token"]),
    shared=st.booleans(),
)
async def test_every_address_of_one_ipv6_64_draws_on_one_budget(prefix, hosts, failure, shared):
    """However many addresses of one /64 a client uses, it gets one budget of refusals (wrong
    credentials or missing ones), counted in Redis or in the process alike; the next /64 has its own."""
    limits = _limits(Clock(), counters=MemoryCounters() if shared else None, auth="3/minute", anonymous="3/minute")
    outcomes = []
    for host in hosts:
        try:
            await count_refusal(_request(_in_network(prefix, host), failure), limits)
            outcomes.append("401")
        except RateLimited:
            outcomes.append("429")
    assert outcomes == ["401"] * 3 + ["429"] * (len(hosts) - 3)
    neighbour = prefix ^ 1 or 2
    await count_refusal(_request(_in_network(neighbour, hosts[0]), failure), limits)  # its own budget


@pytest.mark.parametrize("counters", ["shared", "in the process"])
async def test_an_ipv4_mapped_address_is_its_ipv4_address(counters):
    limits = _limits(Clock(), counters=MemoryCounters() if counters == "shared" else None, auth="2/minute")
    await count_refusal(_request("192.0.2.7"), limits)
    await count_refusal(_request("::ffff:192.0.2.7"), limits)
    with pytest.raises(RateLimited):
        await count_refusal(_request("::ffff:c000:207"), limits)
    await count_refusal(_request("192.0.2.8"), limits)


async def test_in_process_counters_leave_with_time_not_only_when_more_arrive():
    clock = Clock()
    counters = MemoryCounters(clock=clock)
    windows = tuple(parse_many("3/minute"))
    for number in range(500):  # an outage's worth of entries, far fewer than a count-based sweep needs
        await counters.take("auth", f"198.51.100.{number}", windows, 1)
    assert len(counters) == 500
    clock.now += 2 * 60 + MemoryCounters.SWEEP_SECONDS  # their windows are over and a sweep is due
    await counters.take("auth", "203.0.113.1", windows, 1)
    assert len(counters) == 1
