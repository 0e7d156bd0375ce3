"""A stdio upstream's output cut into lines (server/gateway/stdio_pipes.py): however the pipe
delivers it, the same lines come out, and a line over the bound is skipped as it arrives, its
start handed on to find whose answer it was."""

from __future__ import annotations

import asyncio
import tracemalloc
from collections.abc import AsyncIterator
from typing import NamedTuple

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skywarden.server.gateway.lines import KEPT_OF_A_LINES_END, KEPT_OF_A_LONG_LINE, bounded_lines
from skywarden.server.gateway.stdio_calls import StdioCalls
from skywarden.server.gateway.stdio_pipes import _lines, _stop

LIMIT = 50
LINE = st.binary(max_size=80).filter(lambda b: b"\n" not in b)


class Recording(StdioCalls):
    def __init__(self) -> None:
        super().__init__()
        self.long: list[tuple[bytes, int]] = []
        self.ended: list[bytes] = []  # the ends of long lines, told again once they ended

    def too_long(self, start: bytes, size: int, end: bytes = b"") -> bool:
        if end:
            self.ended.append(end)
        else:
            self.long.append((start, size))
        return True


async def read(chunks: list[bytes], calls: StdioCalls) -> list[bytes]:
    reader = asyncio.StreamReader()
    for chunk in chunks:
        reader.feed_data(chunk)
    reader.feed_eof()
    return [line async for line in _lines(reader, LIMIT, calls)]


def cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [piece for piece in (data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)) if piece]


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8), st.lists(st.integers(min_value=0), max_size=10), st.booleans())
def test_lines_come_out_the_same_however_the_output_is_cut(lines, cuts, final_newline):
    data = b"\n".join(lines) + (b"\n" if final_newline else b"")
    calls = Recording()
    found = asyncio.run(read(cut(data, cuts), calls))
    ended = lines if final_newline else lines[:-1]  # a line without its end is no message
    assert found == [line for line in ended if line.strip() and len(line) <= LIMIT]
    assert [size > LIMIT for _, size in calls.long] == [True] * len([line for line in lines if len(line) > LIMIT])
    long_and_ended = [line for line in ended if len(line) > LIMIT]  # each told again with its end
    assert len(calls.ended) == len(long_and_ended)
    assert all(line.endswith(end) for line, end in zip(long_and_ended, calls.ended, strict=True))


def test_the_start_of_a_long_line_names_its_call():
    calls = StdioCalls()
    answers = []

    async def run() -> None:
        request_id, pending = calls.calls.start(None)
        line = b'{"jsonrpc": "2.0", "id": "%s", "result": {"content": "' % request_id.encode() + b"x" * 200 + b'"}}\n'
        reader = asyncio.StreamReader()
        reader.feed_data(line + b'{"jsonrpc": "2.0", "method": "ping-after"}\n')
        reader.feed_eof()
        answers.extend([line async for line in _lines(reader, LIMIT, calls)])
        answers.append(pending.future.exception())

    asyncio.run(run())
    assert answers[0] == b'{"jsonrpc": "2.0", "method": "ping-after"}'
    assert type(answers[1]).__name__ == "TooLarge" and answers[1].size > LIMIT


def test_an_id_inside_a_long_lines_result_names_no_call():
    """Only the answer's own id, first or last, says whose it was: not one its result quotes."""
    calls = StdioCalls()

    async def run() -> list[bool]:
        request_id, pending = calls.calls.start(None)
        quoted = b'{"jsonrpc": "2.0", "result": {"id": "%s", "text": "' % request_id.encode() + b"x" * 200 + b'"}}\n'
        reader = asyncio.StreamReader()
        reader.feed_data(quoted)
        reader.feed_eof()
        [line async for line in _lines(reader, LIMIT, calls)]
        return [pending.future.done()]

    assert asyncio.run(run()) == [False]


@pytest.mark.slow
async def test_stopping_an_upstream_that_never_reads_its_input_still_ends_it():
    process = await asyncio.create_subprocess_exec("sleep", "60", stdin=asyncio.subprocess.PIPE, start_new_session=True)
    assert process.stdin is not None
    process.stdin.write(b"x" * (1 << 20))  # more than the pipe holds: the close cannot finish
    await asyncio.wait_for(_stop(process), 30)  # the input's grace, then SIGTERM: about 2 s
    assert process.returncode is not None


