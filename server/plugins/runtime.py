"""What each plugin has while the server runs: its checked settings, its HTTP client and its state.

The factory builds one ``PluginRuntime`` per plugin (``build_runtimes``); the pipeline gives a
tool's call the runtime of the tool's plugin, and the lifecycle runs the plugin's hooks with it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

from skywarden.server.plugins.http_client import Upstream
from skywarden.server.plugins.registry import ToolRegistry
from skywarden.server.settings import Settings


@dataclass
class PluginRuntime:
    name: str
    settings: Any  # the plugin's settings dataclass instance, or a read-only mapping
    http: Any  # its HttpClient
    state: SimpleNamespace = field(default_factory=SimpleNamespace)


def build_runtimes(registry: ToolRegistry, settings: Settings, http: Upstream) -> dict[str, PluginRuntime]:
    """One runtime per tool name (the tools of one plugin share it)."""
    runtimes = {}
    for plugin in registry.plugins:
        own = settings.group(plugin.settings_group) if plugin.settings_group else {}
        client = http.for_plugin(
            plugin.name, user_agent=plugin.user_agent or "", service=plugin.title, trusted_origins=own.values()
        )
        runtime = PluginRuntime(plugin.name, own, client)
        runtimes.update(dict.fromkeys(plugin.tools, runtime))
    return runtimes
