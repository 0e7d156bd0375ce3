"""The direct path's bookkeeping (server/gateway/direct.py): progress of a call is passed on in
order, before its answer, and at most ``MAX_PROGRESS`` times however much the upstream sends."""

from __future__ import annotations

import asyncio

from skywarden.server.gateway.direct import MAX_PROGRESS, Calls


def test_a_progress_flood_is_passed_on_in_order_up_to_the_bound_and_no_further():
    seen: list[float] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        seen.append(done)

    async def run() -> int:
        calls = Calls()
        request_id, pending = calls.start(on_progress)
        for number in range(5 * MAX_PROGRESS):
            assert calls.progress({"progressToken": request_id, "progress": number})
        waiting = len(asyncio.all_tasks())
        await pending.settled()
        return waiting

    waiting = asyncio.run(run())
    assert seen == [float(n) for n in range(MAX_PROGRESS)]
    assert waiting <= MAX_PROGRESS + 1  # the rest was never queued


def test_progress_for_no_call_of_ours_is_not_taken():
    async def run() -> list[bool]:
        calls = Calls()
        return [calls.progress({"progressToken": 7, "progress": 1}), calls.progress({"progressToken": "x"})]

    assert asyncio.run(run()) == [False, False]
