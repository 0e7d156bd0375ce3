"""The test session's log capture: every line the server logs, and every secret no line may hold."""

from __future__ import annotations

import json

# Every key and token the tests create; no log line of the whole run may contain one.
SECRETS: set[str] = set()


class CaptureStream:
    """The log sink of the test session: keeps every line written, and the events of the JSON
    lines, each line parsed once (a test reads the whole log many times over)."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._events: list[dict] = []
        self._parsed = 0  # lines parsed into _events so far

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        return None

    def events(self) -> list[dict]:
        written = len(self.lines)  # the background sink's thread may append while these are parsed
        for line in self.lines[self._parsed : written]:
            try:
                event = json.loads(line)
            except ValueError:
                event = None
            if isinstance(event, dict):
                self._events.append(event)
        self._parsed = written
        return [dict(event) for event in self._events]


CAPTURED = CaptureStream()


def drain_logs() -> list[dict]:
    """Every JSON log line so far, after the background sink wrote what it had; the events are
    the test's own copies."""
    from skywarden.server.observability.logging_setup import open_sinks

    for sink in open_sinks():
        sink.drain()
    return CAPTURED.events()
