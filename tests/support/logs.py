"""The test session's log capture: every line the server logs, and every secret no line may hold."""

from __future__ import annotations

import json

# Every key and token the tests create; no log line of the whole run may contain one.
SECRETS: set[str] = set()


class CaptureStream:
    """The log sink of the test session: keeps every line written."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self) -> None:
        return None


CAPTURED = CaptureStream()


def drain_logs() -> list[dict]:
    """Every JSON log line so far, after the background sink wrote what it had."""
    from skywarden.server.observability.logging_setup import open_sinks

    for sink in open_sinks():
        sink.drain()
    events = []
    for line in CAPTURED.lines:
        try:
            events.append(json.loads(line))
        except ValueError:
            continue
    return events
