"""The subprocess harness's waits (tests/support/server_process.py), on lines this test prints itself.

A wait that was cancelled or timed out must leave nothing behind: the harness once shared one
future per event name, and a cancelled one answered the next wait at once, so the load-balancer
test named an instance that had not logged the request."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.server_process import OutputEnded, ServerProcess, which_logged


def _reading() -> tuple[ServerProcess, asyncio.StreamReader]:
    """A ServerProcess reading what the test feeds it, as it reads a process's output."""
    output = asyncio.StreamReader()
    server = ServerProcess(SimpleNamespace(stdout=output), port=0)  # type: ignore[arg-type]
    server._reader = asyncio.create_task(server._read(asyncio.get_running_loop().create_future()))
    return server, output


def _print(output: asyncio.StreamReader, **event: object) -> None:
    output.feed_data(json.dumps(event).encode() + b"\n")


async def _settle() -> None:
    """Let every task that can run do so until it waits (no time passes)."""
    for _ in range(20):
        await asyncio.sleep(0)


async def test_a_cancelled_wait_leaves_nothing_behind_for_the_next():
    server, output = _reading()
    first = asyncio.create_task(server.wait_for_next_event("request"))
    await _settle()
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first

    second = asyncio.create_task(server.wait_for_next_event("request"))
    await _settle()
    assert not second.done()  # it waits for a line, not for the first wait's leftovers
    _print(output, event="request", request_id="r1")
    assert (await asyncio.wait_for(second, 5))["request_id"] == "r1"


async def test_a_timed_out_wait_leaves_nothing_behind_for_the_next():
    server, output = _reading()
    with pytest.raises(TimeoutError):
        await server.wait_for_request("r1", timeout=0)
    second = asyncio.create_task(server.wait_for_request("r1"))
    await _settle()
    assert not second.done()
    _print(output, event="request", request_id="r1")
    assert (await asyncio.wait_for(second, 5))["request_id"] == "r1"


async def test_cancelling_one_wait_does_not_cancel_another_waiting_for_the_same_event():
    server, output = _reading()
    kept = asyncio.create_task(server.wait_for_next_event("request"))
    dropped = asyncio.create_task(server.wait_for_next_event("request"))
    await _settle()
    dropped.cancel()
    await _settle()
    assert not kept.done()
    _print(output, event="request", request_id="r1")
    assert (await asyncio.wait_for(kept, 5))["request_id"] == "r1"


async def test_a_wait_ends_with_the_output_instead_of_hanging():
    server, output = _reading()
    waiting = asyncio.create_task(server.wait_for_request("never"))
    await _settle()
    output.feed_eof()
    with pytest.raises(OutputEnded):
        await asyncio.wait_for(waiting, 5)
    assert server.output_ended


async def test_which_logged_names_the_server_that_printed_the_id_after_an_earlier_answer_elsewhere():
    """The load-balancer test's case: request 1 answered by B (A's wait cancelled), then request 2 by A."""
    (a, out_a), (b, out_b) = _reading(), _reading()
    first = asyncio.create_task(which_logged([a, b], "req-1"))
    await _settle()
    _print(out_b, event="request", request_id="req-1")
    assert (await asyncio.wait_for(first, 5))[0] == 1

    second = asyncio.create_task(which_logged([a, b], "req-2"))
    await _settle()
    assert not second.done()
    _print(out_a, event="request", request_id="req-2")
    assert (await asyncio.wait_for(second, 5))[0] == 0


async def test_which_logged_leaves_out_a_server_that_stopped():
    (a, out_a), (b, out_b) = _reading(), _reading()
    out_a.feed_eof()
    await _settle()
    waiting = asyncio.create_task(which_logged([a, b], "req-1"))
    await _settle()
    _print(out_b, event="request", request_id="req-1")
    assert (await asyncio.wait_for(waiting, 5))[0] == 1


_step = st.tuples(
    st.integers(0, 3),  # the server that logs the request
    st.booleans(),  # whether a wait for the request is started and cancelled first
    st.lists(st.tuples(st.integers(0, 3), st.sampled_from(["request", "other"])), max_size=3),  # noise first
)


@settings(deadline=None, max_examples=60)
@given(servers=st.integers(2, 4), steps=st.lists(_step, min_size=1, max_size=12))
def test_which_logged_always_names_the_server_that_logged_the_request(servers, steps):
    """Any sequence of requests, cancelled waits and unrelated lines: each request is attributed to
    the one server that printed its id, and no attribution comes before that line is printed."""

    async def scenario() -> None:
        readers = [_reading() for _ in range(servers)]
        procs = [server for server, _ in readers]
        for number, (logger, cancelled_first, noise) in enumerate(steps):
            logger %= servers
            request_id = f"req-{number}"
            for where, event in noise:
                _print(readers[where % servers][1], event=event, request_id=f"noise-{number}")
            if cancelled_first:
                abandoned = asyncio.create_task(which_logged(procs, request_id))
                await _settle()
                abandoned.cancel()
                await asyncio.gather(abandoned, return_exceptions=True)
            attributed = asyncio.create_task(which_logged(procs, request_id))
            await _settle()
            assert not attributed.done()
            _print(readers[logger][1], event="request", request_id=request_id)
            index, event = await asyncio.wait_for(attributed, 5)
            assert (index, event["request_id"]) == (logger, request_id)
        for _, output in readers:
            output.feed_eof()
        await asyncio.gather(*(server._reader for server in procs if server._reader is not None))

    asyncio.run(scenario())
