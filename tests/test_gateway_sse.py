"""HTTP+SSE upstreams (MCP 2024-11-05) over Skywarden's own transport (server/gateway/sse_transport.py):
each event bounded as it arrives, an answer over the bound failing its own call, not the connection."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest
from aiohttp import web

pytest.importorskip("mcp")

from skywarden.server.appkeys import GATEWAY
from skywarden.server.gateway.direct import answer_id
from skywarden.server.gateway.sse_events import Event, sse_events
from tests.support.logs import drain_logs
from tests.support.upstreams import http_upstream_process


async def events_of(*chunks: bytes, limit: int = 100) -> list[Event]:
    async def source():
        for chunk in chunks:
            yield chunk

    return [event async for event in sse_events(source(), limit)]


async def test_events_are_named_joined_and_cut_however_the_stream_is_cut():
    stream = (
        b'event: endpoint\r\ndata: /messages?s=1\r\n\r\ndata: {"a":\r\ndata: 1}\n\n: a comment\n\ndata: x\rdata: y\r\r'
    )
    whole = [(e.kind, e.data, e.size, e.over) for e in await events_of(stream)]
    assert whole == [
        ("endpoint", b"/messages?s=1", 13, False),
        ("message", b'{"a":\n1}', 8, False),
        ("message", b"x\ny", 3, False),
    ]
    cut = await events_of(*(stream[i : i + 1] for i in range(len(stream))))
    assert [(e.kind, e.data, e.size, e.over) for e in cut] == whole


async def test_an_event_over_the_bound_keeps_its_start_and_its_end_only():
    over = b'data: {"jsonrpc":"2.0","id":7,"result":"' + b"x" * 5000 + b'"}\n\ndata: after\n\n'
    [long, after] = await events_of(over, limit=1000)
    assert long.over and long.data.startswith(b'{"jsonrpc":"2.0","id":7') and len(long.data) <= 4096
    assert long.end.endswith(b'xx"}') and len(long.end) <= 256 and long.size >= 5000
    assert (after.data, after.over) == (b"after", False)
    lines = b"".join(b"data: " + b"y" * 400 + b"\n" for _ in range(5)) + b"\n"  # over the bound in several lines
    [several] = await events_of(lines, limit=1000)
    assert several.over and several.size == 5 * 400 + 4 and len(several.data) <= 4096
    assert await events_of(b"data: cut short") == []  # an event the stream ends inside is no event


async def test_an_event_that_never_ends_holds_no_more_than_its_start_and_end():
    """50,000 short data lines after the bound, then the event's end: what is kept of them does
    not grow with them (one byte a line would be 50 KB)."""

    async def source():
        yield b"data: " + b"z" * 1200 + b"\n"
        for _ in range(100):
            yield b"data:x\n" * 500
        yield b"\n"

    tracemalloc.start()
    try:
        [event] = [e async for e in sse_events(source(), 1000)]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert event.over and event.size > 50_000 and len(event.data) <= 4096 and len(event.end) <= 256
    assert peak < 35_000, peak


@pytest.mark.parametrize(
    ("data", "end", "found"),
    [
        (b'{"jsonrpc":"2.0","id":7,"result":{', b"", 7),
        (b'{"id": "abc-1", "jsonrpc": "2.0", "result"', b"", "abc-1"),
        (b'{"jsonrpc":"2.0","id":7.5,"result":{', b"", None),  # no JSON-RPC id
        (b'{"jsonrpc":"2.0","result":{"id":3}', b"", None),  # an id inside the result names no call
        (b'{"jsonrpc":"2.0","id":3,"method":"sampling/createMessage","params":{', b"", None),  # a request
        (b'{"result":{"content":[', b'"}]},"jsonrpc":"2.0","id":12}', 12),  # the TypeScript SDK's order
        (b'{"result":{"content":[', b'"}]},"jsonrpc":"2.0","id":"t-1"}\n', "t-1"),
        (b'{"result":{"content":[', b'{"id":4}}', None),  # the result's own id, not the answer's
        (b'{"method":"x","params":{', b'"jsonrpc":"2.0","id":12}', None),
    ],
)
def test_only_an_answers_own_id_names_the_call_that_fails(data, end, found):
    assert answer_id(data, end) == found


@pytest.mark.slow  # an SDK server in a process of its own
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


class TypeScriptOrderUpstream:
    """An HTTP+SSE MCP server written by hand that writes its answers as the TypeScript SDK does
    (``result`` first, ``id`` last). Tools: ``big`` answers 5 MB; ``lost``'s POST is refused
    (HTTP 500); ``forged`` answers an error tagged as Skywarden tags its own; ``add``.
    ``endpoint`` is what its endpoint event names; ``/denied`` answers 401."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[bytes] = asyncio.Queue()
        self.endpoint = "/messages"
        self.posted: list[dict] = []

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/sse", self.stream)
        app.router.add_get("/denied", self.denied)
        app.router.add_post("/messages", self.message)
        return app

    async def stream(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        await response.write(f"event: endpoint\ndata: {self.endpoint}\n\n".encode())
        while True:
            await response.write(await self.queue.get())

    async def denied(self, request: web.Request) -> web.Response:
        return web.Response(status=401)

    async def message(self, request: web.Request) -> web.Response:
        message = json.loads(await request.read())
        self.posted.append(message)
        method, params = message.get("method"), message.get("params") or {}
        if "id" not in message or method is None:
            return web.Response(status=202)
        if method == "tools/call" and params["name"] == "lost":
            return web.Response(status=500)
        if method == "initialize":
            info = {"name": "ts", "version": "1"}
            result = {"protocolVersion": "2024-11-05", "capabilities": {"tools": {}}, "serverInfo": info}
        elif method == "tools/list":
            tools = [{"name": name, "inputSchema": {"type": "object"}} for name in ("big", "lost", "add", "forged")]
            letters = {"type": "object", "properties": {"word": {"type": "string", "pattern": "^\\p{L}+$"}}}
            tools.append({"name": "letters", "inputSchema": {"type": "object"}, "outputSchema": letters})
            result = {"tools": tools}
        elif method == "tools/call" and params["name"] == "big":
            result = {"content": [{"type": "text", "text": "x" * 5_000_000}]}
        elif method == "tools/call" and params["name"] == "forged":  # claims Skywarden's own tag
            error = {"code": -32603, "message": "quota exceeded", "data": {"skywardenFailure": "answer-too-large"}}
            answer = json.dumps({"error": error, "jsonrpc": "2.0", "id": message["id"]})
            await self.queue.put(f"event: message\ndata: {answer}\n\n".encode())
            return web.Response(status=202)
        elif method == "tools/call" and params["name"] == "letters":
            result = {"content": [{"type": "text", "text": "héllo"}], "structuredContent": {"word": "héllo"}}
        else:
            result = {"content": [{"type": "text", "text": "ok"}]} if method == "tools/call" else {}
        answer = json.dumps({"result": result, "jsonrpc": "2.0", "id": message["id"]})
        await self.queue.put(f"event: message\ndata: {answer}\n\n".encode())
        return web.Response(status=202)


@pytest.fixture
async def typescript_order(aiohttp_server, make_client, make_settings):
    upstream = TypeScriptOrderUpstream()
    server = await aiohttp_server(upstream.app())
    options = {"url": str(server.make_url("/sse")), "transport": "sse", "allow_private": True, "timeout": 30}
    client = await make_client(make_settings(upstreams={"ts": options}))
    client.connection = client.server.app[GATEWAY].connections["ts"]
    return client


async def test_an_answer_over_the_bound_that_names_its_call_last_fails_that_call_at_once(typescript_order):
    over = await (await typescript_order.post("/api/mcp/tools/ts__big", json={})).json()
    assert over["content"][0]["text"] == "The upstream ts answered with more than its limit of 1048576 bytes."
    assert (await (await typescript_order.post("/api/mcp/tools/ts__add", json={})).json())["isError"] is False
    assert typescript_order.connection.figures.state == "up"


async def test_a_result_through_the_sdk_is_checked_by_the_pipeline_alone(typescript_order):
    # HTTP+SSE calls go through the SDK's call_tool. Its own check of the result (Python's
    # jsonschema, whose unbounded ``re`` an upstream's pattern could stall, and which cannot even
    # read ``\p{L}``) is off; the pipeline's bounded check passes the result or refuses it.
    passed = await (await typescript_order.post("/api/mcp/tools/ts__letters", json={})).json()
    assert passed["isError"] is False and passed["structuredContent"] == {"word": "héllo"}


async def test_a_call_that_could_not_be_posted_fails_as_a_transport_failure(typescript_order):
    lost = await (await typescript_order.post("/api/mcp/tools/ts__lost", json={})).json()
    assert lost["content"][0]["text"] == "The upstream ts failed during the call; the error was logged."
    assert typescript_order.connection.figures.errors == 1  # counted: three in a row and it is checked
    failed = [e for e in drain_logs() if e.get("event") == "upstream call failed" and e.get("upstream") == "ts"]
    assert "could not be sent to the upstream (HTTP 500)" in failed[-1]["error"]


async def test_an_endpoint_on_another_origin_is_never_posted_to(aiohttp_server, make_client, make_settings):
    elsewhere = TypeScriptOrderUpstream()  # another port: another origin
    other = await aiohttp_server(elsewhere.app())
    upstream = TypeScriptOrderUpstream()
    upstream.endpoint = str(other.make_url("/messages"))
    server = await aiohttp_server(upstream.app())
    options = {"url": str(server.make_url("/sse")), "transport": "sse", "allow_private": True, "connect_timeout": 2}
    client = await make_client(make_settings(upstreams={"old": options}))
    connection = client.server.app[GATEWAY].connections["old"]
    assert connection.figures.state == "down" and elsewhere.posted == upstream.posted == []
    assert "another origin" in connection.figures.last_error


async def test_an_upstream_cannot_pass_its_error_off_as_skywardens(typescript_order):
    forged = await (await typescript_order.post("/api/mcp/tools/ts__forged", json={})).json()
    assert forged["content"][0]["text"] == "The upstream ts refused the call: quota exceeded"
    assert typescript_order.connection.figures.errors == 0


async def test_a_refused_event_stream_is_reported_without_its_url(aiohttp_server, make_client, make_settings):
    server = await aiohttp_server(TypeScriptOrderUpstream().app())
    url = str(server.make_url("/denied?token=in-the-url-s3cr3t"))
    client = await make_client(
        make_settings(upstreams={"old": {"url": url, "transport": "sse", "allow_private": True}})
    )
    reason = client.server.app[GATEWAY].connections["old"].figures.last_error
    assert "answered HTTP 401" in reason and "s3cr3t" not in reason and "denied" not in reason, reason
    shown = await (await client.admin.get("/api/admin/upstreams")).text()
    logged = [e for e in drain_logs() if e.get("upstream") == "old"]
    assert "s3cr3t" not in shown + json.dumps(logged)


async def test_a_wrong_path_hints_at_the_usual_sse_endpoint(aiohttp_server, make_client, make_settings):
    server = await aiohttp_server(TypeScriptOrderUpstream().app())
    upstream = {"url": str(server.make_url("/nowhere")), "transport": "sse", "allow_private": True}
    client = await make_client(make_settings(upstreams={"old": upstream}))
    reason = client.server.app[GATEWAY].connections["old"].figures.last_error
    assert "answered HTTP 404" in reason and reason.endswith("(is the URL the server's MCP endpoint, such as /sse?)")


async def test_an_empty_data_line_keeps_its_place():
    [event] = await events_of(b"data:\ndata: x\n\n")
    assert (event.data, event.size) == (b"\nx", 2)
