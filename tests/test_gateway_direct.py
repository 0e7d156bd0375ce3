"""The direct path's bookkeeping (server/gateway/direct.py): progress of a call is passed on in
order, before its answer, and at most ``MAX_PROGRESS`` times however much the upstream sends; a
result passes the quick check only where the SDK's model would pass it too."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp.types import CallToolResult
from pydantic import ValidationError

from skywarden.server.gateway.direct import MAX_PROGRESS, Answer, Calls, Unusable, plain_text_result, tool_result


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


SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5)
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner))
BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": st.text(max_size=5)}),
    st.fixed_dictionaries(
        {"type": st.sampled_from(["text", "image", "audio", "resource", "x"])},
        optional={
            "text": JSON,
            "data": JSON,
            "mimeType": JSON,
            "annotations": JSON,
            "_meta": JSON,
            "uri": JSON,
        },
    ),
    JSON,
)
RESULT = st.fixed_dictionaries({}, optional={
    "content": st.lists(BLOCK, max_size=3) | JSON,
    "structuredContent": st.dictionaries(st.text(max_size=3), JSON, max_size=2) | JSON,
    "isError": st.booleans() | JSON,
    "_meta": st.dictionaries(st.text(max_size=3), JSON, max_size=2) | JSON,
    "extra": JSON,
})  # fmt: skip


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(RESULT)
def test_a_result_the_quick_check_passes_is_one_the_sdks_model_passes(result):
    try:
        CallToolResult.model_validate(result, by_name=False)
        valid = True
    except ValidationError:
        valid = False
    assert valid or not plain_text_result(result)
    if valid:
        assert tool_result(Answer(result=result)).content == result["content"]
    else:
        with pytest.raises(Unusable):
            tool_result(Answer(result=result))


def test_plain_text_results_pass_the_quick_check():
    assert plain_text_result({"content": [{"type": "text", "text": "a"}], "isError": False})
    assert plain_text_result({"content": [], "structuredContent": {"x": 1}, "_meta": {}})
    assert not plain_text_result({"content": [{"type": "text", "text": "a", "annotations": {"priority": 2}}]})
    assert not plain_text_result({"content": [{"type": "image", "data": "", "mimeType": "image/png"}]})
