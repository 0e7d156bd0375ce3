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
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import structlog

from skywarden.server.gateway.direct import ANSWER_TOO_LARGE
from skywarden.server.gateway.lines import KEPT_OF_A_LONG_LINE, SSE_FIELD_ROOM, bounded_lines, lf_ended
from skywarden.server.jsonutil import dumps

log = structlog.get_logger("skywarden.gateway")

MAX_ENDPOINT = 2048  # the endpoint event's URL
INTERNAL_ERROR = -32603
JSON_BODY = {"Content-Type": "application/json"}
# The id of the answer an event starts with (the SDKs write it before the result): a number or a
# string, found only before the answer's own members begin.
_ANSWER_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*(-?\d{1,18}|"[^"\\]{1,200}")')


@contextlib.asynccontextmanager
async def sse_transport(url: str, client: Any, limit: int) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's (read, write) streams over an HTTP+SSE upstream at ``url``, through ``client``
    (an ``httpx2.AsyncClient``, closed with the transport); each event at most ``limit`` bytes."""
    from mcp.shared.message import SessionMessage
    from mcp.types import ErrorData, JSONRPCError, jsonrpc_message_adapter

    def error_answer(request_id: Any, text: str, code: int = INTERNAL_ERROR) -> Any:
        return SessionMessage(JSONRPCError(jsonrpc="2.0", id=request_id, error=ErrorData(code=code, message=text)))

    async with contextlib.AsyncExitStack() as stack:
        await stack.enter_async_context(client)
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-store"}
        response = await stack.enter_async_context(client.stream("GET", url, headers=headers))
        response.raise_for_status()
        to_session, read_stream = anyio.create_memory_object_stream[Any](0)
        write_stream, from_session = anyio.create_memory_object_stream[Any](0)
        endpoint: list[str] = []
        broke: list[str] = []  # why the stream ended, if it broke
        found = anyio.Event()

        async def deliver(event: str, data: bytes) -> None:
            if event == "endpoint":
                target = urljoin(url, data.decode("utf-8", "replace").strip()[:MAX_ENDPOINT])
                if not _same_origin(url, target):
                    raise ValueError("the upstream's endpoint event names another origin")
                endpoint[:] = [target]
                found.set()
            elif event == "message" and data:
                try:
                    message: Any = SessionMessage(jsonrpc_message_adapter.validate_json(data, by_name=False))
                except ValueError as exc:
                    message = exc
                await to_session.send(message)

        async def too_long(event: str, start: bytes, size: int) -> None:
            log.warning("upstream event over the bound skipped", limit=limit, bytes_seen=size)
            answer = _ANSWER_ID.match(start) if event == "message" else None
            if answer is not None:
                request_id = answer[1].decode()
                text = f"an answer of more than {limit} bytes"
                await to_session.send(
                    error_answer(int(request_id) if request_id[0] != '"' else request_id[1:-1], text, ANSWER_TOO_LARGE)
                )

        async def read() -> None:
            try:
                async for event, data, size in _events(response.aiter_bytes(), limit):
                    if size > limit:
                        await too_long(event, data, size)
                    else:
                        await deliver(event, data)
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
                    answer = await client.post(
                        endpoint[0], content=dumps(body), headers={"Content-Type": "application/json"}
                    )
                    answer.raise_for_status()
                except Exception as exc:
                    request_id = getattr(message, "id", None)
                    text = f"Skywarden could not send it: {type(exc).__name__}"
                    if getattr(message, "method", None) is not None and request_id is not None:
                        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
                            await to_session.send(error_answer(request_id, text))

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
                write_stream.close()
                read_stream.close()


async def _events(chunks: Any, limit: int) -> AsyncIterator[tuple[str, bytes, int]]:
    """Each event of an SSE stream: its type (``message`` unless named), its data (``data:`` lines
    joined) and the data's size. Data over ``limit`` is not kept: such an event comes with the
    start of its data (``KEPT_OF_A_LONG_LINE`` bytes) and a size over ``limit``. An event the
    stream ends in the middle of is no event."""
    event, kept, size = "message", bytearray(), 0

    def keep(value: bytes) -> None:
        nonlocal size
        if kept or size:
            kept.extend(b"\n")
        size += len(value) + (1 if size else 0)
        room = (limit if size <= limit else KEPT_OF_A_LONG_LINE) - len(kept)
        if room > 0:
            kept.extend(value[:room])

    def long_line(start: bytes, seen: int) -> None:
        nonlocal size
        if start.startswith(b"data:"):
            keep(start[5:].removeprefix(b" "))
            size = max(size, limit + 1) + seen

    async for line in bounded_lines(lf_ended(chunks), limit + SSE_FIELD_ROOM, long_line):
        if not line:
            if size:
                yield event, bytes(kept if size <= limit else kept[:KEPT_OF_A_LONG_LINE]), size
            event, kept, size = "message", bytearray(), 0
        elif line.startswith(b"data:"):
            keep(line[5:].removeprefix(b" "))
        elif line.startswith(b"event:"):
            event = line[6:].strip().decode("utf-8", "replace")[:64]


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
