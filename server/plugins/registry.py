"""The tool registry, and loading tools into it: through the ``skywarden.tools`` entry-point
group (``discover_tools``) or from objects in hand (``registry_of``, for ``running_app``).

An entry point (or an object) may name a ``Plugin`` (all its tools), a ``@tool`` (a plugin of
its own) or a class-form tool object. A plugin that fails to import or breaks the contract is
logged and skipped; a tool or plugin name offered twice stops start-up naming both.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import structlog

from skywarden.server.plugins.class_form import register_class_tool
from skywarden.server.plugins.declared import register_plugin, register_spec
from skywarden.server.plugins.discovery import ENTRY_POINT_GROUP, entry_points
from skywarden.server.plugins.model import (
    PLUGIN_NAME,
    SETTINGS_GROUP,
    TOOL_NAME,
    DuplicateToolError,
    InvalidToolError,
    PluginInfo,
    RegisteredTool,
    plugin_name_of,
)
from skywarden.tools.declare import Plugin, ToolSpec

__all__ = [
    "ENTRY_POINT_GROUP",
    "PLUGIN_NAME",
    "SETTINGS_GROUP",
    "TOOL_NAME",
    "DuplicateToolError",
    "InvalidToolError",
    "PluginInfo",
    "RegisteredTool",
    "ToolRegistry",
    "discover_tools",
    "load_object",
    "register_tool",
    "registry_of",
]

log = structlog.get_logger("skywarden.tools")


class ToolRegistry:
    """The tools by name, and the plugins they belong to by name."""

    def __init__(self, tools: Iterable[RegisteredTool] = (), plugins: Iterable[PluginInfo] = ()) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._plugins: dict[str, PluginInfo] = {}
        for plugin in plugins:  # first: a tool that names one (``RegisteredTool.plugin``) joins it
            self.add_plugin(plugin)
        for tool in tools:
            self.add(tool)

    def add_plugin(self, plugin: PluginInfo) -> None:
        existing = self._plugins.get(plugin.name)
        if existing is not None:
            raise _duplicate_plugin(plugin.name, existing, plugin)
        self._plugins[plugin.name] = plugin

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin, by name, each with the names of its tools here: an API-2 tool's own, and
        for a class-form tool a plugin of its own (named after its ``settings_group`` when it has
        one, shared with the group's other tools)."""
        return [self._plugins[name] for name in sorted(self._plugins)]

    def add(self, tool: RegisteredTool) -> None:
        existing = self._tools.get(tool.name)
        if existing is not None:
            raise DuplicateToolError(
                f"tool name {tool.name!r} is offered by both {existing.distribution!r} and {tool.distribution!r}"
            )
        plugin = self._plugin_for(tool)
        self._check_scope_names(tool, plugin.name)
        self._tools[tool.name] = tool
        self._plugins[plugin.name] = plugin

    def _check_scope_names(self, tool: RegisteredTool, plugin: str) -> None:
        """A scope name is no other plugin's tool name: a key scoped to that tool would get this
        plugin's tools too."""
        for other in self._tools.values():
            if other.plugin == plugin or (other.owner is None and tool.owner is None):
                continue
            clash = other.name if other.name in tool.scopes else tool.name if tool.name in other.scopes else None
            if clash is not None:
                raise DuplicateToolError(
                    f"{clash!r} is both a tool of {other.distribution!r} and a scope name of {tool.distribution!r}"
                    if clash == other.name
                    else f"{clash!r} is both a tool of {tool.distribution!r} and a scope name of {other.distribution!r}"
                )
            shared = sorted(set(tool.scopes) & set(other.scopes))
            # a key scoped for one distribution's tools would reach another's
            if shared and _distribution_name(other) != _distribution_name(tool):
                raise DuplicateToolError(
                    f"scope name {shared[0]!r} is declared by both {other.distribution!r} and {tool.distribution!r}"
                )

    def _plugin_for(self, tool: RegisteredTool) -> PluginInfo:
        """The plugin ``tool`` joins (or starts), with the tool among its tools."""
        if tool.owner is not None:
            declared = tool.owner
        elif tool.plugin in self._plugins:  # a tool given with the plugin it belongs to
            return _with_tool(self._plugins[tool.plugin], tool.name)
        else:
            name = tool.settings_group or plugin_name_of(tool.name)
            declared = PluginInfo(name, tool.distribution, name, settings_group=tool.settings_group)
        existing = self._plugins.get(declared.name)
        if existing is None:
            return _with_tool(declared, tool.name)
        same = (
            existing.source is declared.source
            if declared.source is not None
            else existing.source is None and existing.settings_group == declared.settings_group
        )
        if not same:
            raise _duplicate_plugin(declared.name, existing, declared)
        return _with_tool(existing, tool.name)

    def replace_plugin(self, plugin: PluginInfo, tools: Iterable[RegisteredTool]) -> list[str]:
        """The tools of ``plugin`` (an upstream's, listed anew) become ``tools``. A tool whose name
        another plugin's tool has is left out: its name is in the answer."""
        for name in self._plugins.get(plugin.name, plugin).tools:
            self._tools.pop(name, None)
        self._plugins[plugin.name] = plugin
        clashes = []
        for tool in tools:
            if tool.name in self._tools:
                clashes.append(tool.name)
                continue
            self._tools[tool.name] = tool
            self._plugins[plugin.name] = _with_tool(self._plugins[plugin.name], tool.name)
        return clashes

    def remove_plugin(self, name: str) -> None:
        """A removed upstream: its tools and its plugin are gone."""
        plugin = self._plugins.pop(name, None)
        for tool in plugin.tools if plugin is not None else ():
            self._tools.pop(tool, None)

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def grantable_names(self, upstreams: bool = True) -> list[str]:
        """What a key's (or a token's) scopes may name: the tools' names and the scope names
        their declarations use (``scopes=["acme"]``); with ``upstreams`` false, only the
        server's own tools' (its plugins')."""
        tools = [tool for tool in self._tools.values() if upstreams or tool.upstream is None]
        return sorted({name for tool in tools for name in (tool.name, *tool.scopes)})

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(self._tools[name] for name in sorted(self._tools))

    def __len__(self) -> int:
        return len(self._tools)


