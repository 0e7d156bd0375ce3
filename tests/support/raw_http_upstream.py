"""Test-only: a Streamable HTTP MCP server written by hand (an aiohttp app), at 2025-06-18 (with
a session) or 2026-07-28 (``RawHttpUpstream(modern=True)``: ``server/discover``, no session), that
answers calls in the forms an SDK server rarely uses and misbehaves where one would not.

Calls with a string id are Skywarden's direct path, with an integer id the SDK's. Tools:
``echo``; ``sse`` (progress, a ``ping`` to the client, a log message, a change of tools, then
the answer, as an event stream; ``answered`` is set when the ping's answer comes and
``relisted`` when the tools are listed again);
``huge`` and ``huge_event`` (an answer, or one event, of ``size`` bytes); ``refuse_direct``
(HTTP 400 to the direct path, so the SDK makes the call); ``mismatch`` (2026's header mismatch
error to the direct path); ``gone`` (404: the session is no more); ``boom`` (500); ``plain``
(text/plain); ``gzip`` (its answer gzip-compressed, unasked); ``bad_result`` (content that is
not a list); ``refused`` (a JSON-RPC error); ``busy`` (HTTP 429); ``slow`` (answers when
released, at most after 30 s; its cancellation is redirected to ``/elsewhere``); ``headers``
(the request's headers); ``silent`` (an event stream that ends without the answer); ``cookie``
(sets the cookie ``who`` to its ``text``, on the SDK's path when ``sdk`` is true: the direct
path is refused with HTTP 400). ``/moved`` redirects every request to ``/mcp``. ``requests``
keeps every message received. With ``listing_padding`` the listing is that much larger (one JSON
body, which the SDK reads whole).
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import secrets
from typing import Any

import orjson
from aiohttp import web

VERSION = "2025-06-18"
MODERN = "2026-07-28"
TOOLS = [
    {"name": name, "inputSchema": {"type": "object"}}
    for name in (
        "echo",
        "sse",
        "huge",
        "huge_event",
        "refuse_direct",
        "mismatch",
        "gone",
        "boom",
        "plain",
        "gzip",
        "bad_result",
        "refused",
        "slow",
        "headers",
        "silent",
        "busy",
        "cookie",
    )
]
LOG_MESSAGE = {"jsonrpc": "2.0", "method": "notifications/message", "params": {"level": "info", "data": "x"}}


def text(value: str) -> dict[str, Any]:
    return {"content": [{"type": "text", "text": value}]}


class RawHttpUpstream:
    def __init__(self, modern: bool = False, listing_padding: int = 0) -> None:
        self.modern = modern
        self.listing_padding = listing_padding  # bytes of description added to the listing
        self.session = secrets.token_hex(8)
        self.answered = asyncio.Event()
        self.relisted = asyncio.Event()
        self.listings = 0
        self.requests: list[dict[str, Any]] = []
        self.cancelled = asyncio.Event()
        self.released = asyncio.Event()  # set when the test ends: a slow answer comes then
        self.redirected: list[dict[str, str]] = []  # requests that followed the redirect of a cancellation

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/mcp", self.post)
        app.router.add_get("/mcp", self.get)
        app.router.add_delete("/mcp", self.delete)
        app.router.add_route("*", "/elsewhere", self.elsewhere)
        app.router.add_route("*", "/moved", self.moved)
        return app

    async def moved(self, request: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/mcp")  # within the origin: the SDK follows it

    async def elsewhere(self, request: web.Request) -> web.Response:
        self.redirected.append({k.lower(): v for k, v in request.headers.items()})
        return web.Response(status=202)

    async def get(self, request: web.Request) -> web.Response:
        return web.Response(status=405)

    async def delete(self, request: web.Request) -> web.Response:
        return web.Response(status=200)

    async def post(self, request: web.Request) -> web.StreamResponse:
        message = orjson.loads(await request.read())
        self.requests.append({"message": message, "headers": {k.lower(): v for k, v in request.headers.items()}})
        method, rid = message.get("method"), message.get("id")
        if method == "notifications/cancelled":
            self.cancelled.set()
            raise web.HTTPTemporaryRedirect("/elsewhere")  # where its headers must not follow
        if method is None and rid == "server-1":
            self.answered.set()
        if rid is None or method is None:
            return web.Response(status=202)
        if method == "server/discover" and not self.modern:
            return self.json(rid, error={"code": -32601, "message": "no such method"})
        if method == "server/discover":
            info = {"name": "raw-http", "version": "1"}
            result = {"supportedVersions": [MODERN], "capabilities": {"tools": {}}, "serverInfo": info}
            return self.json(rid, result)
        if method == "initialize":
            info = {"name": "raw-http", "version": "1"}
            result = {"protocolVersion": VERSION, "capabilities": {"tools": {}}, "serverInfo": info}
            return self.json(rid, result, headers={"Mcp-Session-Id": self.session})
        if not self.modern and request.headers.get("Mcp-Session-Id") != self.session:
            return web.Response(status=400, text="no session")
        if method == "tools/list":
            self.listings += 1
            if self.listings > 1:
                self.relisted.set()
            if self.listing_padding:
                padded = {**TOOLS[0], "description": "x" * self.listing_padding}
                return self.json(rid, {"tools": [padded, *TOOLS[1:]]})
            return self.json(rid, {"tools": TOOLS})
        if method == "ping":
            return self.json(rid, {})
        if method != "tools/call":
            return self.json(rid, error={"code": -32601, "message": "no such method"})
        return await self.call(request, rid, message["params"])

    async def call(self, request: web.Request, rid: Any, params: dict[str, Any]) -> web.StreamResponse:
        name, arguments = params["name"], params.get("arguments") or {}
        direct = isinstance(rid, str)
        token = (params.get("_meta") or {}).get("progressToken")
        if name == "echo":
            return self.json(rid, text(str(arguments.get("text"))))
        if name == "sse":
            half = {"progressToken": token, "progress": 1, "total": 2, "message": "half"}
            events = [
                {"jsonrpc": "2.0", "method": "notifications/progress", "params": half},
                {"jsonrpc": "2.0", "id": "server-1", "method": "ping"},
                LOG_MESSAGE,
                {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"},
                {"jsonrpc": "2.0", "id": rid, "result": text("streamed")},
            ]
            return await self.stream(request, [orjson.dumps(event) for event in events], priming=True)
        if name == "huge":
            return self.json(rid, text("x" * int(arguments["size"])))
        if name == "huge_event":
            answer = {"jsonrpc": "2.0", "id": rid, "result": text("x" * int(arguments["size"]))}
            return await self.stream(request, [orjson.dumps(answer)])
        if name == "refuse_direct" and direct:
            return web.Response(status=400, text="not in that form")
        if name == "refuse_direct":
            return self.json(rid, text("made through the SDK"))
        if name == "mismatch" and direct:
            return self.json(rid, error={"code": -32020, "message": "header mismatch"})
        if name == "mismatch":
            return self.json(rid, text("relisted and made through the SDK"))
        if name == "busy":
            return web.Response(status=429, reason="Too Many Requests", headers={"Retry-After": "5"})
        if name == "gone":
            return web.Response(status=404)
        if name == "boom":
            return web.Response(status=500, text="Traceback (most recent call last): secret internals")
        if name == "plain":
            return web.Response(text="hello")
        if name == "gzip":  # compressed though only identity was asked for: 1 MB of zeros in about 1 KB
            packed = gzip.compress(orjson.dumps({"jsonrpc": "2.0", "id": rid, "result": text("0" * 1_000_000)}))
            return web.Response(body=packed, content_type="application/json", headers={"Content-Encoding": "gzip"})
        if name == "bad_result":
            return self.json(rid, {"content": "not a list"})
        if name == "refused":
            return self.json(rid, error={"code": -32602, "message": "the upstream says no"})
        if name == "slow":
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.released.wait(), 30)
            return self.json(rid, text("late"))
        if name == "headers":
            seen = {str(name): value for name, value in request.headers.items()}
            return self.json(rid, {**text("headers"), "structuredContent": seen})
        if name == "cookie" and direct and arguments.get("sdk"):
            return web.Response(status=400, text="through the SDK, please")
        if name == "cookie":
            answer = self.json(rid, text("cookie set"))
            answer.set_cookie("who", str(arguments.get("text")), path="/")
            return answer
        if name == "silent":
            return await self.stream(request, [orjson.dumps(LOG_MESSAGE)])
        return self.json(rid, error={"code": -32602, "message": f"no tool {name}"})

    def json(
        self, rid: Any, result: Any = None, error: Any = None, headers: dict[str, str] | None = None
    ) -> web.Response:
        if self.modern and isinstance(result, dict):
            result = {"resultType": "complete", **result}
            if "tools" in result or "supportedVersions" in result:
                result.update(ttlMs=0, cacheScope="private")
        body: dict[str, Any] = {"jsonrpc": "2.0", "id": rid}
        body.update({"error": error} if error is not None else {"result": result})
        return web.Response(body=orjson.dumps(body), content_type="application/json", headers=headers)

    @staticmethod
    async def stream(request: web.Request, events: list[bytes], priming: bool = False) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        if priming:
            await response.write(b"id: prime\ndata: \n\n")
        for number, data in enumerate(events):
            await response.write(b"event: message\nid: %d\ndata: %s\r\n\r\n" % (number, data))
        await response.write_eof()
        return response
