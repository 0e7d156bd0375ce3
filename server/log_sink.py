"""Log lines leave through a queue and a writer thread, so a slow or broken sink never blocks a request.

The writer reopens a file that was moved or removed (external rotation, like
``WatchedFileHandler``). When the queue is full, lines are dropped and counted;
a write failure (disk full, closed pipe) is reported once on stderr, and again
only after the sink has recovered and failed anew.
"""

from __future__ import annotations

import contextlib
import os
import queue
import sys
import threading
from typing import TextIO

_STOP = object()


class BackgroundSink:
    def __init__(self, path: str | None = None, stream: TextIO | None = None, max_queued: int = 100_000) -> None:
        self.path = path
        self._stream = stream if path is None else None
        self._file: TextIO | None = None
        self._inode: tuple[int, int] | None = None
        self._queue: queue.Queue = queue.Queue(max_queued)
        self.dropped = 0
        self.failures = 0
        self._failing = False
        self._thread = threading.Thread(target=self._run, name=f"log-sink:{path or 'stream'}", daemon=True)
        self._thread.start()

    # the file-like API structlog's WriteLogger uses
    def write(self, text: str) -> None:
        try:
            self._queue.put_nowait(text)
        except queue.Full:
            self.dropped += 1

    def flush(self) -> None:
        return None

    def drain(self, timeout: float = 5.0) -> None:
        """Block until every queued line was handled (tests and shutdown)."""
        done = threading.Event()
        self._queue.put(done)
        done.wait(timeout)

    def close(self) -> None:
        self._queue.put(_STOP)
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

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, threading.Event):
                item.set()
                continue
            try:
                target = self._target()
                target.write(item)
                target.flush()
                self._failing = False
            except (OSError, ValueError) as exc:
                self.failures += 1
                if not self._failing:
                    self._failing = True
                    with contextlib.suppress(Exception):  # stderr itself may be gone
                        sys.__stderr__.write(f"skywarden: log sink {self.path or 'stream'} failed: {exc}\n")
                self._file = None
