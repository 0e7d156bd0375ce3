"""HTTP+SSE (the MCP revision 2024-11-05) as a transport for the SDK's client, each event bounded.

As the SDK's ``sse_client``: a GET opens the event stream, its ``endpoint`` event names where
messages are POSTed (on the stream's own origin), and each ``message`` event is one JSON-RPC
message. Unlike it, an event is read in pieces and given up past ``limit`` bytes as it arrives,
never held whole, and only that event is lost: an answer over the bound fails its own call
(``ANSWER_TOO_LARGE``), not the connection every other call shares. No redirect is followed.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urljoin, urlsplit

import anyio
import structlog

from skywarden.server.gateway.direct import ANSWER_TOO_LARGE, NOT_SENT, SKYWARDEN_FAILURE, answer_id
from skywarden.server.gateway.sse_events import Event, sse_events
from skywarden.server.jsonutil import dumps

log = structlog.get_logger("skywarden.gateway")

MAX_ENDPOINT = 2048  # the endpoint event's URL
INTERNAL_ERROR = -32603
JSON_BODY = {"Content-Type": "application/json"}


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
            request_id = answer_id(event.data, event.end) if event.kind == "message" else None
            if request_id is not None:
                await to_session.send(failed(request_id, f"an answer of more than {limit} bytes", ANSWER_TOO_LARGE))

        async def read() -> None:
            try:
                async for event in sse_events(response.aiter_bytes(), limit):
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


def _same_origin(url: str, other: str) -> bool:
    a, b = urlsplit(url), urlsplit(other)
    return (a.scheme, a.netloc) == (b.scheme, b.netloc)
