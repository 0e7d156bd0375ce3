"""Discover tools through the ``skywarden.tools`` entry-point group.

A plugin that fails to import or breaks the contract is logged and skipped; a
name offered by two distributions stops start-up naming both.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib import metadata
from typing import Any

import marshmallow
import structlog

from skywarden.server.plugins.json_schema import json_schema

ENTRY_POINT_GROUP = "skywarden.tools"
TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}$")
SETTINGS_GROUP = re.compile(r"^[a-z][a-z0-9_]{0,39}$")

log = structlog.get_logger("skywarden.tools")


class DuplicateToolError(RuntimeError):
    """Two plugins offer a tool with the same name."""


class InvalidToolError(ValueError):
    """A loaded object does not follow the tool contract."""


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: what its tools share. A ``Plugin`` (API 2) is one; a class-form tool is a
    plugin of its own, or shares one with the tools of its ``settings_group``."""

    name: str  # the settings prefix: ``<name>_<setting>``
    distribution: str
    title: str
    settings: type | None = None  # the settings dataclass (API 2)
    settings_group: str | None = None  # a class-form tool's group: its settings are that raw table
    user_agent: str | None = None
    startup: tuple[Any, ...] = ()
    shutdown: tuple[Any, ...] = ()
    tools: tuple[str, ...] = ()


@dataclass(frozen=True)
class RegisteredTool:
    """A validated tool with everything the hot path needs precomputed."""

    name: str
    title: str
    description: str
    tool: Any
    arguments_schema: marshmallow.Schema
    result_schema: marshmallow.Schema | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    distribution: str
    cost: int = 1
    settings_group: str | None = None  # the tool gets the server's ``<group>_*`` settings
    pure_arguments: bool = False  # its Arguments schema's answer depends on the input alone
    cache_results: bool = False  # its result depends on the arguments and upstream answers alone
    plugin: str = ""  # the name of its PluginInfo

    def describe(self, with_output_schema: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
        }
        if with_output_schema and self.output_schema is not None:
            data["outputSchema"] = self.output_schema
        return data


class ToolRegistry:
    def __init__(self, tools: Iterable[RegisteredTool] = (), plugins: Iterable[PluginInfo] = ()) -> None:
        self._tools: dict[str, RegisteredTool] = {}
        self._plugins: dict[str, PluginInfo] = {}
        for tool in tools:
            self.add(tool)
        for plugin in plugins:
            self.add_plugin(plugin)

    def add_plugin(self, plugin: PluginInfo) -> None:
        existing = self._plugins.get(plugin.name)
        if existing is not None:
            raise DuplicateToolError(
                f"plugin name {plugin.name!r} is used by both {existing.distribution!r} and {plugin.distribution!r}"
            )
        self._plugins[plugin.name] = plugin

    @property
    def plugins(self) -> list[PluginInfo]:
        """Every plugin, by name: those added, and for a class-form tool that names none, a plugin
        of its own (named after its ``settings_group`` when it has one, shared with the group's
        other tools)."""
        found = dict(self._plugins)
        for tool in self:
            if tool.plugin in self._plugins:
                continue
            name = tool.settings_group or _plugin_name(tool.name)
            seen = found.get(name)
            tools = (*seen.tools, tool.name) if seen is not None else (tool.name,)
            found[name] = PluginInfo(name, tool.distribution, name, settings_group=tool.settings_group, tools=tools)
        return [found[name] for name in sorted(found)]

    def add(self, tool: RegisteredTool) -> None:
        existing = self._tools.get(tool.name)
        if existing is not None:
            raise DuplicateToolError(
                f"tool name {tool.name!r} is offered by both {existing.distribution!r} and {tool.distribution!r}"
            )
        self._tools[tool.name] = tool

    def get(self, name: str) -> RegisteredTool | None:
        return self._tools.get(name)

    def names(self) -> list[str]:
        return sorted(self._tools)

    def __iter__(self) -> Iterator[RegisteredTool]:
        return iter(self._tools[name] for name in sorted(self._tools))

    def __len__(self) -> int:
        return len(self._tools)


def _plugin_name(tool_name: str) -> str:
    """A settings-prefix-shaped name for a tool's own plugin."""
    name = re.sub(r"[^a-z0-9_]+", "_", tool_name.lower()).strip("_")[:40]
    return name if name[:1].isalpha() else f"tool_{name}"[:40]


