"""Server-to-client streams that say "your tool list changed": a handshake session's GET stream
(2025-03-26 to 2025-11-25) and a ``subscriptions/listen`` stream (2026-07-28).

A stream is told only when the list its own principal sees changed (an upstream added, removed,
re-listed; a plugin's tools are fixed), so a key learns nothing of tools it may not use. A
change is a level trigger: changes that come faster than a client reads make one notification.
Everything a client can open here is bounded: ``per_key`` per key or token subject
(``max_streams_per_key``) and ``MAX_STREAMS`` in all, on each instance; a stream whose client went away is
noticed within ``CHECK_SECONDS`` (its connection closed) or at the next keep-alive comment
(every ``KEEPALIVE_SECONDS``), and its slot freed. A stream ends when the server shuts down
(a listen stream with its final result: the graceful close), when its key changes through this
instance or the broadcast (revoked, rescoped: the client opens it again, or is refused), when
the credential it was opened with no longer holds (expired; or revoked where no broadcast
reaches, such as the CLI without Redis: checked every ``CHECK_SECONDS``, and at once when the
store's change feed names its key), or when its session is deleted (through any instance: the
broadcast's ``session-ended``).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from aiohttp import web

from skywarden.server.errors import TOO_MANY_STREAMS, ApiError
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp.methods import EVERY_TOOL, ToolView
from skywarden.server.principal import Principal

MAX_STREAMS = 10_000
KEEPALIVE_SECONDS = 25.0
CHECK_SECONDS = 5.0  # how soon a stream whose client went away is noticed and its slot freed
STREAM_RETRY_SECONDS = 60
SSE_HEADERS = {
    "Content-Type": "text/event-stream",
    "Cache-Control": "no-cache, no-transform",
    "X-Accel-Buffering": "no",
}

Visible = Callable[[Principal, ToolView], frozenset[str]]
StillValid = Callable[[web.Request], Awaitable[bool]]  # the credential a stream was opened with still holds


@dataclass(eq=False)
class ChangeStream:
    principal: Principal
    session_id: str | None
    view: ToolView
    seen: frozenset[str]  # the tool names this principal saw when last told
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    ended: asyncio.Event = field(default_factory=asyncio.Event)  # the server ends it
    closed: asyncio.Event = field(default_factory=asyncio.Event)  # its handler is done, its slot free
    check: asyncio.Event = field(default_factory=asyncio.Event)  # its credential is to be checked now


class ChangeStreams:
    """This instance's open change streams. ``visible``: the tool names a principal may see now
    through a view (an endpoint's: every tool, or one upstream's)."""

    def __init__(self, visible: Visible, still_valid: StillValid | None = None, per_key: int = 8) -> None:
        self.visible = visible
        self.still_valid = still_valid
        self.per_key = per_key
        self.open: set[ChangeStream] = set()
        self.closing = False

    def add(self, principal: Principal, session_id: str | None = None, view: ToolView = EVERY_TOOL) -> ChangeStream:
        if self.closing:
            why = "The server is shutting down; open the stream again in a moment."
        elif sum(1 for s in self.open if s.principal.id == principal.id) >= self.per_key:
            why = f"At most {self.per_key} change streams may be open per key; close one first."
        elif len(self.open) >= MAX_STREAMS:
            why = f"This instance holds {MAX_STREAMS:,} change streams, its most; try again later."
        else:
            why = ""
        if why:
            raise ApiError(
                TOO_MANY_STREAMS, why, headers={"Retry-After": str(STREAM_RETRY_SECONDS)}, audit={"limit": "streams"}
            )
        stream = ChangeStream(principal, session_id, view, self.visible(principal, view))
        self.open.add(stream)
        return stream

    async def _holds(self, request: web.Request) -> bool:
        """The stream's credential still holds; a store that cannot answer now ends nothing."""
        try:
            return await (self.still_valid or _always)(request)
        except Exception:
            return True

    def has_session(self, session_id: str) -> bool:
        return any(s.session_id == session_id for s in self.open)

    def tools_changed(self) -> None:
        """Each stream whose list changed is woken. The list is worked out once per scopes and
        view, not per stream: a change costs what kinds of callers there are, not how many."""
        lists: dict[tuple[frozenset[str], ToolView], frozenset[str]] = {}
        for stream in self.open:
            which = (stream.principal.scopes, stream.view)
            now = lists.get(which)
            if now is None:
                now = lists[which] = self.visible(stream.principal, stream.view)
            if now != stream.seen:
                stream.seen = now
                stream.changed.set()

    def _end(self, streams: Iterable[ChangeStream]) -> None:
        for stream in list(streams):
            stream.ended.set()

    async def end_for_key(self, key_id: str) -> None:
        """The broadcast's ``key-changed``: that key's streams end."""
        self._end(s for s in self.open if s.principal.id == key_id)

    def check_keys(self, key_ids: frozenset[str] | None) -> None:
        """The store's change feed found these keys changed: their streams check their
        credential now rather than at their next ``CHECK_SECONDS``, so a key revoked where no
        broadcast reaches (the CLI without Redis) ends its streams within a second or two. None
        (more changes than one read names) wakes none: every stream checking at once would be a
        store read each, all together; their own checks, spread out, follow within 5 s."""
        if key_ids is None:
            return
        for stream in self.open:
            if stream.principal.id in key_ids:
                stream.check.set()

    async def end_session(self, session_id: str) -> None:
        """The broadcast's ``session-ended``: a session deleted through any instance."""
        self._end(s for s in self.open if s.session_id == session_id)

    async def end_all(self, app: web.Application | None = None) -> None:
        """On shutdown (an ``on_shutdown`` signal): every stream ends before the server waits for
        its handlers."""
        self.closing = True
        self._end(self.open)

    async def serve(
        self,
        request: web.Request,
        stream: ChangeStream,
        change: bytes,
        first: bytes | None = None,
        last: bytes | None = None,
    ) -> web.StreamResponse:
        """Write ``first``, then ``change`` whenever the principal's list changes, and ``last`` when
        the stream is ended (not when the client went away), as SSE events."""
        response = web.StreamResponse(status=200, headers=SSE_HEADERS)
        try:
            await response.prepare(request)
            if first is not None:
                await response.write(event(first))
            quiet = 0.0
            while not stream.ended.is_set():
                waits = [asyncio.ensure_future(e.wait()) for e in (stream.changed, stream.ended, stream.check)]
                try:
                    done, _ = await asyncio.wait(waits, timeout=CHECK_SECONDS, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for waiting in waits:
                        waiting.cancel()
                if stream.ended.is_set() or _gone(request):
                    break
                checking = not done or stream.check.is_set()
                stream.check.clear()
                if checking and not await self._holds(request):
                    break  # revoked, expired, rotated out: ended without the graceful close
                if stream.changed.is_set():
                    stream.changed.clear()
                    await response.write(event(change))
                    quiet = 0.0
                elif not done and (quiet := quiet + CHECK_SECONDS) >= KEEPALIVE_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    quiet = 0.0
            if last is not None and stream.ended.is_set():
                await response.write(event(last))
            with contextlib.suppress(ConnectionError):
                await response.write_eof()
            return response
        except ConnectionError:  # the client went away: nothing more to say
            return response
        finally:
            self.open.discard(stream)
            stream.closed.set()


async def _always(request: web.Request) -> bool:
    return True


def _gone(request: web.Request) -> bool:
    transport = request.transport
    return transport is None or transport.is_closing()


def event(message: bytes) -> bytes:
    return b"event: message\ndata: " + message + b"\n\n"


def notification(method: str, params: dict[str, object] | None = None) -> bytes:
    message: dict[str, object] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    return dumps(message)
