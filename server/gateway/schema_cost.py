"""What checking a value against an upstream's JSON Schema may cost, at most, before it is done.

An upstream writes its schemas, and some cost far more than their size says. ``$ref`` multiplies:
an ``allOf`` of ten references to an ``allOf`` of ten references to one ``pattern`` checks each
string a hundred times. Some keywords cost far more than others: a pattern whose lazy DFA keeps
missing its cache (``^[ab]*a[ab]{18}$``) takes about 250 ns a byte, a fractional ``multipleOf``
up to 28 µs a number, an ``enum`` of floats 1.3 µs a member, and ``uniqueItems`` over integers
beyond 64 bits compares every pair. jsonschema-rs holds the GIL while it checks, so a check that
is slow holds the whole event loop. ``cost_of`` bounds the work from the schema alone;
``gateway.schema_checks`` checks a value in the server's process only when that bound, for the
value's size, is small.

The bound: the schema is walked with every local ``$ref`` followed where it stands, and each
node adds what its keywords may cost a byte of the value (``NS``: measured here on jsonschema-rs,
with a margin), as if every byte were a value meeting them all; ``uniqueItems`` adds a cost by
the square of the size. Without recursion, each place in that walk checks a value at most once.
Recursion (a ``$ref`` to a schema on the way to it) has no bound here (``None``): jsonschema-rs
goes round a cycle that stays on one value a few times, and an ``allOf`` of F references back
checked a string 1 + F + F² times. Nor have a reference that is not a local JSON pointer,
``$dynamicRef`` / ``$recursiveRef``, ``unevaluatedProperties`` / ``unevaluatedItems`` (they
check again what is beside them), an ``$id`` anywhere below the root, or ``id`` in a draft-04
schema (either moves the base a ``$ref`` resolves against), and references that multiply the
schema past ``WALK_PER_NODE`` times its own size. A check against a schema without a bound
always runs beside the server.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote

from skywarden.server.jsonutil import containers, dumps

# What the walk may visit before the bound is given up: a few times the schema's own nodes and
# references, so that the walk of a listing costs about what compiling it does.
WALK_PER_NODE = 4
WALK_ALLOWANCE = 1000
REFERENCE_BYTES_A_STEP = 64  # a long reference counts as a step every this many bytes

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

# ns a byte of the value may cost, per keyword (the worst seen here, about 2-3 times over).
NS = {
    "keyword": 10,  # any keyword, and each required name: a few ns a value
    "pattern": 300,  # a string's byte, for each pattern (and each patternProperties name)
    "multipleOf": 10_000,  # 28 µs for 1e308 against 1e-300: 4 µs a byte
    "bound": 500,  # minimum and its kin on a float: 1.2 µs a number, 176 ns a byte
    "listed": 300,  # an enum or const with anything but strings, booleans and null: per byte of it
    "format": 500,  # idn-hostname on "ä.ö": about 85 ns a byte
}
UNIQUE_NS_PER_SQUARED_BYTE = 1.0  # uniqueItems over 1,000 integers of 10^30 (32 KB): 318 ms
BOUNDS = frozenset({"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"})


@dataclass(frozen=True)
class Cost:
    per_byte: int  # ns a byte of the value's JSON may cost
    per_squared_byte: float = 0.0  # for uniqueItems: ns by the square of the size
    patterns: int = 0  # patterns a string (or a property's name) may be matched against
    branches: bool = False  # anyOf or oneOf: the first error of a value may cost far more than its check

    def ns(self, size: int) -> float:
        """The most checking a value of ``size`` bytes of JSON may take, in ns."""
        return size * self.per_byte + size * size * self.per_squared_byte


def cost_of(schema: Any) -> Cost | None:
    """The most checking a value against ``schema`` (an upstream's, compiled already) may cost,
    or None when this walk cannot bound it."""
    if not isinstance(schema, dict):
        return None
    # an object below the root that names a base of its own (``$id``, or ``id`` in draft-04),
    # walked or not: a $ref resolves against the base of where it stands
    bases = ("$id", "id") if "draft-04" in str(schema.get("$schema", "")) else ("$id",)
    nodes = 0
    for node in containers(schema):
        nodes += 1
        if node is not schema and isinstance(node, dict) and any(isinstance(node.get(n), str) for n in bases):
            return None
    per_byte = patterns = unique = walked = 0
    branches = False
    most = WALK_ALLOWANCE + WALK_PER_NODE * nodes
    resolved: dict[str, Any] = {}
    own: dict[int, tuple[int, int, int, list[Any]]] = {}  # a node's own cost and subschemas, once
    on_way: set[int] = {id(schema)}  # the schemas a $ref led to, on the way to the node walked
    stack: list[tuple[Any, int | None]] = [(schema, None)]  # (node, or None to leave the $ref target)
    while stack:
        node, leaving = stack.pop()
        if node is None:
            on_way.discard(leaving)
            continue
        walked += 1
        if walked > most:
            return None
        if not isinstance(node, dict):
            per_byte += NS["keyword"]  # true or false
            continue
        known = own.get(id(node))
        if known is None:
            if UNBOUNDED & node.keys():
                return None
            walked += len(node) // REFERENCE_BYTES_A_STEP  # a node of many members is walked once
            known = own[id(node)] = (*_own_cost(node), list(_subschemas(node)))
        node_cost, node_patterns, node_unique, children = known
        per_byte += node_cost
        patterns += node_patterns
        unique += node_unique
        branches = branches or "anyOf" in node or "oneOf" in node
        stack.extend((child, None) for child in children)
        reference = node.get("$ref")
        if isinstance(reference, str):
            walked += len(reference) // REFERENCE_BYTES_A_STEP
            if reference not in resolved:
                resolved[reference] = _resolve(schema, reference)
            target = resolved[reference]
            if target is None or id(target) in on_way:  # recursion: jsonschema-rs goes round a few times
                return None
            on_way.add(id(target))
            stack.append((None, id(target)))  # popped once everything under the target is walked
            stack.append((target, None))
    return Cost(per_byte, unique * UNIQUE_NS_PER_SQUARED_BYTE, patterns, branches)


def _own_cost(node: dict[str, Any]) -> tuple[int, int, int]:
    """What ``node``'s own keywords may cost a byte (ns), its patterns, and its uniqueItems."""
    cost = NS["keyword"] * (max(1, len(node)) + _names(node.get("required")))
    for key in ("dependentRequired", "dependencies"):  # each member is looked up, with its names
        named = node.get(key)
        if isinstance(named, dict):
            cost += NS["keyword"] * sum(1 + _names(names) for names in named.values())
    patterns = int(isinstance(node.get("pattern"), str))
    named = node.get("patternProperties")
    patterns += len(named) if isinstance(named, dict) else 0
    cost += NS["pattern"] * patterns
    if "multipleOf" in node:
        cost += NS["multipleOf"]
    if "format" in node:
        cost += NS["format"]
    cost += NS["bound"] * len(BOUNDS & node.keys())
    for listed in (node.get("enum"), [node["const"]] if "const" in node else None):
        if isinstance(listed, list) and not all(_hashed(value) for value in listed):
            cost += NS["listed"] * len(dumps(listed))
    return cost, patterns, node.get("uniqueItems") is True


def _names(names: Any) -> int:
    return len(names) if isinstance(names, list) else 0


def _hashed(value: Any) -> bool:
    """A member an enum finds by hashing whatever it is compared with: a number is compared
    member by member (99.0 against an enum of 100 integers)."""
    return value is None or isinstance(value, str | bool)


def _subschemas(node: dict[str, Any]) -> Iterator[Any]:
    for key, value in node.items():
        if key in ONE and isinstance(value, dict | bool):
            yield value
        elif key in MANY and isinstance(value, list):
            yield from value
        elif key in NAMED and isinstance(value, dict):
            yield from (item for item in value.values() if isinstance(item, dict | bool))


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