def _distribution_name(tool: RegisteredTool) -> str:
    """The distribution's name, without its version: the plugins of one distribution may share a scope."""
    return tool.distribution.partition(" ")[0]


def _with_tool(plugin: PluginInfo, tool: str) -> PluginInfo:
    if tool in plugin.tools:
        return plugin
    return PluginInfo(
        plugin.name,
        plugin.distribution,
        plugin.title,
        settings=plugin.settings,
        settings_group=plugin.settings_group,
        user_agent=plugin.user_agent,
        startup=plugin.startup,
        shutdown=plugin.shutdown,
        tools=(*plugin.tools, tool),
        source=plugin.source,
    )


def _duplicate_plugin(name: str, existing: PluginInfo, other: PluginInfo) -> DuplicateToolError:
    return DuplicateToolError(
        f"plugin name {name!r} is used by both {existing.distribution!r} and {other.distribution!r}"
        + (" (two declarations in one distribution)" if existing.distribution == other.distribution else "")
    )


def load_object(obj: Any, distribution: str) -> list[RegisteredTool]:
    """The tools an entry point (or ``running_app(tools=[...])``) names: a ``Plugin``'s, a
    ``@tool``'s (a plugin of its own, or one tool of its ``Plugin``), or a class-form tool's."""
    if isinstance(obj, Plugin):
        return register_plugin(obj, distribution)
    if isinstance(obj, ToolSpec):
        return [register_spec(obj, distribution)]
    return [register_class_tool(obj, distribution)]


def register_tool(obj: Any, distribution: str) -> RegisteredTool:
    """One tool: a ``@tool`` or a class-form object."""
    if isinstance(obj, Plugin):
        raise InvalidToolError(f"plugin {obj.name!r} is not one tool: load it with load_object or registry_of")
    [tool] = load_object(obj, distribution)
    return tool


def registry_of(objects: Iterable[Any], distribution: str) -> ToolRegistry:
    """A registry of tools in hand (plugins, ``@tool`` functions, class-form objects); the tools
    of one ``Plugin`` share its settings, client and hooks whichever of them are given."""
    registry = ToolRegistry()
    for obj in objects:
        for tool in load_object(obj, distribution):
            registry.add(tool)
    return registry


def discover_tools(paths: list[str] | None = None) -> ToolRegistry:
    """Load every tool from the entry-point group; ``paths`` overrides sys.path."""
    registry = ToolRegistry()
    for ep, dist_name in entry_points(paths):
        try:
            obj = ep.load()
            tools = load_object(obj, dist_name)
        except DuplicateToolError:
            raise
        except Exception as exc:
            log.error(
                "plugin skipped",
                entry_point=f"{ep.name} = {ep.value}",
                distribution=dist_name,
                error=f"{type(exc).__name__}: {exc}",
            )
            continue
        declared = obj.name if isinstance(obj, Plugin) else tools[0].name
        if declared != ep.name:
            log.warning("entry point name differs from what it names", entry_point=ep.name, declared=declared)
        for tool in tools:
            registry.add(tool)
    return registry
