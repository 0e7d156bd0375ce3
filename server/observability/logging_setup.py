"""structlog, configured once at start-up: JSON lines or a console format.

Application logs and audit events (logger ``skywarden.audit``) go to separate
sinks when ``audit_log_file`` is set, else both to ``log_file`` / stdout. Every
line is written by a background thread (``BackgroundSink``). A server opens its files
before it binds (``open_files``): a log it could not write stops it with one line, and one
that fails later shows in ``sink_states`` (readiness, metrics) until it is written again.
"""

from __future__ import annotations

import json
import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import orjson
import structlog
from structlog.typing import EventDict

from skywarden.server.observability.log_sink import BackgroundSink, SinkOpenError
from skywarden.server.observability.redaction import key_marks, looks_secret, redact_processor, redacting_renderer

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}
AUDIT_LOGGER = "skywarden.audit"
_roles: dict[str, BackgroundSink] = {}  # "log" and "audit_log" (the same sink when they share one)
_audit_logger: Any = structlog.get_logger(AUDIT_LOGGER)


class UtcClock:
    """ISO 8601 UTC with microseconds, like TimeStamper(fmt="iso", utc=True), at a fraction of its
    cost: the part up to the second is formatted once a second. The cached pair is one tuple, so a
    thread that logs at a second's turn never reads one second's number with another's text."""

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")  # no second formatted yet

    def format(self, now: float) -> str:
        fraction, whole = math.modf(now)  # split and rounded as datetime.fromtimestamp does
        second, micro = int(whole), round(fraction * 1_000_000)
        if micro >= 1_000_000:
            second, micro = second + 1, micro - 1_000_000
        cached = self._cached
        if cached[0] != second:
            cached = self._cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        return f"{cached[1]}.{micro:06d}Z"


_clock = UtcClock()


def utc_timestamp(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
    event_dict["timestamp"] = _clock.format(time.time())
    return event_dict


def utc_now_iso() -> str:
    return _clock.format(time.time())


def _add_instance(name: str) -> Any:
    def add_instance(logger: Any, method_name: str, event_dict: EventDict) -> EventDict:
        event_dict["instance"] = name
        return event_dict

    return add_instance


class JsonAuditLogger:
    """The audit logger in JSON format: one event per request, so it skips structlog's general
    machinery and does just what its processor chain would (level, instance, timestamp, JSON,
    redaction when the line looks like it needs it) with the same output."""

    def __init__(self, sink: BackgroundSink, level: int, instance: str) -> None:
        self.sink = sink
        self.enabled = level <= logging.INFO
        self.instance = instance

    def info(self, event: str, **fields: Any) -> None:
        if not self.enabled:
            return
        fields["event"] = event
        fields["level"] = "info"
        if self.instance:
            fields["instance"] = self.instance
        fields["timestamp"] = _clock.format(time.time())
        line = _json_line(fields)
        if looks_secret(line, key_marks(fields.get("key_prefix"))):
            line = _json_line(redact_processor(None, "info", fields))
        self.sink.write(line + "\n")


def _json_line(fields: dict[str, Any]) -> str:
    try:
        return orjson.dumps(fields, default=repr).decode()
    except TypeError:  # what orjson refuses (a lone surrogate): the stdlib writes it escaped
        pass
    try:
        return json.dumps(fields, default=repr)
    except ValueError:  # a value that holds itself: the event is kept, without its fields
        return json.dumps({k: fields.get(k) for k in ("event", "level", "timestamp")} | {"unwritable_fields": True})


# Characters a terminal acts on rather than shows: C0 controls but the line break and the tab
# (a traceback's), DEL and the C1 controls.
_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def printable(render: Any) -> Any:
    """A console renderer whose lines a terminal shows as written: a control character in any
    value (an upstream's stderr line holding ``ESC [2K``, which erases the line on screen) is
    written as its escape, ``\\x1b``. JSON lines escape them already."""

    def processor(logger: Any, method_name: str, event_dict: EventDict) -> Any:
        line = render(logger, method_name, event_dict)
        return _CONTROLS.sub(lambda found: f"\\x{ord(found[0]):02x}", line) if isinstance(line, str) else line

    return processor


def audit_logger() -> Any:
    """The ``skywarden.audit`` logger: its own short processor chain, one per configuration."""
    return _audit_logger


def configure_logging(
    level: str = "info",
    fmt: str = "json",
    stream: TextIO | None = None,
    log_file: str = "",
    audit_log_file: str = "",
    cache_loggers: bool = True,
    instance: str = "",
    open_files: bool = False,
) -> list[BackgroundSink]:
    """``instance`` names this process in every line (several instances write one log stream).

    ``open_files``: open ``log_file`` and ``audit_log_file`` now, raising ``SinkOpenError`` with
    one line (which setting, which file, why, what to do) when one cannot be appended to."""
    close_sinks()
    main = file_sink(log_file, "log_file", open_files) if log_file else BackgroundSink(stream=stream or sys.stdout)
    try:
        audit = file_sink(audit_log_file, "audit_log_file", open_files) if audit_log_file else main
    except SinkOpenError:
        main.close()
        raise
    _roles.update(log=main, audit_log=audit)
    renderer = (
        printable(structlog.dev.ConsoleRenderer(colors=False))
        if fmt == "console"
        else structlog.processors.JSONRenderer(sort_keys=False)
    )
    render = redacting_renderer(renderer)
    named = [_add_instance(instance)] if instance else []
    processors: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        *named,
        utc_timestamp,
        structlog.processors.format_exc_info,
        render,
    ]
    global _audit_logger
    # Audit events carry their request id themselves and never an exception: a shorter chain.
    if fmt == "json":
        _audit_logger = JsonAuditLogger(audit, _LEVELS[level], instance)
    else:
        _audit_logger = structlog.wrap_logger(
            # structlog asks for a TextIO but only writes and flushes: the sink does both
            structlog.WriteLogger(audit),  # type: ignore[arg-type]
            processors=[structlog.processors.add_log_level, *named, utc_timestamp, render],
            wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        )
    structlog.configure(
        processors=processors,
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=main),  # type: ignore[arg-type]  # as above
        cache_logger_on_first_use=cache_loggers,
    )
    _route_stdlib_logging(max(_LEVELS[level], logging.WARNING))
    return open_sinks()


