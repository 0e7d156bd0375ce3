"""The caches the request path keeps for speed, built together per app, one bound each.

Each is a ``TTLCache`` (the one bounded least-recently-used map, whose entries may expire) and
keeps only what follows from its key and from what the app was built with: its registry, its
tools' settings, its clock. So nothing here outlives what it was made from: a key's scopes and
the protocol revision are part of the keys that depend on them, and other settings or another
registry mean another app with caches of its own. Evicting an entry costs only the work it
saved: none of them holds a refusal, a count or anything else a request is checked against,
so a client that fills one cannot weaken another key's checks.

Memos of pure functions of their own arguments use ``functools.lru_cache`` with a ``maxsize``
instead. The verified-key and access-token caches are security state and stay with what keeps
them honest (``auth/authenticator.py``, ``identity/tokens.py``). docs/architecture.md
("Caches") lists every cache on the request path.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from skywarden.server.settings import Settings
from skywarden.server.ttlcache import TTLCache

VALIDATED_ARGUMENT_SETS = 4096  # validated argument sets of pure_arguments tools
TOOL_LISTS = 1024  # encoded tools/list results: one per (revision, scopes) pair in use


@dataclass(frozen=True)
class RequestCaches:
    upstream: TTLCache  # answers (and derived shapes) per Cache-Control; upstream_cache_entries
    # results of cache_ttl tools for their TTL, of cache_results tools while the upstream answers
    # they used are fresh; neither past the first expiry of those answers; tool_result_cache_entries
    results: TTLCache
    validated: TTLCache  # (tool, arguments) -> validated arguments and their key; VALIDATED_ARGUMENT_SETS
    tool_lists: TTLCache  # (revision, scopes) -> the encoded tools/list result; TOOL_LISTS

    @classmethod
    def from_settings(cls, settings: Settings, clock: Callable[[], float] = time.monotonic) -> RequestCaches:
        """One clock for the upstream answers and the results made of them: a result is kept
        until the earliest expiry of its answers, read on the upstream cache's clock."""
        return cls(
            upstream=TTLCache(settings.upstream_cache_entries, clock),
            results=TTLCache(settings.tool_result_cache_entries, clock),
            validated=validated_arguments(),
            tool_lists=tool_lists(),
        )


def validated_arguments() -> TTLCache:
    return TTLCache(VALIDATED_ARGUMENT_SETS)


def tool_lists() -> TTLCache:
    return TTLCache(TOOL_LISTS)


def no_kept_results() -> TTLCache:
    return TTLCache(0)


class Unkeyable(Exception):
    """A validated value with no stable key (an object an explicit schema made)."""


_ATOMS = frozenset({str, int, bool, type(None)})
MAX_KEY_DEPTH = 64


def kept_result_key(tool: str, arguments: dict[str, Any]) -> tuple[str, bytes] | None:
    """The key a ``cache_ttl`` tool's result is kept under: the tool and a digest of its validated
    arguments, however nested (lists, objects, dataclasses, enums). Each value is written with its
    type, so ``1``, ``1.0`` and ``True`` (equal in Python) and ``0.0`` and ``-0.0`` differ; the
    digest keeps a key small whatever the arguments' size. None when a value has no stable form:
    that call is not kept."""
    try:
        text = repr(_stable(arguments, 0))
    except (Unkeyable, ValueError):  # ValueError: an integer too long to write
        return None
    return tool, hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()


def _stable(value: Any, depth: int) -> Any:
    kind = type(value)
    if kind in _ATOMS:
        return kind.__name__, value
    if depth > MAX_KEY_DEPTH:
        raise Unkeyable
    if kind is float:
        return "float", value.hex()
    if kind is list or kind is tuple:
        return "list", tuple(_stable(item, depth + 1) for item in value)
    if kind is dict:
        if not all(type(k) is str for k in value):
            raise Unkeyable
        return "dict", tuple(sorted((k, _stable(v, depth + 1)) for k, v in value.items()))
    if isinstance(value, enum.Enum):
        return kind.__module__, kind.__qualname__, value.name
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return kind.__module__, kind.__qualname__, _stable(fields, depth + 1)
    raise Unkeyable
