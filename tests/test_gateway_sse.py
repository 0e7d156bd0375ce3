"""HTTP+SSE upstreams (MCP 2024-11-05) over Skywarden's own transport (server/gateway/sse_transport.py):
each event bounded as it arrives, an answer over the bound failing its own call, not the connection."""

from __future__ import annotations

import json

import pytest
from aiohttp import web

pytest.importorskip("mcp")

from skywarden.server.appkeys import GATEWAY
from skywarden.server.gateway.sse_transport import _ANSWER_ID, _events
from tests.support.logs import drain_logs
from tests.support.upstreams import http_upstream_process


async def events_of(*chunks: bytes, limit: int = 100) -> list[tuple[str, bytes, int]]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [event async for event in _events(source(), limit)]


async def test_events_are_named_joined_and_cut_however_the_stream_is_cut():
    stream = (
        b'event: endpoint\r\ndata: /messages?s=1\r\n\r\ndata: {"a":\r\ndata: 1}\n\n: a comment\n\ndata: x\rdata: y\r\r'
    )
    whole = await events_of(stream)
    assert whole == [("endpoint", b"/messages?s=1", 13), ("message", b'{"a":\n1}', 8), ("message", b"x\ny", 3)]
    assert await events_of(*(stream[i : i + 1] for i in range(len(stream)))) == whole


async def test_an_event_over_the_bound_comes_as_its_start_and_its_size():
    over = b'data: {"jsonrpc":"2.0","id":7,"result":"' + b"x" * 5000 + b'"}\n\ndata: after\n\n'
    [(kind, start, size), after] = await events_of(over, limit=1000)
    assert kind == "message" and start.startswith(b'{"jsonrpc":"2.0","id":7') and len(start) <= 4096 and size > 1000
    assert after == ("message", b"after", 5)
    lines = b"".join(b"data: " + b"y" * 400 + b"\n" for _ in range(5)) + b"\n"  # over the bound in several lines
    [(_, start, size)] = await events_of(lines, limit=1000)
    assert size > 1000 and len(start) <= 4096
    assert await events_of(b"data: cut short") == []  # an event the stream ends inside is no event


@pytest.mark.parametrize(
    ("start", "found"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":{', b"7"),
        (b'{"id": "abc-1", "jsonrpc": "2.0", "result"', b'"abc-1"'),
        (b'{"jsonrpc":"2.0","result":{"id":3}', None),  # an id inside the result names no call
        (b'{"jsonrpc":"2.0","method":"x","id":3', None),
    ],
)
def test_only_an_answers_leading_id_names_the_call_that_fails(start, found):
    match = _ANSWER_ID.match(start)
    assert (match[1] if match else None) == found


async def test_an_answer_over_the_bound_fails_its_call_and_keeps_the_connection(make_client, make_settings):
    async with http_upstream_process("sse") as url:
        upstream = {"url": url, "transport": "sse", "allow_private": True, "max_result_bytes": 4_000_000}
        client = await make_client(make_settings(upstreams={"old": upstream}))
        connection = client.server.app[GATEWAY].connections["old"]
        within = await (await client.post("/api/mcp/tools/old__big", json={"size": 1_500_000})).json()
        assert within["isError"] is False and len(within["content"][0]["text"]) == 1_500_000  # past the SDK's 1 MiB
        over = await (await client.post("/api/mcp/tools/old__big", json={"size": 5_000_000})).json()
        assert over["content"][0]["text"] == "The upstream old answered with more than its limit of 4000000 bytes."
        after = await (await client.post("/api/mcp/tools/old__add", json={"a": 1, "b": 2})).json()
        assert after["structuredContent"] == {"total": 3}
        assert connection.figures.restarts == 0 and connection.figures.state == "up"
    skipped = [e for e in drain_logs() if e.get("event") == "upstream event over the bound skipped"]
    assert skipped and skipped[-1]["limit"] == 8_000_000


async def test_an_endpoint_on_another_origin_is_never_posted_to(aiohttp_server, make_client, make_settings):
    posted = []

    async def stream(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(b"event: endpoint\ndata: http://elsewhere.example/messages\n\n")
        return response

    async def messages(request: web.Request) -> web.Response:
        posted.append(json.loads(await request.read()))
        return web.Response(status=202)

    app = web.Application()
    app.router.add_get("/sse", stream)
    app.router.add_post("/messages", messages)
    server = await aiohttp_server(app)
    upstream = {"url": str(server.make_url("/sse")), "transport": "sse", "allow_private": True, "connect_timeout": 2}
    client = await make_client(make_settings(upstreams={"old": upstream}))
    connection = client.server.app[GATEWAY].connections["old"]
    assert connection.figures.state == "down" and posted == []
    assert "another origin" in connection.figures.last_error
