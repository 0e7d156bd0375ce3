"""JSON encoding and a guarded decoder for request bodies."""

from __future__ import annotations

import json
from typing import Any

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> bytes:
    return _encoder.encode(value).encode("utf-8")


class BodyError(ValueError):
    """The body is not acceptable JSON; ``reason`` is safe to show."""

    def __init__(self, reason: str, kind: str = "invalid") -> None:
        super().__init__(reason)
        self.reason = reason
        self.kind = kind  # "invalid" or "depth"


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def loads_guarded(body: bytes, max_depth: int) -> Any:
    """Parse JSON, refusing NaN/Infinity and nesting deeper than ``max_depth``."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not valid UTF-8") from None
    try:
        value = json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise BodyError(f"JSON nesting deeper than {max_depth} levels", kind="depth") from None
    except ValueError as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    if _depth_exceeds(value, max_depth):
        raise BodyError(f"JSON nesting deeper than {max_depth} levels", kind="depth")
    return value


def _depth_exceeds(value: Any, max_depth: int) -> bool:
    if not isinstance(value, (dict, list)):
        return False
    stack = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > max_depth:
            return True
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False
