"""The upstream cache: answers expire with Cache-Control, derived shapes live and die with their answer."""

from __future__ import annotations

import pytest

from skywarden.server.plugins.http_client import Upstream
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolError
from tests.support.clock import Clock
from tests.support.fake_nws import Answer

POINT = "/points/39.7456,-97.0892"


@pytest.fixture
async def upstream(fake_nws):
    clock = Clock()
    up = Upstream(user_agent="test", timeout=5, max_bytes=1 << 20, cache=TTLCache(16, clock=clock))
    await up.open()
    up.clock = clock
    yield up
    await up.close()


def test_put_until_refuses_a_past_expiry_and_a_zero_sized_cache():
    clock = Clock()
    cache = TTLCache(4, clock=clock)
    cache.put_until("a", 1, clock.now)
    assert cache.get("a") is None
    empty = TTLCache(0, clock=clock)
    empty.put_until("a", 1, clock.now + 10)
    assert len(empty) == 0


async def test_a_derived_shape_is_made_once_per_answer_and_expires_with_it(upstream, fake_nws):
    made = []

    def shape(document):
        made.append(document)
        return document["properties"]["forecast"]

    url = fake_nws.url + POINT
    first = await upstream.trusting.get_json(url, service="NWS", derive=shape)
    second = await upstream.trusting.get_json(url, service="NWS", derive=shape)
    assert first == second and first.endswith("/forecast")
    assert len(made) == 1 and fake_nws.hits(POINT) == 1
    assert (upstream.cache.hits, upstream.cache.misses) == (1, 1)
    plain = await upstream.trusting.get_json(url, service="NWS")  # the document itself is still there
    assert plain["properties"]["forecast"] == first

    upstream.clock.now += 301  # the answer said max-age=300
    await upstream.trusting.get_json(url, service="NWS", derive=shape)
    assert len(made) == 2 and fake_nws.hits(POINT) == 2


async def test_a_failing_shape_is_not_cached_and_an_uncacheable_answer_keeps_no_shape(upstream, fake_nws):
    def refuse(document):
        raise ToolError("unexpected format")

    url = fake_nws.url + POINT
    for _ in range(2):
        with pytest.raises(ToolError, match="unexpected format"):
            await upstream.trusting.get_json(url, service="NWS", derive=refuse)
    assert fake_nws.hits(POINT) == 1  # the document stayed cached; only the shape failed

    fake_nws.set("/uncached", Answer(200, b'{"a": 1}', headers={"Cache-Control": "no-store"}))
    for _ in range(2):
        assert await upstream.trusting.get_json(fake_nws.url + "/uncached", service="NWS", derive=lambda d: d["a"]) == 1
    assert fake_nws.hits("/uncached") == 2 and len(upstream.cache) == 1  # only the point: no shape of it


def test_take_hands_a_live_entry_out_once():
    clock = Clock()
    cache = TTLCache(4, clock=clock)
    cache.put("handle", "token", 60)
    cache.put("stale", "old", 1)
    clock.now += 2
    assert cache.take("handle") == "token" and cache.take("handle") is None
    assert cache.take("stale") is None and len(cache) == 0


async def test_two_shapes_of_one_name_are_kept_apart(upstream, fake_nws):
    def pick(field):
        return lambda document: document["properties"][field]  # one __qualname__ for every field

    url = fake_nws.url + POINT
    forecast, hourly = pick("forecast"), pick("forecastHourly")
    assert (await upstream.trusting.get_json(url, service="NWS", derive=forecast)).endswith("/forecast")
    assert (await upstream.trusting.get_json(url, service="NWS", derive=hourly)).endswith("/forecast/hourly")
    assert (await upstream.trusting.get_json(url, service="NWS", derive=forecast)).endswith("/forecast")
    assert fake_nws.hits(POINT) == 1
