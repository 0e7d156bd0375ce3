"""What checking a value against an upstream's JSON Schema may cost, at most, before it is done.

An upstream writes its schemas, and some cost far more than their size says. ``$ref`` multiplies:
an ``allOf`` of ten references to an ``allOf`` of ten references to one ``pattern`` checks each
string a hundred times. A pattern whose lazy DFA keeps missing its cache (``^[ab]*a[ab]{18}$``)
takes about 250 ns a byte, where a plain one takes one. jsonschema-rs holds the GIL while it
checks, so a check that is slow holds the whole event loop: 100 KB against that pair of tens took
1.6 s. ``checks_per_value`` bounds the work from the schema alone; ``gateway.schema_checks``
checks a value in the server's process only when that bound, times the value's size, is small.

The bound: the schema is walked with every local ``$ref`` followed where it stands, and each
node counts its keywords and its ``required`` names; the patterns are counted apart. Without
recursion, each place in that walk checks a value at most once, so a value meets at most that
many checks, each pattern at most once; a string's patterns cost by its length. Recursion (a
``$ref`` to a schema on the way to it) has no bound here (``None``): jsonschema-rs goes round a
cycle that stays on one value a few times, and an ``allOf`` of F references back checked a
string 1 + F + F² times. Nor have a reference that is not a local JSON pointer,
``$dynamicRef`` / ``$recursiveRef``, ``unevaluatedProperties`` / ``unevaluatedItems`` (they
check again what is beside them), an ``$id`` below the root (it moves the base references
resolve against), and references that multiply the schema past ``WALK_PER_NODE`` times its own
nodes. A check against a schema without a bound always runs beside the server.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

# Schema nodes visited before the bound is given up: a few times the schema's own nodes, so that
# the walk of a listing costs about what compiling it does, whatever its references multiply.
WALK_PER_NODE = 4
WALK_ALLOWANCE = 1000

# Keywords whose value is a subschema, a list of them, or a map to them (every draft's).
ONE = frozenset({
    "not", "if", "then", "else", "additionalProperties", "propertyNames", "additionalItems", "contains", "items",
})  # fmt: skip
MANY = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})
NAMED = frozenset({"properties", "patternProperties", "dependentSchemas", "dependencies"})
# References resolved at run time; and the unevaluated keywords, which check the value's members
# against the schemas beside them again to learn what they evaluated (an ``anyOf`` of three
# matched a string four times, not once).
UNBOUNDED = frozenset({"$dynamicRef", "$recursiveRef", "unevaluatedProperties", "unevaluatedItems"})

# What one check may cost, in ns, from the timings of jsonschema-rs here (see performance.md):
# a keyword on a value about 10; a pattern on a string at most about 250 a byte (300 with margin).
NS_PER_CHECK = 10
NS_PER_PATTERN_BYTE = 300


@dataclass(frozen=True)
class Cost:
    checks: int  # keyword checks a value may meet, ``required`` names included
    patterns: int  # patterns a string (or a property's name) may be matched against

    def ns_per_byte(self) -> int:
        """The most a byte of the value's JSON may cost: each byte may be a value of its own
        (meeting every check), or a string's byte (meeting every pattern)."""
        return self.checks * NS_PER_CHECK + self.patterns * NS_PER_PATTERN_BYTE


def checks_per_value(schema: Any) -> Cost | None:
    """The most checks a value meets against ``schema`` (an upstream's, compiled already), or
    None when this walk cannot bound it."""
    if not isinstance(schema, dict):
        return None
    checks = patterns = walked = 0
    most = WALK_ALLOWANCE + WALK_PER_NODE * _nodes(schema)
    stack: list[tuple[Any, tuple[int, ...]]] = [(schema, (id(schema),))]
    while stack:
        node, followed = stack.pop()
        walked += 1
        if walked > most:
            return None
        if not isinstance(node, dict):
            checks += 1  # true or false: one check
            continue
        if (node is not schema and "$id" in node) or UNBOUNDED & node.keys():
            return None
        checks += max(1, len(node))
        required = node.get("required")
        if isinstance(required, list):
            checks += len(required)
        patterns += isinstance(node.get("pattern"), str)
        for key, value in node.items():
            if key in ONE and isinstance(value, dict | bool):
                stack.append((value, followed))
            elif key in MANY and isinstance(value, list):
                stack.extend((item, followed) for item in value)
            elif key in NAMED and isinstance(value, dict):
                if key == "patternProperties":
                    patterns += len(value)
                stack.extend((item, followed) for item in value.values() if isinstance(item, dict | bool))
        reference = node.get("$ref")
        if isinstance(reference, str):
            target = _resolve(schema, reference)
            if target is None or id(target) in followed:  # recursion: jsonschema-rs goes round a few times
                return None
            stack.append((target, (*followed, id(target))))
    return Cost(checks, patterns)


def _nodes(schema: Any) -> int:
    """The objects and arrays in ``schema``, references not followed."""
    count, stack = 0, [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        else:
            continue
        count += 1
    return count


def _resolve(root: dict[str, Any], reference: str) -> Any:
    """The subschema a local JSON pointer (``#``, ``#/$defs/a``) names in ``root``, or None."""
    if reference == "#":
        return root
    if not reference.startswith("#/"):
        return None
    node: Any = root
    for part in reference[2:].split("/"):
        part = unquote(part).replace("~1", "/").replace("~0", "~")
        if isinstance(node, dict) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return None
    return node if isinstance(node, dict | bool) else None
