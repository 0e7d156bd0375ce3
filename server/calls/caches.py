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

import time
from collections.abc import Callable
from dataclasses import dataclass

from skywarden.server.settings import Settings
from skywarden.server.ttlcache import TTLCache

VALIDATED_ARGUMENT_SETS = 4096  # validated argument sets of pure_arguments tools
TOOL_LISTS = 1024  # encoded tools/list results: one per (revision, scopes) pair in use


@dataclass(frozen=True)
class RequestCaches:
    upstream: TTLCache  # answers (and derived shapes) per Cache-Control; upstream_cache_entries
    results: TTLCache  # cache_results tools' results until an answer they used expires; tool_result_cache_entries
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
