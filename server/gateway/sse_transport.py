"""HTTP+SSE (the MCP revision 2024-11-05) as a transport for the SDK's client, each event bounded.

As the SDK's ``sse_client``: a GET opens the event stream, its ``endpoint`` event names where
messages are POSTed (on the stream's own origin), and each ``message`` event is one JSON-RPC
message. Unlike it, an event is read in pieces and given up past ``limit`` bytes as it arrives,
never held whole, and only that event is lost: an answer over the bound fails its own call
(``ANSWER_TOO_LARGE``), not the connection every other call shares. No redirect is followed.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import structlog

from skywarden.server.gateway.direct import ANSWER_TOO_LARGE, NOT_SENT, SKYWARDEN_FAILURE
from skywarden.server.gateway.lines import (
    KEPT_OF_A_LINES_END,
    KEPT_OF_A_LONG_LINE,
    SSE_FIELD_ROOM,
    bounded_lines,
    lf_ended,
)
from skywarden.server.jsonutil import dumps

log = structlog.get_logger("skywarden.gateway")

MAX_ENDPOINT = 2048  # the endpoint event's URL
INTERNAL_ERROR = -32603
JSON_BODY = {"Content-Type": "application/json"}
_ID = rb'(-?\d{1,18}|"[^"\\]{1,200}")'
# The id of an answer over the bound: first, before its result (the Python SDK), or last, after
# it (the TypeScript SDK); never one of a request (``method``) nor one inside the result.
_VERSION = rb'(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?'
_ANSWER_ID_FIRST = re.compile(
    rb"^\s*\{\s*" + _VERSION + rb'"id"\s*:\s*' + _ID + rb"\s*,\s*" + _VERSION + rb'"(?:result|error)"'
)
_ANSWER_FIRST = re.compile(rb'^\s*\{\s*"(?:result|error)"\s*:')
_ID_LAST = re.compile(rb'"id"\s*:\s*' + _ID + rb"\s*\}\s*$")


@dataclass
class Event:
    """An SSE event: its type, and its data (``data:`` lines joined). One ``over`` the bound keeps
    only the start of its data, and its ``end``; its size then is what was seen of it."""

    kind: str
    data: bytes
    size: int
    over: bool = False
    end: bytes = b""


def answer_id(event: Event) -> Any:
    """The id of the answer an event over the bound was, or None."""
    found = _ANSWER_ID_FIRST.match(event.data)
    if found is None and _ANSWER_FIRST.match(event.data):
        found = _ID_LAST.search(event.end)
    if found is None:
        return None
    text = found[1].decode()
    return text[1:-1] if text.startswith('"') else int(text)


@contextlib.asynccontextmanager
async def sse_transport(url: str, client: Any, limit: int) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's (read, write) streams over an HTTP+SSE upstream at ``url``, through ``client``
    (an ``httpx2.AsyncClient``, closed with the transport); each event at most ``limit`` bytes."""
    from mcp.shared.message import SessionMessage
    from mcp.types import ErrorData, JSONRPCError, jsonrpc_message_adapter

    def failed(request_id: Any, text: str, why: str) -> Any:
        error = ErrorData(code=INTERNAL_ERROR, message=text, data={SKYWARDEN_FAILURE: why})
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=error))

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(client)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        response = await stack.enter_async_context(client.stream("GET", url, headers=headers))
        if not response.is_success:  # httpx's own error would quote the URL, query and all
            raise ConnectionError(
                f"the event stream was answered HTTP {response.status_code} {response.reason_phrase[:60]}"
            )
        to_session, read_stream = anyio.create_memory_object_stream[Any](0)
        write_stream, from_session = anyio.create_memory_object_stream[Any](0)
        for stream in (to_session, read_stream, write_stream, from_session):
            await stack.enter_async_context(stream)
        endpoint: list[str] = []
        broke: list[str] = []  # why the stream ended, if it broke
        found = anyio.Event()

        async def deliver(event: Event) -> None:
            if event.kind == "endpoint":
                text = event.data.decode("utf-8", "replace").strip()
                target = urljoin(url, text)
                if len(text) > MAX_ENDPOINT or not _same_origin(url, target):
                    raise ValueError("the upstream's endpoint event names another origin, or is too long")
                endpoint[:] = [target]
                found.set()
            elif event.kind == "message" and event.data:
                try:
                    parsed = jsonrpc_message_adapter.validate_json(event.data, by_name=False)
                except ValueError as exc:
                    await to_session.send(exc)
                    return
                data = getattr(getattr(parsed, "error", None), "data", None)
                if isinstance(data, dict):
                    data.pop(SKYWARDEN_FAILURE, None)  # the upstream's: only this transport's own say so
                await to_session.send(SessionMessage(parsed))

        async def too_long(event: Event) -> None:
            log.warning("upstream event over the bound skipped", limit=limit, bytes_seen=event.size)
            request_id = answer_id(event) if event.kind == "message" else None
            if request_id is not None:
                await to_session.send(failed(request_id, f"an answer of more than {limit} bytes", ANSWER_TOO_LARGE))

        async def read() -> None:
            try:
                async for event in _events(response.aiter_bytes(), limit):
                    await (too_long(event) if event.over else deliver(event))
            except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                return
            except Exception as exc:  # the stream broke: the session sees its end
                broke.append(f"{type(exc).__name__}: {exc}"[:300])
                log.debug("upstream event stream ended", error=broke[0])
            finally:
                to_session.close()
                found.set()

        async def post() -> None:
            async for item in from_session:
                message = item.message
                body = message.model_dump(by_alias=True, mode="json", exclude_unset=True)
                try:
                    async with client.stream("POST", endpoint[0], content=dumps(body), headers=JSON_BODY) as answer:
                        if not answer.is_success:  # its body says nothing Skywarden needs: never read
                            raise _NotTaken(f"HTTP {answer.status_code}")
                except Exception as exc:
                    request_id = getattr(message, "id", None)
                    if getattr(message, "method", None) is not None and request_id is not None:
                        why = str(exc) if isinstance(exc, _NotTaken) else type(exc).__name__  # never a URL
                        text = f"it could not be sent to the upstream ({why})"
                        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                            await to_session.send(failed(request_id, text, NOT_SENT))

        async with anyio.create_task_group() as tasks:
            tasks.start_soon(read)
            await found.wait()
            if not endpoint:
                tasks.cancel_scope.cancel()
                why = f" ({broke[0]})" if broke else ""
                raise ConnectionError(f"the upstream's event stream ended before its endpoint event{why}")
            tasks.start_soon(post)
            try:
                yield read_stream, write_stream
            finally:
                tasks.cancel_scope.cancel()