def _schema_instance(value: Any, what: str) -> marshmallow.Schema:
    if isinstance(value, type) and issubclass(value, marshmallow.Schema):
        return value()
    if isinstance(value, marshmallow.Schema):
        return value
    raise InvalidToolError(f"{what} must be a marshmallow Schema class")


def register_tool(obj: Any, distribution: str) -> RegisteredTool:
    """Check ``obj`` against the tool contract and precompute its schemas."""
    name = getattr(obj, "name", None)
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise InvalidToolError(f"name {name!r} must be 1-128 characters of A-Z a-z 0-9 _ - .")
    description = getattr(obj, "description", None)
    if not isinstance(description, str) or not description.strip():
        raise InvalidToolError(f"tool {name!r} needs a non-empty description")
    title = getattr(obj, "title", None) or name
    if not isinstance(title, str):
        raise InvalidToolError(f"tool {name!r}: title must be a string")
    call = getattr(obj, "call", None)
    if not inspect.iscoroutinefunction(call):
        raise InvalidToolError(f"tool {name!r}: call must be an async function")
    arguments = _schema_instance(getattr(obj, "Arguments", None), f"tool {name!r}: Arguments")
    result_cls = getattr(obj, "Result", None)
    result = _schema_instance(result_cls, f"tool {name!r}: Result") if result_cls is not None else None
    cost = getattr(obj, "cost", 1)
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise InvalidToolError(f"tool {name!r}: cost must be a positive integer")
    pure_arguments = getattr(obj, "pure_arguments", False)
    if not isinstance(pure_arguments, bool):
        raise InvalidToolError(f"tool {name!r}: pure_arguments must be True or False")
    cache_results = getattr(obj, "cache_results", False)
    if not isinstance(cache_results, bool):
        raise InvalidToolError(f"tool {name!r}: cache_results must be True or False")
    if cache_results and not pure_arguments:
        raise InvalidToolError(f"tool {name!r}: cache_results needs pure_arguments (results are kept per argument set)")
    settings_group = getattr(obj, "settings_group", None)
    if settings_group is not None and (not isinstance(settings_group, str) or not SETTINGS_GROUP.match(settings_group)):
        raise InvalidToolError(f"tool {name!r}: settings_group must be lower-case letters, digits and _")
    try:
        input_schema = json_schema(arguments)
        output_schema = json_schema(result) if result is not None else None
    except Exception as exc:  # a schema apispec cannot convert is a plugin bug
        raise InvalidToolError(f"tool {name!r}: schema cannot be converted to JSON Schema: {exc}") from None
    return RegisteredTool(
        name=name,
        title=title,
        description=description.strip(),
        tool=obj,
        arguments_schema=arguments,
        result_schema=result,
        input_schema=input_schema,
        output_schema=output_schema,
        distribution=distribution,
        cost=cost,
        settings_group=settings_group,
        pure_arguments=pure_arguments,
        cache_results=cache_results,
    )


def _entry_points(paths: list[str] | None) -> Iterator[tuple[metadata.EntryPoint, str]]:
    """The group's entry points with their distributions. ``entry_points(group=...)`` reads the
    metadata of the distributions that have one, not of every installed distribution."""
    if paths is None:
        selected: Iterable[metadata.EntryPoint] = metadata.entry_points(group=ENTRY_POINT_GROUP)
    else:
        dists = metadata.distributions(path=paths)
        selected = [ep for dist in dists for ep in dist.entry_points.select(group=ENTRY_POINT_GROUP)]
    seen: set[tuple[str, str, str]] = set()
    for ep in selected:
        dist = ep.dist
        name = dist.metadata["Name"] if dist is not None else "unknown"
        marker = (name, ep.name, ep.value)
        if marker in seen:  # the same distribution found twice on sys.path
            continue
        seen.add(marker)
        yield ep, f"{name} {dist.version if dist is not None else ''}".strip()


def discover_tools(paths: list[str] | None = None) -> ToolRegistry:
    """Load every tool from the entry-point group; ``paths`` overrides sys.path."""
    registry = ToolRegistry()
    for ep, dist_name in _entry_points(paths):
        try:
            obj = ep.load()
            tool = register_tool(obj, dist_name)
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
        if tool.name != ep.name:
            log.warning("entry point name differs from tool name", entry_point=ep.name, tool=tool.name)
        registry.add(tool)
    return registry
