"""Plugin discovery for a command: once, before the arguments are read (``serve --help`` lists
the plugins' settings), which is before logging is configured from the settings. What discovery
logs (a plugin skipped) is held and logged once the command has configured logging."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from structlog.testing import capture_logs

from skywarden.server.plugins import registry as plugin_registry
from skywarden.server.plugins.registry import ToolRegistry

Logged = Sequence[Mapping[str, Any]]


def discover_plugins() -> tuple[ToolRegistry, Logged]:
    """The installed plugins, and the events discovery logged."""
    with capture_logs() as logged:
        registry = plugin_registry.discover_tools()  # looked up per call: tests install their own
    return registry, logged


def replay_logged(logged: Iterable[Mapping[str, Any]]) -> None:
    """Log the held events, now to the destination logging was configured with."""
    log = structlog.get_logger("skywarden.tools")
    for event in logged:
        fields = dict(event)
        name, level = fields.pop("event", ""), fields.pop("log_level", "info")
        getattr(log, level, log.info)(name, **fields)
