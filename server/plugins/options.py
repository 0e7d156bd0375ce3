"""Checks of what a tool declares besides its function, shared by both plugin APIs."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from skywarden.server.plugins.model import TOOL_NAME, InvalidToolError

# MCP tool annotations (2025-03-26 on): hints about the tool, shown to clients, never trusted.
ANNOTATION_TYPES: Mapping[str, type] = {
    "title": str,
    "readOnlyHint": bool,
    "destructiveHint": bool,
    "idempotentHint": bool,
    "openWorldHint": bool,
}


def checked_name(name: Any) -> str:
    if not isinstance(name, str) or not TOOL_NAME.match(name):
        raise InvalidToolError(f"name {name!r} must be 1-128 characters of A-Z a-z 0-9 _ - .")
    return name


def checked_description(description: Any, tool: str) -> str:
    if not isinstance(description, str) or not description.strip():
        raise InvalidToolError(f"tool {tool!r} needs a non-empty description (its docstring, or description=)")
    return description.strip()


def checked_title(title: Any, tool: str) -> str:
    if title is None:
        return tool
    if not isinstance(title, str) or not title.strip():
        raise InvalidToolError(f"tool {tool!r}: title must be a non-empty string")
    return title


def checked_cost(cost: Any, tool: str) -> int:
    if not isinstance(cost, int) or isinstance(cost, bool) or cost < 1:
        raise InvalidToolError(f"tool {tool!r}: cost must be a positive integer")
    return cost


def checked_cache_ttl(ttl: Any, tool: str) -> float | None:
    if ttl is None:
        return None
    if not isinstance(ttl, int | float) or isinstance(ttl, bool) or not math.isfinite(ttl) or ttl <= 0:
        raise InvalidToolError(f"tool {tool!r}: cache_ttl must be a positive number of seconds")
    return float(ttl)


def checked_scopes(scopes: Any, tool: str) -> tuple[str, ...]:
    if isinstance(scopes, str) or not isinstance(scopes, list | tuple):
        raise InvalidToolError(f"tool {tool!r}: scopes must be a list of scope names, such as ['acme']")
    for scope in scopes:
        if not isinstance(scope, str) or not TOOL_NAME.match(scope):
            raise InvalidToolError(f"tool {tool!r}: scope {scope!r} must be 1-128 characters of A-Z a-z 0-9 _ - .")
    return tuple(dict.fromkeys(scopes))


def checked_annotations(annotations: Any, tool: str) -> Mapping[str, Any]:
    if not isinstance(annotations, Mapping):
        raise InvalidToolError(f"tool {tool!r}: annotations must be a mapping such as {{'readOnlyHint': True}}")
    for key, value in annotations.items():
        kind = ANNOTATION_TYPES.get(key)
        if kind is None:
            known = ", ".join(ANNOTATION_TYPES)
            raise InvalidToolError(f"tool {tool!r}: unknown annotation {key!r}; the MCP tool annotations are {known}")
        if type(value) is not kind:
            raise InvalidToolError(f"tool {tool!r}: annotation {key!r} must be a {kind.__name__}")
    return MappingProxyType(dict(annotations))
