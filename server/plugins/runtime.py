"""What each plugin has while the server runs: its checked settings, its HTTP client and its state.

The factory builds one ``PluginRuntime`` per plugin (``plugin_runtimes``); the pipeline gives a
tool's call the runtime of the tool's plugin (``tool_runtimes``), and the lifecycle runs the
plugin's hooks with it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType, SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

from skywarden.server import __version__
from skywarden.server.plugins.http_client import Upstream
from skywarden.server.plugins.registry import PluginInfo, ToolRegistry
from skywarden.server.plugins.settings import secret_texts, settings_instance, url_values
from skywarden.server.settings import Settings


@dataclass
class PluginRuntime:
    name: str
    settings: Any  # the plugin's settings dataclass instance, or a read-only mapping
    http: Any  # its HttpClient
    state: SimpleNamespace = field(default_factory=SimpleNamespace)
    secrets: tuple[str, ...] = ()  # its Secret settings' values, never shown in a tool's error text

    def scrub(self, text: str) -> str:
        """``text`` (an error a caller will read, perhaps quoting an upstream that echoed a key)
        with every value of the plugin's secrets replaced by ``***``."""
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return text


def default_user_agent(distribution: str) -> str:
    """``<distribution>/<version> skywarden/<version>`` (PluginInfo.distribution is "name version")."""
    name, _, version = distribution.partition(" ")
    own = f"skywarden/{__version__}"
    if (
        name != "skywarden"
        and re.fullmatch(r"[A-Za-z0-9._-]+", name)
        and re.fullmatch(r"[0-9][A-Za-z0-9.+!-]*", version)
    ):
        return f"{name}/{version} {own}"
    return own


def _own_settings(plugin: PluginInfo, settings: Settings) -> Any:
    """API 2: its settings dataclass, checked; class form: its group's table; else nothing."""
    if plugin.settings is not None:
        return settings_instance(plugin, settings)
    if plugin.settings_group:
        return settings.group(plugin.settings_group)
    return MappingProxyType({})


def _declared_user_agent(own: Any) -> str:
    value = own.get("user_agent") if isinstance(own, Mapping) else getattr(own, "user_agent", None)
    return value if isinstance(value, str) else ""


def _trusted_origins(own: Any) -> list[str]:
    """The URLs its operator configured: its ``Url`` settings, or a group's http(s) values."""
    if not isinstance(own, Mapping):
        return url_values(own)
    return [v for v in own.values() if isinstance(v, str) and urlsplit(v).scheme in ("http", "https")]


def plugin_runtimes(registry: ToolRegistry, settings: Settings, http: Upstream) -> dict[str, PluginRuntime]:
    """One runtime per plugin, by plugin name; SettingsError for a plugin setting missing or invalid."""
    runtimes = {}
    for plugin in registry.plugins:
        own = _own_settings(plugin, settings)
        user_agent = _declared_user_agent(own) or plugin.user_agent or default_user_agent(plugin.distribution)
        client = http.for_plugin(
            plugin.name, user_agent=user_agent, service=plugin.title, trusted_origins=_trusted_origins(own)
        )
        runtimes[plugin.name] = PluginRuntime(plugin.name, own, client, secrets=tuple(secret_texts(own)))
    return runtimes


def tool_runtimes(registry: ToolRegistry, runtimes: Mapping[str, PluginRuntime]) -> dict[str, PluginRuntime]:
    """By tool name: each tool's plugin's runtime (the tools of one plugin share it)."""
    return {tool: runtimes[plugin.name] for plugin in registry.plugins for tool in plugin.tools}


def build_runtimes(registry: ToolRegistry, settings: Settings, http: Upstream) -> dict[str, PluginRuntime]:
    """One runtime per tool name (the tools of one plugin share it)."""
    return tool_runtimes(registry, plugin_runtimes(registry, settings, http))