class _NotTaken(Exception):
    """The upstream answered a POST with a status other than success."""


async def _events(chunks: Any, limit: int) -> AsyncIterator[Event]:
    """Each event of an SSE stream (``message`` unless named). Data over ``limit`` is not kept:
    such an event keeps its data's first ``KEPT_OF_A_LONG_LINE`` and last ``KEPT_OF_A_LINES_END``
    bytes. An event the stream ends in the middle of is no event."""
    kind, kept, size, end = "message", bytearray(), 0, b""
    long_data = 0  # the size seen of a data line being skipped, while one is

    def data(value: bytes, whole: int) -> None:
        """A ``data:`` line's value (of ``whole`` bytes: a skipped line's is only its start)."""
        nonlocal size, end
        joined = b"\n" + value if size else value
        size += whole + (1 if size else 0)
        if size <= limit:
            kept.extend(joined)
            return
        room = KEPT_OF_A_LONG_LINE - len(kept)
        if room < 0:
            del kept[KEPT_OF_A_LONG_LINE:]
        elif room > 0:
            kept.extend(joined[:room])
        end = (end + joined)[-KEPT_OF_A_LINES_END:]

    def long_line(start: bytes, seen: int) -> None:
        nonlocal long_data
        if start.startswith(b"data:"):
            data(start[5:].removeprefix(b" "), seen)
            long_data = seen

    def long_line_ended(tail: bytes, whole: int) -> None:
        nonlocal end, size, long_data
        if long_data:  # the end of the data line skipped is the event's end so far
            end = tail
            size += whole - long_data
            long_data = 0

    async for line in bounded_lines(lf_ended(chunks), limit + SSE_FIELD_ROOM, long_line, long_line_ended):
        if not line:
            if size:
                yield Event(kind, bytes(kept), size, size > limit, end)
            kind, kept, size, end = "message", bytearray(), 0, b""
        elif line.startswith(b"data:"):
            value = line[5:].removeprefix(b" ")
            data(value, len(value))
        elif line.startswith(b"event:"):
            kind = line[6:].strip().decode("utf-8", "replace")[:64]


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
