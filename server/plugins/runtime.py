"""What each plugin has while the server runs: its checked settings, its HTTP client and its state.

The factory builds one ``PluginRuntime`` per plugin (``build_runtimes``); the pipeline gives a
tool's call the runtime of the tool's plugin, and the lifecycle runs the plugin's hooks with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from skywarden.server.plugins.registry import ToolRegistry
from skywarden.server.settings import Settings


@dataclass
class PluginRuntime:
    name: str
    settings: Any  # the plugin's settings dataclass instance, or a read-only mapping
    http: Any  # its HttpClient
    state: SimpleNamespace = field(default_factory=SimpleNamespace)


def build_runtimes(registry: ToolRegistry, settings: Settings, http: Any) -> dict[str, PluginRuntime]:
    """One runtime per tool name (tools of one plugin share it)."""
    return {
        t.name: PluginRuntime(t.name, settings.group(t.settings_group) if t.settings_group else {}, http)
        for t in registry
    }
