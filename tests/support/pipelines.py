"""A tool pipeline built by hand, for tests of what happens inside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from skywarden.server.calls.pipeline import ToolPipeline
from skywarden.server.plugins.registry import ToolRegistry
from skywarden.server.plugins.runtime import PluginRuntime


def pipeline_of(
    registry: ToolRegistry, http: Any, settings: Mapping[str, Any] | None = None, **options: Any
) -> ToolPipeline:
    """A pipeline whose tools call ``http`` (a pool: its view that trusts every origin) and get
    ``settings[tool name]`` (default: none)."""
    http = getattr(http, "trusting", http)
    runtimes = {t.name: PluginRuntime(t.name, (settings or {}).get(t.name, {}), http) for t in registry}
    return ToolPipeline(registry, runtimes, **options)
