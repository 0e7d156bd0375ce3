"""The one place an upstream's JSON Schema is compiled, with what it may hold bounded.

Imported by the server and by the schema worker's process (``schema_worker``), which loads no
more than this and jsonschema-rs.
"""

from __future__ import annotations

from typing import Any

import jsonschema_rs

from skywarden.server.jsonutil import containers

# An upstream writes the regular expressions of its schemas (``pattern``, ``patternProperties``)
# and, for its results, the strings they are matched against. Unbounded, one pattern such as
# ``[a-y]{20000}[0-9]`` held the event loop for seconds per string checked, and a backreference
# backtracks without end. So patterns are compiled within these bounds: a compiled program of at
# most PATTERN_BYTES (a repetition such as ``{2500}`` of a small class still fits), a lazy DFA
# cache large enough for any such program, and at most BACKTRACK_STEPS for the backtracking
# features (lookaround, backreferences), past which a string does not match. A pattern over the
# bound leaves its tool out, saying so. Matching stays linear, but at up to about 250 ns a byte:
# a check that may take long runs beside the server (``schema_checks``).
PATTERN_BYTES = 200_000
PATTERN_DFA_BYTES = 10_000_000
BACKTRACK_STEPS = 10_000
PATTERNS = jsonschema_rs.FancyRegexOptions(
    backtrack_limit=BACKTRACK_STEPS, size_limit=PATTERN_BYTES, dfa_size_limit=PATTERN_DFA_BYTES
)
# A compiled pattern near the bound holds about 110 KB and takes 0.3 ms to make: the patterns of
# one tool (input and output schemas) and of one upstream's listing are bounded in number too.
MAX_TOOL_PATTERNS = 256
MAX_LISTING_PATTERNS = 2000


def pattern_count(*schemas: Any) -> int:
    """The regular expressions in ``schemas``: each ``pattern`` string and ``patternProperties``
    key, at any depth (a value that only looks like one, in an ``enum`` say, is counted too)."""
    count = 0
    for node in containers(list(schemas)):
        if isinstance(node, dict):
            count += isinstance(node.get("pattern"), str)
            named = node.get("patternProperties")
            count += len(named) if isinstance(named, dict) else 0
    return count


class UnusableTool(ValueError):
    """An upstream tool Skywarden cannot offer (its name or schemas); the tool is left out, logged."""


def compile_schema(schema: Any, what: str) -> Any:
    """The one place an upstream's schema is compiled: offline (a remote ``$ref`` is never
    fetched) and with its patterns bounded (``PATTERNS``)."""
    if not isinstance(schema, dict):
        raise UnusableTool(f"its {what} is not a JSON object")
    try:
        return jsonschema_rs.validator_for(schema, offline=True, pattern_options=PATTERNS)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        first = line[:200]
        if line.endswith('is not a "regex"'):  # never compiled again unbounded to tell why: that is the cost
            first = f"{first} (invalid, or over the bound of {PATTERN_BYTES} bytes compiled)"
        raise UnusableTool(f"its {what} is not a JSON Schema Skywarden can check: {first}") from None
