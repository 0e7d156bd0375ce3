"""Lines of a stream an upstream sends (a stdio upstream's output, an SSE stream), each bounded:
a line longer than the bound is skipped as it arrives, never held whole."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Callable

KEPT_OF_A_LONG_LINE = 4096  # the start of a line over the bound, handed on to say whose it was
KEPT_OF_A_LINES_END = 256  # and its end, for an answer that names its call last


async def bounded_lines(
    chunks: AsyncIterable[bytes],
    limit: int,
    too_long: Callable[[bytes, int], None],
    skipped: Callable[[bytes, bytes, int], None] | None = None,
) -> AsyncIterator[bytes]:
    """Each complete line (ended by ``\\n``, given without it) of ``chunks``, at most ``limit``
    bytes. Past that a line is skipped to its end, and ``too_long`` gets its start and the size
    seen (it may raise to stop reading); at its end ``skipped`` (if given) gets that start again,
    its last ``KEPT_OF_A_LINES_END`` bytes and its whole size (an answer may name its call last).
    A last line without its end is no line."""
    held = bytearray()  # the start of a line that goes on in a later piece: one buffer, however small the pieces
    size = 0
    skipping = False
    start_kept = tail = b""
    async for chunk in chunks:
        start = 0
        while start <= len(chunk):
            end = chunk.find(b"\n", start)
            piece = chunk[start:] if end < 0 else chunk[start:end]
            size += len(piece)
            if skipping:
                if skipped is not None:
                    tail = (tail + piece)[-KEPT_OF_A_LINES_END:]
            elif size > limit:
                line = bytes(held) + piece
                start_kept = line[:KEPT_OF_A_LONG_LINE]
                too_long(start_kept, size)
                held, skipping, tail = bytearray(), True, line[-KEPT_OF_A_LINES_END:]
            elif end < 0:
                held += piece
            if end < 0:
                break
            if not skipping:
                if held:
                    held += piece
                    piece, held = bytes(held), bytearray()
                yield piece
            elif skipped is not None:
                skipped(start_kept, tail, size)
            size, skipping = 0, False
            start = end + 1
