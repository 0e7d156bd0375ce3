"""JSON encoding and a guarded decoder for request bodies."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from typing import Any

import orjson

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_ascii_encoder = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), allow_nan=False)
# A JSON escape of a UTF-16 surrogate (D800-DFFF). Valid pairs are common (emoji); they are
# checked in the parsed value, where a pair has become one character and a lone half has not.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON, with orjson (a tenth of the stdlib encoder's time on our answers).
    Total: what orjson refuses (a lone surrogate from older data, an integer beyond 64 bits, a
    key that is not a string) goes through the stdlib encoder, a lone surrogate as its escape."""
    try:
        return orjson.dumps(value)
    except TypeError:  # orjson.JSONEncodeError is one
        pass
    try:
        return _encoder.encode(value).encode("utf-8")
    except UnicodeEncodeError:
        return _ascii_encoder.encode(value).encode("ascii")


class BodyError(ValueError):
    """The body is not acceptable JSON; ``reason`` is safe to show."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _finite_float(text: str) -> float:
    """A JSON number read as a float, refused when it is too large for one (``1e400``): it would
    be infinity, which JSON cannot write back (orjson refuses these bodies; this reads them)."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:40]} is too large")
    return value


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float)  # one, not one per call


# orjson reads integers beyond 64 bits as floats (a JSON-RPC id 2**70 would come back changed);
# a body with a run of 19 digits anywhere is read by the stdlib decoder instead. Found by mapping
# every digit to "0" and everything else to " " and searching for nineteen "0"s: a seventh of
# the time of a regex scan.
_DIGITS_AS_ZEROS = bytes(0x30 if 0x30 <= b <= 0x39 else 0x20 for b in range(256))
_LONG_NUMBER = b"0" * 19
_UNREAD = object()  # what the fast reader returns for a body the stdlib must read


def loads_guarded(body: bytes, max_depth: int) -> Any:
    """Parse JSON, refusing NaN/Infinity, nesting deeper than ``max_depth`` and strings that are
    not text (lone UTF-16 surrogates, which json accepts but nothing can encode later).

    orjson reads the body when it can (a fifth of the stdlib's time); whatever it refuses is read
    again by the stdlib decoder, so every refusal, and its message, is the stdlib's."""
    value = _fast_loads(body)
    if value is _UNREAD:
        value = _stdlib_loads(body, max_depth)
    # A document with no more brackets than the limit cannot nest deeper: counting them (in C)
    # spares the walk for nearly every body.
    if body.count(b"{") + body.count(b"[") > max_depth and _depth_exceeds(value, max_depth):
        raise BodyError(f"JSON nesting deeper than {max_depth} levels")
    return value


def loads_exact(data: bytes) -> Any:
    """JSON read as request bodies are, at any depth: integers beyond 64 bits keep their value and
    numbers too large for a float are refused. A message an upstream sends is passed on as it
    came, not rounded. Raises ``BodyError`` (a ``ValueError``) saying why not."""
    value = _fast_loads(data)
    return _stdlib_loads(data, 1024) if value is _UNREAD else value  # 1024: about where recursion ends


def _fast_loads(body: bytes) -> Any:
    if _LONG_NUMBER in body.translate(_DIGITS_AS_ZEROS):
        return _UNREAD
    try:
        return orjson.loads(body)  # refuses lone surrogates, NaN and invalid UTF-8 itself
    except orjson.JSONDecodeError:
        return _UNREAD


def _stdlib_loads(body: bytes, max_depth: int) -> Any:
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the body is not valid UTF-8") from None
    try:
        value = _decoder.decode(text)
    except RecursionError:
        raise BodyError(f"JSON nesting deeper than {max_depth} levels") from None
    except ValueError as exc:
        raise BodyError(f"the body is not valid JSON: {exc}") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise BodyError("the body has a string with a lone UTF-16 surrogate (\\ud800-\\udfff), which is not text")
    return value


def has_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def containers(value: Any) -> Iterator[dict[str, Any] | list[Any]]:
    """Every object and array in ``value`` (a JSON document), at any depth, ``value`` first if it
    is one; without recursion, whatever the depth."""
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            yield node
            stack.extend(node)


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if has_surrogate(node):
                return True
        elif isinstance(node, dict):
            stack.extend(node.keys())
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return False


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
