"""Lines of a stream an upstream sends (a stdio upstream's output, an SSE answer), each bounded:
a line longer than the bound is skipped as it arrives, never held whole."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable
from dataclasses import dataclass

KEPT_OF_A_LONG_LINE = 4096  # the start of a line over the bound, handed on to say whose it was


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line over the bound: its ``start`` (at most ``KEPT_OF_A_LONG_LINE`` bytes) and the
    ``size`` seen when it passed the bound (at least the bound plus one)."""

    start: bytes
    size: int


class LineCutter:
    """Cuts pieces of a stream into complete lines (ended by ``\\n``, given without it), each at
    most ``limit`` bytes; past that a line is skipped to its end. A last line without its end is
    no line. Synchronous, so a reader takes every line of a piece in one step."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._parts: list[bytes] = []  # the line under way, when a piece ended inside it
        self._size = 0
        self._skipping = False

    def feed(self, chunk: bytes) -> list[bytes | Skipped]:
        """The lines ``chunk`` completes, and a ``Skipped`` where a line passed the bound, in order."""
        out: list[bytes | Skipped] = []
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:  # find, not split: memchr rather than a byte loop
            piece = chunk[start:end]
            start = end + 1
            if self._skipping:
                self._skipping = False
            elif self._parts:
                self._parts.append(piece)
                size = self._size + len(piece)
                out.append(b"".join(self._parts) if size <= self.limit else Skipped(_start(self._parts), size))
                self._parts, self._size = [], 0
            elif len(piece) <= self.limit:
                out.append(piece)
            else:
                out.append(Skipped(piece[:KEPT_OF_A_LONG_LINE], len(piece)))
        rest = chunk[start:]
        if rest and not self._skipping:
            self._parts.append(rest)
            self._size += len(rest)
            if self._size > self.limit:
                out.append(Skipped(_start(self._parts), self._size))
                self._parts, self._size, self._skipping = [], 0, True
        return out


def _start(parts: list[bytes]) -> bytes:
    """The first ``KEPT_OF_A_LONG_LINE`` bytes of a line in ``parts``, without joining the rest."""
    kept: list[bytes] = []
    room = KEPT_OF_A_LONG_LINE
    for part in parts:
        if room <= 0:
            break
        kept.append(part[:room])
        room -= len(kept[-1])
    return b"".join(kept)


async def bounded_lines(
    chunks: AsyncIterable[bytes], limit: int, too_long: Callable[[bytes, int], None]
) -> AsyncIterator[bytes]:
    """Each complete line of ``chunks`` (``LineCutter``); ``too_long`` gets the start and the size
    seen of each line over the bound (it may raise to stop reading)."""
    cutter = LineCutter(limit)
    async for chunk in chunks:
        for item in cutter.feed(chunk):
            if isinstance(item, Skipped):
                too_long(item.start, item.size)
            else:
                yield item
