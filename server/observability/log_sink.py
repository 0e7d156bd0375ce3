"""Log lines leave through a queue and a writer thread, so a slow or broken sink never blocks a request.

The writer reopens a file that was moved or removed (external rotation, like
``WatchedFileHandler``). When the buffer is full, lines are dropped and counted;
a write failure (disk full, closed pipe) is reported once on stderr, and again
only after the sink has recovered and failed anew. While a file cannot be written,
what was not written is kept (up to ``MAX_UNWRITTEN_BYTES``) and written first once it
can be; ``failing`` says so meanwhile (readiness answers 503), ``lost`` counts the lines
given up. A server opens its files with ``open_now`` before it binds, so a folder that
does not exist or a file it may not append to stops it with one line (``SinkOpenError``).
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
import threading
from collections import deque
from typing import BinaryIO, TextIO

WAKE_AT_LINES = 1000  # wake the writer early when this many lines wait
MAX_UNWRITTEN_BYTES = 16 * 1024 * 1024  # kept for a file that cannot be written; beyond, given up and counted


class SinkOpenError(OSError):
    """A log or audit file that cannot be opened for appending; the message says which and why."""


class BackgroundSink:
    """File-like: ``write`` appends to an in-memory buffer; a thread writes batches.

    The request path pays one deque append per line: no lock, no thread wake-up,
    no system call. The writer wakes every ``interval`` seconds (or when the
    buffer grows large) and writes everything buffered with one write and flush.
    """

    def __init__(
        self,
        path: str | None = None,
        stream: TextIO | None = None,
        max_queued: int = 100_000,
        interval: float = 0.05,
        open_now: bool = False,
    ) -> None:
        """``open_now``: open the file here, raising ``SinkOpenError`` if it cannot be appended to."""
        self.path = path
        self._stream = stream if path is None else None
        self._file: BinaryIO | None = None
        self._inode: tuple[int, int] | None = None
        self._buffer: deque[str] = deque()
        self._max_queued = max_queued
        self._interval = interval
        self._wakeup = threading.Event()
        self._done = threading.Condition()
        self._appended = 0  # lines accepted so far
        self._handled = 0  # lines written (or lost to a failing sink) so far
        self._stopping = False
        self.dropped = 0
        self.failures = 0
        self.lost = 0  # lines given up after failed writes
        self._unwritten = b""
        self._failing = False
        if open_now and path is not None:
            try:
                self._target()
            except OSError as exc:
                raise SinkOpenError(exc.errno, exc.strerror or str(exc), path) from None
        self._thread = threading.Thread(target=self._run, name=f"log-sink:{path or 'stream'}", daemon=True)
        self._thread.start()

    # the file-like API structlog's WriteLogger uses
    def write(self, text: str) -> None:
        if len(self._buffer) >= self._max_queued:
            self.dropped += 1
            return
        self._buffer.append(text)
        self._appended += 1
        if len(self._buffer) > WAKE_AT_LINES:
            self._wakeup.set()

    def flush(self) -> None:
        return None

    @property
    def failing(self) -> bool:
        """The last write failed (and nothing has been written since)."""
        return self._failing

    def drain(self, timeout: float = 5.0) -> None:
        """Block until every line accepted so far was handled (tests and shutdown)."""
        target = self._appended
        self._wakeup.set()
        with self._done:
            self._done.wait_for(lambda: self._handled >= target, timeout)

    def close(self) -> None:
        self._stopping = True
        self._wakeup.set()
        self._thread.join(5)
        self._close_file()
        if self._unwritten:
            self._give_up_unwritten()

    def _close_file(self) -> None:
        if self._file is not None:
            with contextlib.suppress(OSError):
                self._file.close()
            self._file = None

    def _give_up_unwritten(self) -> None:
        self.lost += self._unwritten.count(b"\n") or 1
        self._unwritten = b""

    def _target(self) -> BinaryIO:
        assert self.path is not None
        try:
            stat = os.stat(self.path)
            current = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            current = None
        if self._file is None or current != self._inode:
            self._close_file()
            self._file = open(self.path, "ab", buffering=0)
            stat = os.fstat(self._file.fileno())
            self._inode = (stat.st_dev, stat.st_ino)
        return self._file

    def _write_batch(self) -> None:
        lines = []
        while self._buffer:
            lines.append(self._buffer.popleft())
        if not lines:
            if self._unwritten:  # a file that failed: try again without waiting for a new line
                self._write_lines([])
            return
        try:
            self._write_lines(lines)
        finally:
            with self._done:
                self._handled += len(lines)
                self._done.notify_all()

    def _write_lines(self, lines: list[str]) -> None:
        try:
            if self.path is None:
                target = self._stream or sys.stdout
                target.write("".join(lines))
                target.flush()
            else:
                self._write_file("".join(lines).encode("utf-8", "backslashreplace"))
            self._failing = False
        except (OSError, ValueError) as exc:
            self.failures += 1
            if self.path is None:
                self.lost += len(lines)
            if not self._failing:
                self._failing = True
                with contextlib.suppress(Exception):  # stderr itself may be gone
                    if sys.__stderr__ is not None:
                        sys.__stderr__.write(f"skywarden: log sink {self.path or 'stream'} failed: {exc}\n")
            self._close_file()

    def _write_file(self, data: bytes) -> None:
        """Everything not yet written, then ``data``; on a failure, the part not written is kept."""
        pending = memoryview(self._unwritten + data)
        self._unwritten = b""
        try:
            target = self._target()
            while pending:
                written = target.write(pending)
                if not written:
                    raise OSError(errno.EIO, "the file took nothing")
                pending = pending[written:]
        finally:
            if pending:
                self._unwritten = bytes(pending)
                if len(self._unwritten) > MAX_UNWRITTEN_BYTES:
                    self._give_up_unwritten()

    def _run(self) -> None:
        while True:
            self._wakeup.wait(self._interval)
            self._wakeup.clear()
            self._write_batch()
            if self._stopping:
                self._write_batch()
                return
