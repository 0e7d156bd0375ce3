"""Checks against an upstream's schemas never hold the event loop for long: a bound from the
schema alone (``schema_cost``) says which are quick, and the rest run in the schema worker's
process, which a check past its time limit does not outlast (``schema_worker``). The worker
gives the same first error the server would."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import jsonschema_rs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skywarden.server.gateway import schema_worker
from skywarden.server.gateway.schema_checks import INLINE_NS, UpstreamSchema
from skywarden.server.gateway.schema_compile import compile_schema
from skywarden.server.gateway.schema_cost import NS, UNIQUE_NS_PER_SQUARED_BYTE, Cost, cost_of
from skywarden.server.gateway.schema_worker import CheckFailed, SchemaWorker
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.schema_errors import error_fields, first_error
from tests.support.raw_upstream import HEAVY_STRING, random_ab

ROOT = Path(__file__).resolve().parent.parent
WORKER = pytest.mark.slow  # starts the schema worker's process
SLOW = {"type": "object", "properties": {"s": HEAVY_STRING}}  # 40 slow patterns over one string


def fan_out(times: int) -> dict[str, Any]:
    """A string checked against one pattern ``times`` squared times, through two levels of $ref."""
    return {
        "$defs": {
            "leaf": {"type": "string", "pattern": "^x"},
            "mid": {"allOf": [{"$ref": "#/$defs/leaf"}] * times},
        },
        "type": "object",
        "properties": {"s": {"allOf": [{"$ref": "#/$defs/mid"}] * times}},
    }


# --- the bound --------------------------------------------------------------------------------


K, P = NS["keyword"], NS["pattern"]


def test_a_plain_schema_costs_its_keywords_required_names_and_patterns():
    schema = {
        "type": "object",
        "properties": {"a": {"type": "integer"}, "b": {"type": "string", "pattern": "^b"}},
        "patternProperties": {"^x": {}, "^y": True},
        "required": ["a", "b"],
    }
    # the root's 4 keywords, 2 names and 2 named patterns; a's 1; b's 2 and its pattern; {} and true
    assert cost_of(schema) == Cost(per_byte=(4 + 2) * K + 2 * P + K + 2 * K + P + K + K, patterns=3)
    assert Cost(per_byte=7, per_squared_byte=0.5).ns(10) == 70 + 50


def test_references_cost_what_they_point_at_as_often_as_they_are_followed():
    # the root's 3 keywords, s's allOf, and 3 times: a $ref, mid's allOf, and 3 times a $ref and leaf's 2
    leaf = K + 2 * K + P
    assert cost_of(fan_out(3)) == Cost(per_byte=3 * K + K + 3 * (K + K + 3 * leaf), patterns=9)
    assert cost_of(fan_out(10)).patterns == 100
    two_ways = {"$defs": {"a": {"pattern": "^a"}}, "anyOf": [{"$ref": "#/$defs/a"}], "not": {"$ref": "#/$defs/a"}}
    assert cost_of(two_ways) == Cost(per_byte=3 * K + 2 * (K + K + P), patterns=2, branches=True)


@pytest.mark.parametrize(
    ("keyword", "extra"),
    [
        ({"multipleOf": 0.01}, NS["multipleOf"]),  # 28 µs a number at worst
        ({"minimum": 0.5, "exclusiveMaximum": 9.5}, 2 * NS["bound"]),
        ({"enum": [0.5, 1.5]}, NS["listed"] * len(b"[0.5,1.5]")),  # floats are compared one by one
        ({"const": {"a": [1]}}, NS["listed"] * len(b'[{"a":[1]}]')),
        ({"enum": ["a", True, None]}, 0),  # found by hashing
        ({"enum": [1, 2]}, NS["listed"] * len(b"[1,2]")),  # 99.0 against 100 integers: one by one
        ({"const": 5}, NS["listed"] * len(b"[5]")),
        ({"format": "idn-hostname"}, NS["format"]),
        ({"dependentRequired": {"a": ["b", "c"], "d": []}}, K * (1 + 2 + 1)),  # each member and name
        ({"dependencies": {"a": ["b"], "c": {"type": "object"}}}, K * (1 + 1 + 1) + K),  # and a schema
    ],
)
def test_keywords_that_cost_more_a_value_count_for_more(keyword, extra):
    assert cost_of({"type": "number", **keyword}) == Cost(per_byte=K * (1 + len(keyword)) + extra)


def test_branches_are_noted_and_a_node_reached_often_is_read_once():
    assert cost_of({"anyOf": [{"type": "string"}, {"type": "null"}]}).branches
    assert not cost_of({"allOf": [{"type": "string"}]}).branches
    big = {f"k{i}": i for i in range(20_000)}  # members of no keyword, reached through 3,000 references
    many = {"$defs": {"big": big}, "allOf": [{"$ref": "#/$defs/big"}] * 3000}
    assert cost_of(many) == Cost(per_byte=2 * K + 3000 * (K + K * 20_000))


def test_unique_items_cost_by_the_square_of_the_size():
    cost = cost_of({"items": {"uniqueItems": True}, "uniqueItems": True})
    assert cost == Cost(per_byte=K + 2 * K, per_squared_byte=2 * UNIQUE_NS_PER_SQUARED_BYTE)
    assert cost.ns(1000) == 1000 * 3 * K + 1000 * 1000 * 2 * UNIQUE_NS_PER_SQUARED_BYTE


@pytest.mark.parametrize(
    "schema",
    [
        fan_out(300),  # 90,000 checks of a value from a schema of 600 nodes
        {"$defs": {"n": {"properties": {"kids": {"items": {"$ref": "#/$defs/n"}}}}}, "$ref": "#/$defs/n"},  # a tree
        {"anyOf": [{"$ref": "#"}, {"type": "null"}]},  # around on one value: jsonschema-rs goes 3 times
        {"properties": {"a": {"properties": {"b": {"$ref": "#/properties/a"}}}}},
        {"anyOf": [{"properties": {"a": {"pattern": "^a"}}}] * 3, "unevaluatedProperties": False},  # 4 times
        {"allOf": [{"items": {"pattern": "^a"}}] * 2, "unevaluatedItems": False},  # 4 times, not 2
        {"$ref": "other.json#/a"},
        {"$ref": "#anchor", "$defs": {"a": {"$anchor": "anchor"}}},
        {"$ref": "#/$defs/missing"},
        {"$dynamicRef": "#meta"},
        {"$recursiveRef": "#"},
        {"properties": {"a": {"$id": "https://example.com/a", "$ref": "#/b"}}},
        # a base of its own where the walk never goes: its references resolve against it
        {"$defs": {"sub": {"$id": "https://example.com/sub", "$defs": {"x": {}}}}, "$ref": "#/$defs/sub/$defs/x"},
        {"$schema": "http://json-schema.org/draft-04/schema#", "definitions": {"s": {"id": "http://e.com/s"}}},
        ["not", "an", "object"],
    ],
)
def test_what_the_walk_cannot_bound_has_no_bound(schema):
    assert cost_of(schema) is None


def test_a_long_chain_of_references_is_walked_once_each():
    chain = {"$defs": {str(i): {"$ref": f"#/$defs/{i + 1}"} for i in range(16_000)}, "$ref": "#/$defs/0"}
    chain["$defs"]["16000"] = {}
    assert cost_of(chain) == Cost(per_byte=2 * K + 16_000 * K + K)


def test_a_value_is_checked_here_only_when_its_bound_is_small_and_its_schema_has_no_pattern():
    plain = {"type": "object", "properties": {"a": {"type": "integer"}}}
    check = UpstreamSchema(plain, compile_schema(plain, "input schema"))
    assert check.checked_here({"a": 1})[0] and check.checked_here({"a": 1, "pad": "x" * 100_000})[0]
    assert check.checked_here({"a": 1}) == (True, None)
    assert check.checked_here({"a": "x"}) == (True, error_fields(first_error(check.validator, {"a": "x"})))
    many = {"type": "object", "properties": {f"n{i}": {"type": "integer", "minimum": 0.5} for i in range(100)}}
    numbers = UpstreamSchema(many, compile_schema(many, "input schema"))
    assert numbers.cost is not None
    fits = INLINE_NS // numbers.cost.per_byte - len(dumps({"s": ""}))
    assert numbers.checked_here({"s": "a" * fits})[0] and not numbers.checked_here({"s": "a" * (fits + 1)})[0]
    assert numbers.checked_here({"s": "a" * (fits + 1)}) == (False, None)
    # a pattern keeps what it learnt of what it matched: such a schema is never checked here
    slow = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}
    patterned = UpstreamSchema(slow, compile_schema(slow, "input schema"))
    assert patterned.validator is None and not patterned.checked_here({"id": "a"})[0]
    unbounded = UpstreamSchema(fan_out(300), compile_schema(fan_out(300), "input schema"))
    assert unbounded.cost is None and unbounded.validator is None and not unbounded.checked_here({})[0]


async def test_a_check_left_to_the_worker_goes_with_its_estimate_from_the_bound():
    asked = []

    class Worker:
        async def first_error(self, schema: bytes, instance: bytes, key: str, estimate: float | None) -> None:
            asked.append((len(instance), key, estimate))

    slow = {"type": "object", "properties": {"id": {"type": "string", "pattern": "^[a-z]+$"}}}
    patterned = UpstreamSchema(slow, compile_schema(slow, "input schema"), Worker())  # type: ignore[arg-type]
    unbounded = UpstreamSchema(fan_out(300), compile_schema(fan_out(300), "input schema"), Worker())  # type: ignore[arg-type]
    either = {"anyOf": [{"type": "null"}, {"type": "array", "items": {"required": ["a", "b"]}}]}
    branches = UpstreamSchema(either, compile_schema(either, "input schema"), Worker())  # type: ignore[arg-type]
    await patterned.in_worker({"id": "a" * 1000}, "key_a")
    await unbounded.in_worker({}, "key_b")
    await branches.in_worker([{}] * 10, "key_c")
    (size, key, estimate), unknown, first_error_of_branches = asked
    assert patterned.cost is not None and (key, estimate) == ("key_a", patterned.cost.ns(size) / 1e9)
    assert unknown == (2, "key_b", None)  # no bound: the worker counts it as its time limit
    assert first_error_of_branches[2] is None  # every branch's errors may be made: no estimate holds


@WORKER
async def test_the_first_error_against_branches_is_found_in_the_worker():
    optional = {
        "type": "object",
        "properties": {"items": {"anyOf": [{"type": "array", "items": {"required": ["a", "b"]}}, {"type": "null"}]}},
    }
    async with contextlib.aclosing(SchemaWorker()) as worker:
        check = UpstreamSchema(optional, compile_schema(optional, "input schema"), worker)
        assert check.checked_here({"items": None}) == (True, None)  # valid: known here
        rows = {"items": [{}] * 30_000}  # every branch's errors: 0.5 s and 137 MB here
        assert check.checked_here(rows) == (False, None) and worker.started == 0
        error = await check.first_error(rows)
        assert worker.started == 1
        assert error == error_fields(first_error(compile_schema(optional, "x"), rows))  # as the server would


# --- the worker -------------------------------------------------------------------------------

SAME_ERRORS = [
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, {"a": 1}),
    ({"type": "object", "properties": {"a": {"type": "integer"}}}, {"a": "one"}),
    ({"type": "object", "required": ["x", "y"]}, {"y": 1}),
    ({"type": "object", "properties": {"x": {}}, "additionalProperties": False}, {"x": 1, "k": 2, "j": 3}),
    ({"type": "object", "properties": {"s": {"type": "string", "pattern": r"^\d+$"}}}, {"s": "12a"}),
    ({"type": "array", "items": {"type": "object", "required": ["a", "b", "c", "d", "e"]}}, [{"a": 1}, {}] * 1000),
    (fan_out(3), {"s": "y"}),
    ({"properties": {"o": {"required": ["x"]}}, "unevaluatedProperties": False}, {"o": {"y": 1}, "p": 2}),
    (fan_out(300), {"s": "x"}),
]


@WORKER
async def test_the_worker_finds_the_same_first_error_as_the_server():
    async with contextlib.aclosing(SchemaWorker()) as worker:
        for schema, value in SAME_ERRORS:
            here = first_error(compile_schema(schema, "schema"), value)
            there = await worker.first_error(dumps(schema), dumps(value))
            assert there == (error_fields(here) if here is not None else None), (schema, value)
        assert worker.started == 1  # one process for every schema


@WORKER
async def test_a_check_past_its_time_limit_ends_its_process_and_the_next_starts_another():
    async with contextlib.aclosing(SchemaWorker(seconds=0.3)) as worker:
        assert await worker.first_error(dumps(SLOW), dumps({"s": "ab"})) is not None  # started
        first = worker._process
        with pytest.raises(CheckFailed, match=r"^the check took longer than 0.3 s$"):
            await worker.first_error(dumps(SLOW), dumps({"s": random_ab(1_000_000)}))  # about 8 s
        assert first is not None and first.returncode == -signal.SIGKILL
        assert await worker.first_error(dumps(SLOW), dumps({"s": random_ab(40)})) is None
        assert worker.started == 2


@WORKER
async def test_a_cancelled_check_ends_its_process_so_no_answer_is_taken_for_another():
    async with contextlib.aclosing(SchemaWorker()) as worker:
        assert await worker.first_error(dumps(SLOW), dumps({"s": random_ab(40)})) is None
        task = asyncio.create_task(worker.first_error(dumps(SLOW), dumps({"s": random_ab(1_000_000)})))
        for _ in range(3):
            await asyncio.sleep(0)  # the check under way, wherever it is
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        wrong = await worker.first_error(dumps({"type": "integer"}), b'"x"')
        assert wrong is not None and wrong["kind"] == "Type"
        assert worker.started == 2


async def started_and_busy(worker: SchemaWorker, key: str) -> asyncio.Task[Any]:
    """The worker started, then a check of about 8 s under way for ``key``."""
    assert await worker.first_error(dumps(SLOW), dumps({"s": random_ab(40)})) is None
    running = asyncio.create_task(worker.first_error(dumps(SLOW), dumps({"s": random_ab(1_000_000)}), key))
    await asyncio.sleep(0)
    return running


@WORKER
async def test_one_key_has_at_most_its_checks_in_the_worker_and_others_still_get_theirs():
    worker = SchemaWorker(seconds=60, per_key=2)
    running = await started_and_busy(worker, "key_a")
    waiting = asyncio.create_task(worker.first_error(dumps(SLOW), dumps({"s": "a"}), "key_a"))
    await asyncio.sleep(0)
    with pytest.raises(CheckFailed, match=r"^this key already has 2 checks waiting$"):
        await worker.first_error(dumps(SLOW), dumps({"s": "a"}), "key_a")
    other = asyncio.create_task(worker.first_error(dumps(SLOW), dumps({"s": "a"}), "key_b"))
    await asyncio.sleep(0)
    assert not other.done()  # waiting for its turn, not refused
    await worker.aclose()  # the server stops: the check under way fails, the waiting ones are not made
    with pytest.raises(CheckFailed, match="the checking process failed"):
        await running
    for task in (waiting, other):
        with pytest.raises(CheckFailed, match="the server is stopping"):
            await task


@WORKER
async def test_checks_beyond_those_waiting_or_past_their_wait_are_refused(monkeypatch):
    monkeypatch.setattr(schema_worker, "WAIT_SECONDS", 0.2)
    async with contextlib.aclosing(SchemaWorker(seconds=60, max_waiting=1)) as worker:
        running = await started_and_busy(worker, "key_a")
        waiting = asyncio.create_task(worker.first_error(dumps(SLOW), dumps({"s": "a"}), "key_b"))
        await asyncio.sleep(0)
        with pytest.raises(CheckFailed, match=r"^1 checks are already waiting$"):
            await worker.first_error(dumps(SLOW), dumps({"s": "a"}), "key_c")
        with pytest.raises(CheckFailed, match=r"^no turn came within 0.2 s$"):
            await waiting
        assert not running.done()
    with pytest.raises(CheckFailed, match="the checking process failed"):
        await running


@WORKER
async def test_a_process_that_died_between_checks_is_started_again():
    async with contextlib.aclosing(SchemaWorker()) as worker:
        assert await worker.first_error(dumps({"type": "integer"}), b"1") is None
        process = worker._process
        assert process is not None
        process.kill()
        await process.wait()
        assert await worker.first_error(dumps({"type": "integer"}), b"2") is None
        assert worker.started == 2


@WORKER
async def test_a_value_the_schema_cannot_check_is_a_value_error():
    async with contextlib.aclosing(SchemaWorker()) as worker:
        with pytest.raises(ValueError):
            await worker.first_error(dumps({"type": "integer"}), b"not json")
        assert await worker.first_error(dumps({"type": "integer"}), b"3") is None  # and it goes on


SERVER = """
import asyncio, sys
from skywarden.server.gateway.schema_worker import SchemaWorker