class Skipped(NamedTuple):
    """What ``too_long`` was told of a line over the bound."""

    start: bytes
    size: int


def cut_lines(pieces: list[bytes], limit: int) -> list[bytes | Skipped]:
    """What ``bounded_lines`` gives of ``pieces``: each line, and a ``Skipped`` where it told
    ``too_long`` of one over the bound, in order."""
    out: list[bytes | Skipped] = []

    async def run() -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for piece in pieces:
                yield piece

        async for line in bounded_lines(chunks(), limit, lambda start, size: out.append(Skipped(start, size))):
            out.append(line)

    asyncio.run(run())
    return out


def test_a_line_before_a_long_one_comes_out_first():
    """A reader that stops at the long line (an SSE answer's ``too_long`` raises) has had every
    line before it, even in the same piece of the stream."""
    first = b"first\n" + b"x" * (LIMIT + 5) + b"\nlast"
    out = cut_lines([first], LIMIT)
    assert out[0] == b"first"
    assert isinstance(out[1], Skipped) and out[1].size == LIMIT + 5 and out[1].start == b"x" * (LIMIT + 5)
    assert out[2:] == [] and cut_lines([first, b"\n"], LIMIT)[2:] == [b"last"]


@settings(max_examples=300, deadline=None)
@given(st.lists(LINE, max_size=8), st.lists(st.integers(min_value=0), max_size=10))
def test_each_line_or_its_skip_comes_out_in_order(lines, cuts):
    data = b"".join(line + b"\n" for line in lines)
    out = cut_lines(cut(data, cuts), LIMIT)
    assert [item if isinstance(item, bytes) else None for item in out] == [
        line if len(line) <= LIMIT else None for line in lines
    ]
    skipped = [item for item in out if isinstance(item, Skipped)]
    assert all(item.size > LIMIT and len(item.start) <= KEPT_OF_A_LONG_LINE for item in skipped)


@pytest.mark.parametrize("pieces", [[b"a" * 6000, b"b" * 6000 + b"\nnext\n"], [b"a" * 6000, b"b" * 6000, b"c\nnext\n"]])
def test_a_long_line_over_pieces_keeps_only_its_start(pieces):
    """Passed the bound in the piece that ends it or before: either way its start is the first
    ``KEPT_OF_A_LONG_LINE`` bytes, its size what was seen, and the next line comes out whole."""
    assert cut_lines(pieces, 10_000) == [Skipped(b"a" * KEPT_OF_A_LONG_LINE, 12_000), b"next"]


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=LIMIT + 1, max_size=3 * KEPT_OF_A_LINES_END), st.lists(st.integers(min_value=0), max_size=10))
def test_a_skipped_lines_end_and_whole_size_are_told_when_it_ends(long, cuts):
    """Whatever the pieces, ``skipped`` gets the line's last ``KEPT_OF_A_LINES_END`` bytes and its
    size once its end arrives (an answer may name its call last), and nothing for a kept line."""
    long = long.replace(b"\n", b"-")
    ends: list[tuple[bytes, int]] = []

    async def run() -> list[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            for piece in cut(b"short\n" + long + b"\nafter\n", cuts):
                yield piece

        skipped = lambda start, end, size: ends.append((end, size))  # noqa: E731
        return [line async for line in bounded_lines(chunks(), LIMIT, lambda start, size: None, skipped)]

    assert asyncio.run(run()) == [b"short", b"after"]
    assert ends == [(long[-KEPT_OF_A_LINES_END:], len(long))]


def test_a_line_in_tiny_pieces_is_held_in_one_buffer():
    """100 KB arriving a byte at a time costs about 100 KB, not an object a byte (4 MB)."""

    async def run() -> list[bytes]:
        async def chunks() -> AsyncIterator[bytes]:
            line = b"y" * 100_000 + b"\n"
            for i in range(len(line)):
                yield line[i : i + 1]

        return [line async for line in bounded_lines(chunks(), 1_000_000, lambda start, size: None)]

    tracemalloc.start()
    try:
        lines = asyncio.run(run())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert lines == [b"y" * 100_000] and peak < 600_000, peak
