"""What the registry holds: a loaded plugin (``PluginInfo``) and a tool ready for the hot path
(``RegisteredTool``), and the two ways loading refuses."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import marshmallow

from skywarden.server.principal import ALL_TOOLS

if TYPE_CHECKING:
    from skywarden.server.plugins.results import ResultShape

TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}\Z")
PLUGIN_NAME = re.compile(r"^[a-z][a-z0-9_]{0,39}\Z")  # a plugin's name is its settings prefix
SETTINGS_GROUP = PLUGIN_NAME

# A tool's call as the pipeline makes it: (validated arguments, context) -> the tool's awaitable.
# The arguments dict is the call's own: an adapter may add to it.
Invoke = Callable[[dict[str, Any], Any], Awaitable[Any]]


class DuplicateToolError(RuntimeError):
    """Two plugins offer a tool (or a plugin) with the same name."""


class InvalidToolError(ValueError):
    """A loaded object does not follow the tool contract."""


class ArgumentsRejected(Exception):
    """Raised by a tool whose arguments are checked during its call (an upstream's, whose check
    may be slow, in the schema worker): ``errors`` by field, refused as the pipeline refuses
    arguments its schema did not take."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("invalid arguments")
        self.errors = errors


@dataclass(frozen=True)
class PluginInfo:
    """A loaded plugin: what its tools share. A ``Plugin`` (API 2) is one; a standalone ``@tool``
    is a plugin of its own; a class-form tool is a plugin of its own, or shares one with the tools
    of its ``settings_group``."""

    name: str  # the settings prefix: ``<name>_<setting>``
    distribution: str
    title: str
    settings: type | None = None  # the settings dataclass (API 2)
    settings_group: str | None = None  # a class-form tool's group: its settings are that raw table
    user_agent: str | None = None
    startup: tuple[Any, ...] = ()
    shutdown: tuple[Any, ...] = ()
    tools: tuple[str, ...] = ()
    # What declared it (the ``Plugin`` or standalone ``ToolSpec``; None for class-form tools): two
    # declarations of one name are two plugins, however alike.
    source: Any = field(default=None, compare=False, repr=False)


_NO_ANNOTATIONS: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class RegisteredTool:
    """A validated tool with everything the hot path needs precomputed: its call (``invoke``),
    how its return value becomes a result (``shape``), who may call it (``grants``)."""

    name: str
    title: str
    description: str
    tool: Any  # what was loaded: a class-form object or a ``ToolSpec``
    arguments_schema: marshmallow.Schema
    result_schema: marshmallow.Schema | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None
    distribution: str
    cost: int = 1
    settings_group: str | None = None  # the tool gets the server's ``<group>_*`` settings
    pure_arguments: bool = False  # its Arguments schema's answer depends on the input alone
    cache_results: bool = False  # its result depends on the arguments and upstream answers alone
    plugin: str = ""  # the name of its PluginInfo (API 2; class-form tools: given by the registry)
    scopes: tuple[str, ...] = ()  # scope names that grant it besides its name and ``*``
    cache_ttl: float | None = None  # seconds a successful result answers identical arguments
    annotations: Mapping[str, Any] = field(default_factory=lambda: _NO_ANNOTATIONS)  # MCP tool annotations
    owner: PluginInfo | None = None  # API 2: its plugin as declared (the registry fills in ``tools``)
    upstream: str | None = None  # the upstream MCP server it is a tool of (the gateway's), for the audit event
    invoke: Invoke = field(kw_only=True)  # the call, arguments as keywords and the Context injected
    shape: ResultShape = field(kw_only=True)  # the return value -> a ToolResult, checked
    grants: frozenset[str] = field(init=False)  # any of these in a caller's scopes allows the tool

    def __post_init__(self) -> None:
        object.__setattr__(self, "grants", frozenset({ALL_TOOLS, self.name, *self.scopes}))

    def describe(self, with_output_schema: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "title": self.title,
            "description": self.description,
            "inputSchema": self.input_schema,
        }
        if with_output_schema and self.output_schema is not None:
            data["outputSchema"] = self.output_schema
        if self.annotations:
            data["annotations"] = dict(self.annotations)
        return data


def plugin_name_of(tool_name: str) -> str:
    """A settings-prefix-shaped name for a tool's own plugin."""
    name = re.sub(r"[^a-z0-9_]+", "_", tool_name.lower()).strip("_")[:40]
    return name if name[:1].isalpha() else f"tool_{name}"[:40]
