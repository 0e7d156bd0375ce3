"""Requests an upstream sends Skywarden, bounded whatever the transport.

Skywarden's client offers an upstream no capability (no roots, sampling or elicitation), so the
only request a conforming upstream sends is ``ping``. The SDK's session answers each request it
is handed in a task of its own, and the answer waits for the transport to take it: an upstream
that floods requests and never reads the answers (a stdio upstream that stops reading its input,
a remote one that never completes the POSTs) would make the session hold a task per request.
Here at most ``MAX_UNANSWERED`` of an upstream's requests are with the session until their
answers are taken by the transport; the upstream's further requests are dropped unanswered.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

from skywarden.server.gateway.wrapped_stream import WrappedStream

MAX_UNANSWERED = 16  # an upstream's requests handed to the session whose answers are not yet sent


@contextlib.asynccontextmanager
async def bounded_requests(transport: Any) -> AsyncIterator[tuple[Any, Any]]:
    """``transport`` (an SDK transport: a context manager of its (read, write) streams) with the
    upstream's requests bounded as above."""
    async with transport as (read, write):
        unanswered: set[Any] = set()
        yield _Requests(read, unanswered), _Answers(write, unanswered)


def _role(item: Any) -> tuple[str | None, Any]:
    """What a stream's item is, ``request`` or ``answer`` (None for a notification or anything
    else), and its id as the other side repeats it (``1`` and ``"1"`` are different requests)."""
    message = getattr(item, "message", None)
    request_id = getattr(message, "id", None)
    if request_id is None:
        return None, None
    role = "answer" if getattr(message, "method", None) is None else "request"
    return role, (type(request_id).__name__, request_id)


class _Requests(WrappedStream):
    """The read stream: a request is passed on only while fewer than ``MAX_UNANSWERED`` are."""

    def __init__(self, inner: Any, unanswered: set[Any]) -> None:
        super().__init__(inner)
        self._unanswered = unanswered

    def __aiter__(self) -> _Requests:
        return self

    async def __anext__(self) -> Any:
        while True:
            item = await self._inner.__anext__()
            if self._passed(item):
                return item

    async def receive(self) -> Any:
        while True:
            item = await self._inner.receive()
            if self._passed(item):
                return item

    def _passed(self, item: Any) -> bool:
        role, key = _role(item)
        if role != "request":
            return True
        if key in self._unanswered or len(self._unanswered) >= MAX_UNANSWERED:
            return False
        self._unanswered.add(key)
        return True


class _Answers(WrappedStream):
    """The write stream: an answer taken by the transport frees its request's place."""

    def __init__(self, inner: Any, unanswered: set[Any]) -> None:
        super().__init__(inner)
        self._unanswered = unanswered

    async def send(self, item: Any) -> None:
        await self._inner.send(item)
        role, key = _role(item)
        if role == "answer":
            self._unanswered.discard(key)
