"""What an upstream asks Skywarden is bounded the same way on every transport
(``server/gateway/upstream_requests.py``); the stdio case end to end is in test_gateway.py."""

from __future__ import annotations

import contextlib

import anyio
import pytest

pytest.importorskip("mcp")

from mcp.shared.message import SessionMessage
from mcp.types import JSONRPCNotification, JSONRPCRequest, JSONRPCResponse

from skywarden.server.gateway.upstream_requests import MAX_UNANSWERED, bounded_requests


def request(request_id: int | str) -> SessionMessage:
    return SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=request_id, method="ping"))


def answer(request_id: int | str) -> SessionMessage:
    return SessionMessage(JSONRPCResponse(jsonrpc="2.0", id=request_id, result={}))


@contextlib.asynccontextmanager
async def streams():
    """A transport of memory streams: what the upstream sends, and what the session writes."""
    upstream, incoming = anyio.create_memory_object_stream(1000)
    outgoing, written = anyio.create_memory_object_stream(1000)

    @contextlib.asynccontextmanager
    async def transport():
        yield incoming, outgoing

    async with bounded_requests(transport()) as (read, write):
        yield upstream, read, write, written


def ids(items) -> list:
    return [item.message.id if hasattr(item.message, "id") else item.message.method for item in items]


async def test_requests_past_the_bound_are_dropped_and_everything_else_passes():
    async with streams() as (upstream, read, _write, _written):
        for i in range(MAX_UNANSWERED + 5):
            await upstream.send(request(i))
        await upstream.send(SessionMessage(JSONRPCNotification(jsonrpc="2.0", method="notifications/message")))
        await upstream.send(ValueError("a line that is not JSON"))
        got = [await read.receive() for _ in range(MAX_UNANSWERED + 1)]
        assert ids(got) == [*range(MAX_UNANSWERED), "notifications/message"]
        assert isinstance(await read.receive(), ValueError)


async def test_an_answer_taken_frees_its_place_and_only_its_own():
    async with streams() as (upstream, read, write, written):
        for i in range(MAX_UNANSWERED):
            await upstream.send(request(i))
        passed = [await read.receive() for _ in range(MAX_UNANSWERED)]
        await write.send(answer("0"))  # another id: "0" is not 0
        await write.send(SessionMessage(JSONRPCRequest(jsonrpc="2.0", id=0, method="tools/list")))  # not an answer
        await write.send(answer(0))
        for item in (request(1), request("a"), request("b")):  # 1 is still unanswered: a repeat
            await upstream.send(item)
        await upstream.send(SessionMessage(JSONRPCNotification(jsonrpc="2.0", method="notifications/message")))
        later = [await read.receive() for _ in range(2)]
        assert ids(passed) == list(range(MAX_UNANSWERED))
        assert ids(later) == ["a", "notifications/message"]
        assert len([await written.receive() for _ in range(3)]) == 3  # what the session wrote went out


async def test_the_streams_iterate_as_the_sdk_reads_them():
    async with streams() as (upstream, read, _write, _written):
        for i in range(MAX_UNANSWERED + 1):
            await upstream.send(request(i))
        await upstream.aclose()
        assert ids([item async for item in read]) == list(range(MAX_UNANSWERED))
