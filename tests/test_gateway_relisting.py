"""An upstream's announced changes of tools are listed again at once after a quiet spell, then at
most once per interval however often they are announced, and none announced during a listing
is lost (``gateway.relisting``). The clock and the waits are the test's."""

from __future__ import annotations

import asyncio

from skywarden.server.gateway.relisting import Relisting


class Scripted:
    """A clock that moves only when the relisting waits, and a listing the test lets finish."""

    def __init__(self) -> None:
        self.now = 100.0
        self.waits: list[float] = []
        self.listings: list[float] = []
        self.may_finish = asyncio.Event()
        self.listing = asyncio.Event()
        self.duration = 0.0  # how long a listing takes, on the clock

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.now += seconds

    async def relist(self) -> None:
        self.listings.append(self.now)
        self.listing.set()
        await self.may_finish.wait()
        self.may_finish.clear()
        self.now += self.duration


async def settled(relisting: Relisting) -> None:
    if relisting._task is not None:
        await relisting._task


async def change_listed(relisting: Relisting, script: Scripted) -> None:
    """One announced change, its listing let finish."""
    relisting.changed()
    script.may_finish.set()
    await settled(relisting)


def scripted() -> tuple[Relisting, Scripted]:
    script = Scripted()
    return Relisting(script.relist, interval=2.0, clock=script.clock, sleep=script.sleep), script


async def test_the_first_change_is_listed_at_once():
    relisting, script = scripted()
    await change_listed(relisting, script)
    assert script.listings == [100.0] and script.waits == []


async def test_a_storm_of_changes_is_one_listing_per_interval_and_the_last_change_is_listed():
    relisting, script = scripted()
    relisting.changed()
    await script.listing.wait()  # the first listing runs ...
    script.listing.clear()
    for _ in range(500):  # ... while the upstream announces change after change
        relisting.changed()
    script.may_finish.set()
    await script.listing.wait()  # one more listing for all of them, an interval after the first
    script.listing.clear()
    for _ in range(500):
        relisting.changed()
    script.may_finish.set()
    await script.listing.wait()
    script.may_finish.set()
    await settled(relisting)
    assert script.listings == [100.0, 102.0, 104.0]
    assert script.waits == [2.0, 2.0]


async def test_a_change_after_a_quiet_spell_is_listed_without_waiting():
    relisting, script = scripted()
    await change_listed(relisting, script)
    script.now += 30
    await change_listed(relisting, script)
    assert script.listings == [100.0, 130.0] and script.waits == []


async def test_cancelled_with_its_connection_it_lists_no_more():
    relisting, script = scripted()
    relisting.changed()
    await script.listing.wait()
    relisting.changed()
    relisting.cancel()
    await asyncio.gather(relisting._task, return_exceptions=True)
    assert script.listings == [100.0]


async def test_the_interval_runs_from_the_end_of_a_slow_listing():
    relisting, script = scripted()
    script.duration = 5.0
    relisting.changed()
    await script.listing.wait()
    script.listing.clear()
    relisting.changed()  # announced during the slow listing
    script.may_finish.set()
    await script.listing.wait()
    script.may_finish.set()
    await settled(relisting)
    assert script.listings == [100.0, 107.0] and script.waits == [2.0]  # ended at 105, then 2 s