def file_sink(path: str, setting: str, open_now: bool) -> BackgroundSink:
    try:
        return BackgroundSink(path=path, open_now=open_now)
    except SinkOpenError as exc:
        folder = Path(path).parent
        if not folder.is_dir():
            hint = f"create its folder first (install -d -m 0750 {folder})"
        elif Path(path).is_dir():
            hint = "it is a folder: name a file in it"
        else:
            hint = "let this user append to it"
        flag, env = "--" + setting.replace("_", "-"), "SKYWARDEN_" + setting.upper()
        raise SinkOpenError(
            f"cannot append to {path} ({setting}: {exc.strerror}); {hint}, or set {setting} "
            f"({flag} or {env}) to a file this user can append to; nothing is served without its log",
        ) from None


@dataclass(frozen=True)
class SinkState:
    path: str  # "stdout" when not a file
    failing: bool
    failures: int
    lost: int  # lines given up (buffer full, or a failed file's backlog past its bound)


def sink_states() -> dict[str, SinkState]:
    """``log`` and ``audit_log`` as configured (empty before ``configure_logging``)."""
    return {
        role: SinkState(sink.path or "stdout", sink.failing, sink.failures, sink.lost + sink.dropped)
        for role, sink in _roles.items()
    }


class _ToStructlog(logging.Handler):
    """Standard-library records (aiohttp's own loggers, asyncio, libraries) into the structlog
    pipeline, so they are redacted and land in the same sink as everything else."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fields: dict[str, Any] = {"logger": record.name}
            if record.exc_info:
                fields["exc_info"] = record.exc_info
            structlog.get_logger(record.name).log(record.levelno, record.getMessage(), **fields)
        except Exception:
            self.handleError(record)


def _route_stdlib_logging(level: int) -> None:
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _ToStructlog)]:
        root.removeHandler(handler)
    root.addHandler(_ToStructlog())
    root.setLevel(level)


def open_sinks() -> list[BackgroundSink]:
    """Each open sink once (the log and the audit log may share one)."""
    return list({id(sink): sink for sink in _roles.values()}.values())


def close_sinks() -> None:
    sinks = open_sinks()
    _roles.clear()
    for sink in reversed(sinks):
        sink.close()