async def main():
    worker = SchemaWorker()
    await worker.first_error(b'{"type": "integer"}', b"1")
    print(worker._process.pid, flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)

asyncio.run(main())
"""


@WORKER
async def test_the_worker_ends_with_a_server_that_is_killed():
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT)
    assert server.stdout is not None
    line = await asyncio.get_running_loop().run_in_executor(None, server.stdout.readline)
    pid = int(line)
    ended = asyncio.Event()
    handle = os.pidfd_open(pid)
    asyncio.get_running_loop().add_reader(handle, ended.set)
    try:
        server.kill()
        server.wait()
        await asyncio.wait_for(ended.wait(), 30)
    finally:
        asyncio.get_running_loop().remove_reader(handle)
        os.close(handle)
        server.stdin.close()  # type: ignore[union-attr]


# --- the bound, fuzzed against the validator ----------------------------------------------------

NAMES = ("k0", "k1", "k2")
LEAVES = st.sampled_from(
    [{"format": "count"}] * 4
    + [{"type": ["string", "object", "array"], "format": "count"}, True, {}]
    + [{"$ref": ref} for ref in ("#/$defs/d0", "#/$defs/d1", "#/$defs/d0/allOf/0", "#/$defs/d1", "#")]
)


def _node(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    some = st.lists(inner, min_size=1, max_size=4)
    in_place = [
        some.map(lambda items: {"allOf": items}),
        some.map(lambda items: {"anyOf": items}),
        some.map(lambda items: {"oneOf": items}),
    ]
    return st.one_of(  # on one value mostly: what multiplies its checks
        *in_place,
        *in_place,
        *in_place,
        st.dictionaries(st.sampled_from(NAMES), inner, max_size=3).map(lambda named: {"properties": named}),
        inner.map(lambda item: {"items": item}),
        inner.map(lambda item: {"additionalProperties": item}),
        st.tuples(inner, inner).map(lambda pair: {"if": pair[0], "then": pair[1]}),
        st.tuples(inner, inner).map(lambda pair: {"allOf": [pair[0]], "properties": {"k1": pair[1]}}),
        st.tuples(inner, inner).map(lambda pair: {"allOf": [pair[0]], "unevaluatedProperties": pair[1]}),
        st.tuples(inner, inner).map(lambda pair: {"anyOf": [pair[0]], "unevaluatedItems": pair[1]}),
        st.tuples(inner, inner).map(lambda pair: {"prefixItems": [pair[0]], "contains": pair[1], "minContains": 0}),
        st.tuples(inner, inner).map(lambda pair: {"dependentSchemas": {"k0": pair[0]}, "propertyNames": pair[1]}),
        st.tuples(inner, inner).map(lambda pair: {"patternProperties": {"^k": pair[0]}, "not": {"not": pair[1]}}),
    )


SCHEMAS = st.tuples(
    st.recursive(LEAVES, _node, max_leaves=10),
    st.recursive(LEAVES, _node, max_leaves=6).map(lambda node: {"allOf": [node]}),
    st.recursive(LEAVES, _node, max_leaves=6),
).map(lambda parts: {"allOf": [parts[0]], "$defs": {"d0": parts[1], "d1": parts[2]}})


def _strings_told_apart(value: Any, seen: list[int] | None = None) -> Any:
    """``value`` with each of its strings made unique, so that a count by string is by value."""
    seen = seen if seen is not None else [0]
    if isinstance(value, dict):
        return {key: _strings_told_apart(item, seen) for key, item in value.items()}
    if isinstance(value, list):
        return [_strings_told_apart(item, seen) for item in value]
    seen[0] += 1
    return f"s{seen[0]}"


_NESTED = st.recursive(
    st.just("s"),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(st.sampled_from(NAMES), inner, max_size=3)),
    max_leaves=12,
)
INSTANCES = st.one_of(
    st.just("s"),
    st.lists(st.just("s"), min_size=1, max_size=3),
    st.fixed_dictionaries({name: st.just("s") for name in NAMES}),
    _NESTED,
).map(_strings_told_apart)


def _as_patterns(schema: Any) -> Any:
    """The schema with each counted ``format`` written as a pattern, as the bound sees it."""
    if isinstance(schema, dict):
        return {
            ("pattern" if key == "format" else key): (".*" if key == "format" else _as_patterns(value))
            for key, value in schema.items()
        }
    if isinstance(schema, list):
        return [_as_patterns(item) for item in schema]
    return schema


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS, INSTANCES)
def test_no_string_is_matched_more_often_than_the_bound_says(schema, instance):
    """The validator calls the format ``count`` each time it would match a pattern there: for no
    string of the value more often than the bound's ``patterns`` counts, whatever the
    references, their recursion and the applicators around them."""
    seen: Counter[str] = Counter()

    def count(value: str) -> bool:
        seen[value] += 1
        return True

    validator = jsonschema_rs.validator_for(schema, formats={"count": count}, validate_formats=True)
    bound = cost_of(_as_patterns(schema))
    validator.is_valid(instance)
    if bound is not None and seen:
        assert max(seen.values()) <= bound.patterns, (schema, instance, seen, bound)
