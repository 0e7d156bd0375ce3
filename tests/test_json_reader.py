"""The request-body JSON reader: orjson first, the stdlib for anything orjson refuses or could
misread. Whatever the body, the answer (value or refusal) is the stdlib reader's."""

from __future__ import annotations

import json
import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skywarden.server.jsonutil import BodyError, _stdlib_loads, dumps, loads_exact, loads_guarded
from tests.support.json_strategies import json_values

DEPTH = 8


def typed(value):
    """The value with every scalar's type beside it: 1 and 1.0, or 0.0 and -0.0, differ."""
    if isinstance(value, dict):
        return {k: typed(v) for k, v in value.items()}
    if isinstance(value, list):
        return [typed(v) for v in value]
    if isinstance(value, float):
        return ("float", value.hex() if not math.isnan(value) else "nan")
    return (type(value).__name__, value)


def reading(reader, body: bytes):
    try:
        return "value", typed(reader(body, DEPTH))
    except BodyError as exc:
        return "refused", exc.reason


def assert_same_as_stdlib(body: bytes) -> None:
    expected = reading(_stdlib_loads, body)
    if expected[0] == "value" and body.count(b"{") + body.count(b"[") > DEPTH:
        return  # the depth rule applies to both alike (checked by test_depth_is_refused_either_way)
    assert reading(loads_guarded, body) == expected, body


@settings(max_examples=150, deadline=None)
@given(json_values)
def test_any_json_document_reads_as_the_stdlib_reads_it(value):
    for body in (json.dumps(value).encode(), json.dumps(value, ensure_ascii=False).encode()):
        assert_same_as_stdlib(body)


@settings(max_examples=150, deadline=None)
@given(json_values, st.data())
def test_any_damaged_document_is_refused_or_read_as_the_stdlib_does(value, data):
    body = bytearray(json.dumps(value, ensure_ascii=False).encode())
    for _ in range(data.draw(st.integers(1, 3))):
        at = data.draw(st.integers(0, len(body)))
        body[at:at] = data.draw(st.binary(min_size=1, max_size=3))
    assert_same_as_stdlib(bytes(body))


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"   ",
        b"NaN",
        b"[Infinity]",
        b'{"a": -Infinity}',
        b"1e400",
        b"[1,]",
        b"\xff",
        b'"\xed\xa0\x80"',  # a surrogate encoded as UTF-8
        b'"\\ud800"',
        b'{"\\udfff": 1}',
        b'"\\ud83d\\ude00"',
        b"\xef\xbb\xbf{}",
        b"18446744073709551615",
        b"18446744073709551616",
        b"-9223372036854775809",
        b'{"id": 1180591620717411303424}',
        b'"1234567890123456789012"',
        b"-0",
        b"-0.0",
        b'{"a": 1, "a": 2}',
        b'"a\\u0000b"',
        b'"\x01"',
        b"[" * 2000 + b"]" * 2000,
    ],
)
def test_edge_cases_read_as_the_stdlib_reads_them(body):
    assert_same_as_stdlib(body)


def test_big_integers_keep_their_value():
    assert loads_guarded(b'{"id": 1180591620717411303424}', DEPTH) == {"id": 2**70}
    assert type(loads_guarded(b"[18446744073709551616]", DEPTH)[0]) is int


@pytest.mark.parametrize("number", ["1e400", "-1e400", "1.5e309", "123456789e999", "0.1e99999"])
def test_a_number_too_large_for_a_float_is_refused_naming_it(number):
    with pytest.raises(BodyError, match=f"the number {re.escape(number)} is too large"):
        loads_guarded(f'{{"a": [{number}]}}'.encode(), DEPTH)
    with pytest.raises(ValueError, match="too large"):
        loads_exact(number.encode())


@settings(max_examples=300, deadline=None)
@given(
    st.from_regex(r"-?(0|[1-9][0-9]{0,30})(\.[0-9]{1,20})?([eE][+-]?[0-9]{1,4})?", fullmatch=True),
)
def test_every_number_read_is_written_back_as_the_same_value(number):
    """What the reader accepts, Skywarden's writer writes, and it reads back unchanged (no
    infinity becoming null, no integer beyond 64 bits rounded)."""
    for read in (lambda b: loads_guarded(b, DEPTH), loads_exact):
        try:
            value = read(f"[{number}]".encode())
        except (BodyError, ValueError):
            assert math.isinf(float(number))
            continue
        assert json.loads(dumps(value)) == value and type(json.loads(dumps(value))[0]) is type(value[0])


@pytest.mark.parametrize("body", [b"[" * 9 + b"]" * 9, b'{"a":' * 9 + b"1" + b"}" * 9, b"[" * 5000 + b"]" * 5000])
def test_depth_is_refused_either_way(body):
    with pytest.raises(BodyError, match="nesting deeper than 8 levels"):
        loads_guarded(body, DEPTH)
