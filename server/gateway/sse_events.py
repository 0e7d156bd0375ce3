"""Server-sent events from an upstream, each bounded as it arrives: a call's answer streamed over
Streamable HTTP (``http_calls``) and an HTTP+SSE upstream's stream (``sse_transport``) alike.

An event's data over the bound is never held whole: the event keeps the start and the end of it
(to say whose answer it was) and its size, and ``over`` is told the moment it passes the bound
(a reader that wants no more of the stream raises there)."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

from skywarden.server.gateway.lines import KEPT_OF_A_LINES_END, KEPT_OF_A_LONG_LINE, bounded_lines

SSE_FIELD_ROOM = 1024  # what a line of an event may hold besides its data (``data: ``, ``id: ...``)


@dataclass
class Event:
    """An event: its type, and its data (``data:`` lines joined). One ``over`` the bound keeps
    only the start of its data, and its ``end``; its size then is what was seen of it."""

    kind: str
    data: bytes
    size: int
    over: bool = False
    end: bytes = b""


async def sse_events(
    chunks: AsyncIterable[bytes], limit: int, over: Callable[[int], None] | None = None
) -> AsyncIterator[Event]:
    """Each event of a stream that has data (``message`` unless named), its data at most ``limit``
    bytes: past that only its first ``KEPT_OF_A_LONG_LINE`` and last ``KEPT_OF_A_LINES_END`` bytes
    are kept, and ``over`` (if given) gets the size seen. Lines may end in LF, CRLF or CR. The
    data of a stream that ends without the blank line ending its last event is that event's."""
    kind, kept, size, lines, filled, end = "message", bytearray(), 0, 0, False, b""
    long_data = 0  # the size seen of a data line being skipped, while one is

    def data(value: bytes, whole: int) -> None:
        """A ``data:`` line's value (of ``whole`` bytes: a skipped line's is only its start)."""
        nonlocal size, lines, filled, end
        joined = b"\n" + value if lines else value
        filled = filled or bool(value)
        was_over = size > limit
        size += whole + (1 if lines else 0)
        lines += 1
        if size <= limit:
            kept.extend(joined)
            return
        room = KEPT_OF_A_LONG_LINE - len(kept)
        if room < 0:
            del kept[KEPT_OF_A_LONG_LINE:]
        elif room > 0:
            kept.extend(joined[:room])
        end = (end + joined)[-KEPT_OF_A_LINES_END:]
        if over is not None and not was_over:
            over(size)

    def long_line(start: bytes, seen: int) -> None:
        nonlocal long_data
        if start.startswith(b"data:"):
            long_data = seen
            data(start[5:].removeprefix(b" "), seen)
        elif over is not None:  # any line over the bound ends the reading of one who wants no more
            over(seen)

    def long_line_ended(start: bytes, tail: bytes, whole: int) -> None:
        nonlocal end, size, long_data
        if long_data:  # the end of the data line skipped is the event's end so far
            end = tail
            size += whole - long_data
            long_data = 0

    def event() -> Event:
        return Event(kind, bytes(kept), size, size > limit, end)

    async for line in bounded_lines(lf_ended(chunks), limit + SSE_FIELD_ROOM, long_line, long_line_ended):
        if not line:
            if filled:  # an event with no data (a stream's priming event, a comment) says nothing
                yield event()
            kind, kept, size, lines, filled, end = "message", bytearray(), 0, 0, False, b""
        elif line.startswith(b"data:"):
            value = line[5:].removeprefix(b" ")
            data(value, len(value))
        elif line.startswith(b"event:"):
            kind = line[6:].strip().decode("utf-8", "replace")[:64]
    if filled:
        yield event()


async def lf_ended(chunks: AsyncIterable[bytes]) -> AsyncIterator[bytes]:
    """``chunks`` with each line end of SSE (CRLF, LF or a bare CR) as LF, however they are cut."""
    after_cr = False
    async for chunk in chunks:
        if not chunk:
            continue
        if after_cr and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the LF of a CRLF cut in two: its CR was the line end
        after_cr = chunk.endswith(b"\r")
        yield chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
