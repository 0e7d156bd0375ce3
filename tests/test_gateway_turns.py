"""The schema worker's turns (``gateway.turns``): shared by time between keys, a key at a time
among equals. One key with several checks waiting does not keep the others waiting for all of
them, and keys whose checks run long, or are estimated to, go behind quick ones. Time is a
clock the tests move by hand."""

from __future__ import annotations

import asyncio

import pytest

from skywarden.server.gateway import turns as turns_module
from skywarden.server.gateway.turns import HALF_LIFE, Turns
from tests.support.clock import Clock


async def test_the_keys_waiting_take_their_turns_in_rotation():
    turns, served = Turns(), []
    holding = asyncio.Event()

    async def check(name: str) -> None:
        async with turns.take(name[0], 60):
            served.append(name)
            if name == "a1":
                await holding.wait()
            await asyncio.sleep(0)  # a check takes a while: the others come in meanwhile

    tasks = [asyncio.create_task(check(name)) for name in ("a1", "a2", "a3", "b1", "c1")]
    await asyncio.sleep(0)
    assert served == ["a1"] and turns.waiting == 4
    holding.set()
    await asyncio.gather(*tasks)
    assert served == ["a1", "b1", "c1", "a2", "a3"] and turns.waiting == 0


async def hold(turns: Turns, key: str, until: asyncio.Event, served: list[str] | None = None) -> None:
    """Hold the turn for ``key`` until ``until`` is set (said in ``served``, if given)."""
    async with turns.take(key, 60):
        if served is not None:
            served.append(key)
        await until.wait()


async def wait(turns: Turns, served: list[str], key: str, seconds: float = 60) -> None:
    """Wait at most ``seconds`` for the turn, and say so in ``served`` when it comes."""
    async with turns.take(key, seconds):
        served.append(key)


async def test_a_wait_past_its_time_is_given_up_and_skipped():
    turns, served = Turns(), []
    holding = asyncio.Event()
    holder = asyncio.create_task(hold(turns, "a", holding, served))
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await wait(turns, served, "b", 0.01)
    patient = asyncio.create_task(wait(turns, served, "c"))
    await asyncio.sleep(0)
    holding.set()
    await asyncio.gather(holder, patient)
    assert served == ["a", "c"] and turns.waiting == 0
    await wait(turns, served, "d", 0)  # free: taken at once
    assert served[-1] == "d"


async def test_a_turn_handed_to_a_waiter_as_it_is_cancelled_goes_on_to_the_next():
    turns, served = Turns(), []
    holding = asyncio.Event()
    holder = asyncio.create_task(hold(turns, "a", holding))
    await asyncio.sleep(0)
    cancelled, next_one = asyncio.create_task(wait(turns, served, "b")), asyncio.create_task(wait(turns, served, "c"))
    await asyncio.sleep(0)
    holding.set()
    await asyncio.sleep(0)  # the holder leaves and hands the turn to b, which has not run yet
    cancelled.cancel()
    await asyncio.gather(holder, next_one)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert served == ["c"] and turns.waiting == 0


async def test_a_quick_check_goes_before_long_ones_that_came_first():
    """Five keys send checks that run to the time limit: the honest key's quick check waits for
    the one under way, not for all of theirs."""
    clock = Clock(0.0)
    turns, served = Turns(clock), []
    release = {name: asyncio.Event() for name in "abcdex"}

    async def check(key: str, estimate: float) -> None:
        async with turns.take(key, 60, estimate):
            served.append(key)
            await release[key].wait()
            clock.now += estimate

    tasks = [asyncio.create_task(check(key, 2.0)) for key in "abcde"]
    await asyncio.sleep(0)
    tasks.append(asyncio.create_task(check("x", 0.001)))
    await asyncio.sleep(0)
    assert served == ["a"] and turns.waiting == 5
    for event in release.values():
        event.set()
    await asyncio.gather(*tasks)
    assert served == ["a", "x", "b", "c", "d", "e"]


async def test_a_key_that_held_the_turn_long_lately_goes_after_one_that_did_not():
    clock = Clock(0.0)
    turns, served = Turns(clock), []
    holding = asyncio.Event()

    async def check(key: str, seconds: float = 0.0) -> None:
        async with turns.take(key, 60):
            served.append(key)
            if key == "h":
                await holding.wait()
            clock.now += seconds

    await check("a", 3.0)  # a had the turn 3 s
    assert turns.had("a") == 3.0
    holder = asyncio.create_task(check("h"))
    await asyncio.sleep(0)
    waiting = [asyncio.create_task(check(key)) for key in ("a", "b")]  # a came first
    await asyncio.sleep(0)
    holding.set()
    await asyncio.gather(holder, *waiting)
    assert served == ["a", "h", "b", "a"]


async def test_what_a_key_had_of_the_turn_counts_half_after_each_half_life():
    clock = Clock(0.0)
    turns = Turns(clock)
    async with turns.take("a", 60):
        clock.now += 4.0
    assert turns.had("a") == 4.0
    clock.now += HALF_LIFE
    assert turns.had("a") == pytest.approx(2.0)
    clock.now += HALF_LIFE
    assert turns.had("a") == pytest.approx(1.0) and turns.had("b") == 0.0


async def test_only_so_many_keys_are_remembered_and_the_one_charged_longest_ago_is_forgotten(monkeypatch):
    monkeypatch.setattr(turns_module, "REMEMBERED", 3)
    clock = Clock(0.0)
    turns = Turns(clock)
    for key, seconds in (("a", 5.0), ("b", 1.0), ("c", 3.0), ("a", 1.0), ("d", 2.0)):
        async with turns.take(key, 60):
            clock.now += seconds
    assert turns.had("b") == 0.0 and min(turns.had(k) for k in "acd") > 0


async def test_a_long_check_comes_to_its_turn_while_quick_ones_keep_arriving():
    """Eight keys keep the turn busy with quick checks; a check estimated at 2 s, from a key that
    had nothing, waits only until its wait outweighs what they had: before its 10 s are up."""
    clock = Clock(0.0)
    turns, served = Turns(clock), []

    async def check(key: str, estimate: float, seconds: float) -> None:
        async with turns.take(key, 10, estimate):
            served.append((key, clock.now))
            clock.now += seconds
            await asyncio.sleep(0)

    async def busy(key: str) -> None:
        while ("long", clock.now) not in served and clock.now < 30:
            await check(key, 0.005, 0.005)

    keys = [asyncio.create_task(busy(f"k{i}")) for i in range(8)]
    while clock.now < 20:  # the busy keys' recent time builds up
        await asyncio.sleep(0)
    arrived = clock.now
    await check("long", 2.0, 0.0)
    await asyncio.gather(*keys)
    (when,) = [at for key, at in served if key == "long"]
    assert 0 < when - arrived < 8.0


async def test_time_excused_is_not_charged_and_a_clock_going_back_charges_nothing():
    clock = Clock(0.0)
    turns = Turns(clock)
    async with turns.take("a", 60) as held:
        clock.now += 3.0
        held.excused = 2.5
    assert turns.had("a") == pytest.approx(0.5)
    async with turns.take("b", 60):
        clock.now -= 100_000.0
    assert turns.had("b") == 0.0 and turns.had("a") == pytest.approx(0.5)
    async with turns.take("c", 0):  # the turn was handed on: free at once
        pass
