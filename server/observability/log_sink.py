"""Log lines leave through a queue and a writer thread, so a slow or broken sink never blocks a request.

The writer reopens a file that was moved or removed (external rotation, like
``WatchedFileHandler``). When the buffer is full, lines are dropped and counted;
a write failure (disk full, closed pipe) is reported once on stderr, and again
only after the sink has recovered and failed anew.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from typing import TextIO

WAKE_AT_LINES = 1000  # wake the writer early when this many lines wait


class BackgroundSink:
    """File-like: ``write`` appends to an in-memory buffer; a thread writes batches.

    The request path pays one deque append per line: no lock, no thread wake-up,
    no system call. The writer wakes every ``interval`` seconds (or when the
    buffer grows large) and writes everything buffered with one write and flush.
    """

    def __init__(
        self, path: str | None = None, stream: TextIO | None = None, max_queued: int = 100_000, interval: float = 0.05
    ) -> None:
        self.path = path
        self._stream = stream if path is None else None
        self._file: TextIO | None = None
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
        self._failing = False
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
        if self._file is not None:
            self._file.close()

    def _target(self) -> TextIO:
        if self.path is None:
            return self._stream or sys.stdout
        try:
            stat = os.stat(self.path)
            current = (stat.st_dev, stat.st_ino)
        except FileNotFoundError:
            current = None
        if self._file is None or current != self._inode:
            if self._file is not None:
                self._file.close()
            self._file = open(self.path, "a", encoding="utf-8")
            stat = os.fstat(self._file.fileno())
            self._inode = (stat.st_dev, stat.st_ino)
        return self._file

    def _write_batch(self) -> None:
        lines = []
        while self._buffer:
            lines.append(self._buffer.popleft())
        if not lines:
            return
        try:
            self._write_lines(lines)
        finally:
            with self._done:
                self._handled += len(lines)
                self._done.notify_all()

    def _write_lines(self, lines: list[str]) -> None:
        try:
            target = self._target()
            target.write("".join(lines))
            target.flush()
            self._failing = False
        except (OSError, ValueError) as exc:
            self.failures += 1
            if not self._failing:
                self._failing = True
                with contextlib.suppress(Exception):  # stderr itself may be gone
                    sys.__stderr__.write(f"skywarden: log sink {self.path or 'stream'} failed: {exc}\n")
            self._file = None

    def _run(self) -> None:
        while True:
            self._wakeup.wait(self._interval)
            self._wakeup.clear()
            self._write_batch()
            if self._stopping:
                self._write_batch()
                return
