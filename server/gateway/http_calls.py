"""A Streamable HTTP upstream's ``tools/call`` over Skywarden's own aiohttp client.

The SDK's client (httpx) keeps the connection; its requests are watched (``observe``) for the
session id and revision they carry, and a call is POSTed here with the same, the SDK's stamp
(``direct.call_message``), the upstream's own headers and the identity header, and nothing of
the caller's. The answer is JSON or an SSE stream (progress, then the response); either is read
in pieces and refused past the upstream's size bound, so an answer never sits whole in memory
before it is measured. What else the stream carries is handled as the SDK would: a change of
tools (any notification) goes to the connection's message handler, a ``ping`` is answered, any
other request of the upstream's is refused (the gateway offers no client features).

A request the upstream refuses for its form before running it (a redirect, or HTTP 400, 404,
405, 406, 415) is made again through the SDK (``Fallback``), which knows the rarer forms
(redirects within the origin, a 2026-07-28 header mismatch and its relisting). Any other 4xx
(401, 403, 408, 409, 429, ...) is the upstream's refusal of the call, and is never sent twice.

The connection goes to the address checked when the SDK's connection was made (``pinned``),
with the URL's name for TLS (SNI and the certificate).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import structlog
from aiohttp.abc import AbstractResolver, ResolveResult
from multidict import CIMultiDict

from skywarden.server.gateway.direct import (
    HEADER_MISMATCH,
    LEGACY_VERSIONS,
    Answer,
    CallBroken,
    Calls,
    Fallback,
    PendingCall,
    Progress,
    TooLarge,
    Unusable,
    answer_of,
    identity_value,
)
from skywarden.server.gateway.sse_events import sse_events
from skywarden.server.http.response_body import ResponseTooLarge, read_response_body
from skywarden.server.jsonutil import dumps, loads_exact
from skywarden.server.outbound import client_session
from skywarden.server.upstreams import UpstreamConfig

log = structlog.get_logger("skywarden.gateway")

SESSION_HEADER = "mcp-session-id"
PROTOCOL_HEADER = "mcp-protocol-version"
POOL_SIZE = 100  # connections to one upstream at most
NOT_RUN = frozenset({400, 404, 405, 406, 415})  # the request's form refused: the SDK makes the call
MAX_ANSWERS_IN_FLIGHT = 16  # answers to the upstream's requests (pings) being sent at once
MessageHandler = Callable[[Any], Awaitable[None]]


class PinnedResolver(AbstractResolver):
    """``host`` resolves to ``address`` only (checked when the connection was made); any other
    name is not resolved at all (an upstream's calls go to its own URL)."""

    def __init__(self, host: str, address: str) -> None:
        self.host = host
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[ResolveResult]:
        if host != self.host:
            raise OSError(f"{host} is not this upstream's host")
        family = socket.AF_INET6 if ":" in self.address else socket.AF_INET
        return [{"hostname": host, "host": self.address, "port": port, "family": family, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        return None


class HttpCalls:
    """Direct calls to one Streamable HTTP upstream, for one SDK connection to it."""

    def __init__(
        self,
        config: UpstreamConfig,
        headers: dict[str, str],
        pinned: str | None,
        limit: int,
        message_handler: MessageHandler | None = None,
    ) -> None:
        self.config = config
        self.message_handler = message_handler  # the SDK client's: notifications go there
        self.url = config.url
        self.headers = headers  # the upstream's own: User-Agent and its configured headers
        self.pinned = pinned
        self.limit = limit  # bytes of one JSON answer or one SSE event
        self.calls = Calls()
        self.seen: dict[str, str] = {}  # the SDK's session id and revision, from its own requests
        self._session: aiohttp.ClientSession | None = None
        self._notes: set[asyncio.Task[None]] = set()
        self._closed = False

    async def observe(self, request: Any) -> None:
        """An httpx request hook on the SDK's client: remember its session id and revision."""
        for name in (SESSION_HEADER, PROTOCOL_HEADER):
            value = request.headers.get(name)
            if value is not None:
                self.seen[name] = value

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            resolver = None
            if self.pinned is not None:
                resolver = PinnedResolver(urlsplit(self.url).hostname or "", self.pinned)
            import httpx2

            # the trust the SDK's client has (httpx's default: SSL_CERT_FILE / SSL_CERT_DIR, else the system's)
            trust = httpx2.create_ssl_context() if self.url.startswith("https:") else True
            connector = aiohttp.TCPConnector(limit=POOL_SIZE, resolver=resolver, ttl_dns_cache=None, ssl=trust)
            self._session = client_session(
                connector=connector,
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=self.config.connect_timeout),
                skip_auto_headers=("User-Agent", "Content-Type"),
                auto_decompress=False,  # and an answer in a content coding is refused (_read)
            )
        return self._session

    async def aclose(self) -> None:
        self._closed = True
        for note in self._notes:
            note.cancel()
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.calls.fail_all(CallBroken("the connection was closed"))

    async def call(
        self, client: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None, progress: Progress | None
    ) -> Answer:
        legacy = getattr(client, "protocol_version", None) in LEGACY_VERSIONS

        async def exchange(
            request_id: str, message: dict[str, Any], stamped: dict[str, str], pending: PendingCall
        ) -> Answer:
            headers = self._headers()
            headers.update(stamped)
            headers.popall(self.config.identity_header, None)
            caller = identity_value(meta)
            if caller is not None:
                headers[self.config.identity_header] = caller
            try:
                async with self._client().post(
                    self.url, data=dumps(message), headers=headers, allow_redirects=False
                ) as response:
                    return await self._read(response, request_id, legacy)
            except (aiohttp.ClientError, OSError) as exc:
                raise CallBroken(f"{type(exc).__name__}: {exc}"[:300]) from None
            except asyncio.CancelledError:
                # 2026-07-28: the stream closed is the cancellation; before, a notification says it
                if legacy:
                    note = {"method": "notifications/cancelled", "params": {"requestId": request_id}}
                    self._send_later({"jsonrpc": "2.0", **note}, headers)
                raise

        return await self.calls.make(client, tool, arguments, meta, progress, exchange)

    def _headers(self) -> CIMultiDict[str]:
        """The upstream's own headers with the SDK's session id and revision: what every request
        of this connection carries (a call adds its stamp and the identity header)."""
        headers = CIMultiDict(self.headers)
        headers["Content-Type"] = "application/json"
        headers["Accept"] = "application/json, text/event-stream"
        headers["Accept-Encoding"] = "identity"
        headers.update(self.seen)
        return headers

    async def _read(self, response: aiohttp.ClientResponse, request_id: str, legacy: bool) -> Answer:
        status = response.status
        if SESSION_HEADER in self.seen and status == 404:
            raise CallBroken("the upstream no longer knows the session")
        if 300 <= status < 400 or status in NOT_RUN:
            raise Fallback(f"HTTP {status}")
        if 400 <= status < 500:
            return Answer(code=0, message=f"HTTP {status} {response.reason or ''}".strip())
        if status != 200:
            raise CallBroken(f"the upstream answered HTTP {status}")
        coding = content_coding(response.headers.get("Content-Encoding"))
        if coding is not None:
            raise Unusable(f"an answer in the content coding {coding!r}, which was not asked for")
        kind = response.content_type
        if kind == "application/json":
            try:
                body = await read_response_body(response, self.limit)
            except ResponseTooLarge:
                raise TooLarge(self.limit + 1) from None
            try:
                message = loads_exact(body)
            except ValueError:
                raise Unusable("an answer that is not JSON") from None
            if not isinstance(message, dict) or message.get("id") != request_id:
                raise Unusable("an answer to another request")
            return self._checked(answer_of(message, len(body)), legacy)
        if kind == "text/event-stream":
            async for data in _events(response.content, self.limit):
                try:
                    message = loads_exact(data)
                except ValueError:
                    raise Unusable("an event that is not JSON") from None
                if not isinstance(message, dict):
                    continue
                if "method" in message:
                    await self._from_upstream(message, legacy)
                    continue
                if message.get("id") == request_id:
                    return self._checked(answer_of(message, len(data)), legacy)
            raise CallBroken("the upstream's stream ended without an answer")
        raise Unusable(f"an answer of type {kind[:60]!r}")

    async def _from_upstream(self, message: dict[str, Any], legacy: bool) -> None:
        """A request or notification of the upstream's on a call's stream."""
        method, request_id = message.get("method"), message.get("id")
        if method == "notifications/progress":
            self.calls.progress(message.get("params"))
        elif request_id is not None:
            # 2026-07-28 has no requests to the client on a call's stream; before, answers in
            # flight are bounded (an upstream flooding pings gets no more)
            if legacy and len(self._notes) < MAX_ANSWERS_IN_FLIGHT:
                answer: dict[str, Any] = {"result": {}}
                if method != "ping":
                    answer = {"error": {"code": -32601, "message": "Method not found"}}
                self._send_later({"jsonrpc": "2.0", "id": request_id, **answer}, self._headers())
        elif self.message_handler is not None:
            from mcp.types import server_notification_adapter  # with the SDK: only an upstream needs it
            from pydantic import ValidationError

            try:
                notification = server_notification_adapter.validate_python(message, by_name=False)
            except ValidationError:
                return  # one the SDK would not pass on either
            try:
                await self.message_handler(notification)
            except Exception as exc:  # the handler's failure is not the call's (the SDK's session contains it too)
                log.warning("upstream notification not handled", error=f"{type(exc).__name__}: {exc}"[:300])

    def _send_later(self, message: dict[str, Any], headers: CIMultiDict[str]) -> None:
        """POST a notification or a response to the upstream in the background; its answer says
        nothing and is not read, and a redirect is not followed (the headers are the upstream's)."""
        if self._closed:
            return  # the connection is gone, and with it the session the message was for

        async def send() -> None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(self.config.connect_timeout):
                    async with self._client().post(
                        self.url, data=dumps(message), headers=headers, allow_redirects=False
                    ) as response:
                        response.release()

        task = asyncio.get_running_loop().create_task(send())
        self._notes.add(task)
        task.add_done_callback(self._notes.discard)

    @staticmethod
    def _checked(answer: Answer, legacy: bool) -> Answer:
        if answer.code == HEADER_MISMATCH and not legacy:  # before 2026-07-28 the code means nothing
            raise Fallback("the upstream's tool changed since it was listed")
        return answer


async def _events(content: Any, limit: int) -> AsyncIterator[bytes]:
    """The data of each event of a call's answer streamed (``sse_events``); one over ``limit``
    bytes fails the call as it passes the bound, before it is whole."""

    def too_large(size: int) -> None:
        raise TooLarge(size)

    async for event in sse_events(content.iter_any(), limit, too_large):
        yield event.data


def content_coding(header: str | None) -> str | None:
    """The content coding an answer says it is in (``Content-Encoding``), unless none: Skywarden
    asks an upstream for ``identity`` only, so that every bound counts the bytes it will hold (a
    few KB of gzip can stand for GBs)."""
    value = (header or "").strip().lower()
    return None if value in ("", "identity") else value[:40]
