"""The schema worker's turns go a key at a time, in rotation (``gateway.turns``): one key with
several checks waiting does not keep the others waiting for all of them."""

from __future__ import annotations

import asyncio

import pytest

from skywarden.server.gateway.turns import Turns


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


async def test_a_wait_past_its_time_is_given_up_and_skipped():
    turns, served = Turns(), []
    holding = asyncio.Event()

    async def hold() -> None:
        async with turns.take("a", 60):
            served.append("a")
            await holding.wait()

    async def wait(key: str, seconds: float) -> None:
        async with turns.take(key, seconds):
            served.append(key)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    with pytest.raises(TimeoutError):
        await wait("b", 0.01)
    patient = asyncio.create_task(wait("c", 60))
    await asyncio.sleep(0)
    holding.set()
    await asyncio.gather(holder, patient)
    assert served == ["a", "c"] and turns.waiting == 0
    await wait("d", 0)  # free: taken at once
    assert served[-1] == "d"


async def test_a_turn_handed_to_a_waiter_as_it_is_cancelled_goes_on_to_the_next():
    turns, served = Turns(), []
    holding = asyncio.Event()

    async def hold() -> None:
        async with turns.take("a", 60):
            await holding.wait()

    async def wait(key: str) -> None:
        async with turns.take(key, 60):
            served.append(key)

    holder = asyncio.create_task(hold())
    await asyncio.sleep(0)
    cancelled, next_one = asyncio.create_task(wait("b")), asyncio.create_task(wait("c"))
    await asyncio.sleep(0)
    holding.set()
    await asyncio.sleep(0)  # the holder leaves and hands the turn to b, which has not run yet
    cancelled.cancel()
    await asyncio.gather(holder, next_one)
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert served == ["c"] and turns.waiting == 0
