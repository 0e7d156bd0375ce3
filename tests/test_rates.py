"""The one rate parser (``server/rates.py``) and everything that takes a rate through it: the four
rate settings (one line naming the setting), a key's own limit at the admin API (422 naming the
field, nothing stored) and at the CLI, and a rate an earlier version stored (written straight into
the SQLite store): it keeps its meaning, or refuses the key and says why, never looser."""

from __future__ import annotations

import json
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st
from limits import parse_many
from limits.util import SEPARATORS, SINGLE_EXPR

from skywarden.server.appkeys import AUTHENTICATOR, SETTINGS
from skywarden.server.rates import (
    MAX_AMOUNT,
    MAX_STORED_AMOUNT,
    MAX_STORED_WINDOW_SECONDS,
    MAX_STORED_WINDOWS,
    MAX_WINDOW_SECONDS,
    MAX_WINDOWS,
    UNITS,
    parse_rate,
    stored_rate,
)
from skywarden.server.settings import SettingsError, load_settings
from tests.support.admin import create_key
from tests.support.logs import SECRETS, drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc

SECONDS = {name: kind.GRANULARITY.seconds for name, kind in UNITS.items()}
RATE_SETTINGS = ("rate_limit", "oauth_rate_limit", "auth_failure_limit", "unauthenticated_limit")


@st.composite
def windows(draw) -> tuple[str, tuple[int, int, str]]:
    """A valid window as text, and the (amount, count, unit) it means."""
    unit = draw(st.sampled_from(sorted(UNITS)))
    count = draw(st.integers(1, MAX_WINDOW_SECONDS // SECONDS[unit]))
    amount = draw(st.integers(1, MAX_AMOUNT))
    word = draw(st.sampled_from([unit, unit + "s", unit.upper(), unit.title()]))
    shown_count = "" if count == 1 and draw(st.booleans()) else f"{count}{draw(st.sampled_from(['', ' ']))}"
    per = draw(st.sampled_from(["/", " / ", " per "]))
    return f"{amount}{per}{shown_count}{word}", (amount, count, unit)


@given(st.lists(windows(), min_size=1, max_size=MAX_WINDOWS), st.sampled_from([";", ",", "|", " ; "]))
def test_every_valid_rate_parses_to_exactly_its_windows(parts, separator):
    lengths = [count * SECONDS[unit] for _, (_, count, unit) in parts]
    text = separator.join(text for text, _ in parts)
    if len(set(lengths)) < len(lengths) or len(text) > 200:
        with pytest.raises(ValueError):
            parse_rate(text)
        return
    parsed = parse_rate(text)
    assert [(w.amount, w.multiples, w.GRANULARITY.name) for w in parsed] == [meaning for _, meaning in parts]


@given(st.text(max_size=60))
def test_any_text_is_a_sound_rate_or_a_value_error(text):
    try:
        parsed = parse_rate(text)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    for window in parsed:
        assert 1 <= window.amount <= MAX_AMOUNT and 1 <= window.get_expiry() <= MAX_WINDOW_SECONDS
    assert len({w.get_expiry() for w in parsed}) == len(parsed) <= MAX_WINDOWS


@given(
    unit=st.sampled_from(sorted(UNITS)),
    amount=st.one_of(st.just(0), st.integers(MAX_AMOUNT + 1, 10**30)),
    count=st.one_of(st.none(), st.integers(1, 5)),
)
def test_an_amount_of_zero_or_absurdly_many_is_refused(unit, amount, count):
    with pytest.raises(ValueError, match="amount"):
        parse_rate(f"{amount}/{count or ''}{unit}")


@given(unit=st.sampled_from(sorted(UNITS)), amount=st.integers(1, 1000), zeros=st.integers(1, 4))
def test_zero_multiples_of_a_unit_are_refused(unit, amount, zeros):
    with pytest.raises(ValueError, match="no window"):
        parse_rate(f"{amount}/{'0' * zeros}{unit}")
    with pytest.raises(ValueError, match="no window"):
        parse_rate(f"{amount} per {'0' * zeros} {unit}s")


@given(unit=st.sampled_from(sorted(UNITS)), extra=st.integers(1, 10**6))
def test_a_window_longer_than_the_limit_is_refused(unit, extra):
    count = MAX_WINDOW_SECONDS // SECONDS[unit] + extra
    with pytest.raises(ValueError, match="at most 366 days"):
        parse_rate(f"1/{count}{unit}")


@given(word=st.from_regex(r"[a-zA-Z]{1,12}", fullmatch=True))
def test_an_unknown_unit_is_refused_by_name(word):
    if word.lower() in UNITS or word.lower().removesuffix("s") in UNITS:
        return
    with pytest.raises(ValueError, match="unknown unit"):
        parse_rate(f"5/{word}")


@pytest.mark.parametrize(
    "text",
    [
        "1/0second",
        "0/second",
        "00/minute",
        "-1/second",
        "1.5/second",
        "1e3/second",
        "\u0661/second",  # an Arabic-Indic digit
        "1/sec",
        "1/ms",
        "1/fortnight",
        "1",
        "/second",
        "1//second",
        "1/second;",
        ";1/second",
        "1/second;;1/day",
        "1/minute;2/60second",
        "1/hour;5/60 minutes",
        ";".join(f"1/{n}second" for n in range(1, MAX_WINDOWS + 2)),
        "1/second" + " " * 300,
        "1/2years",
        "1000000001/second",
    ],
)
def test_nonsense_rates(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_empty_is_no_limit():
    assert parse_rate("") == () and parse_rate("   ") == ()


# -- where rates come in --------------------------------------------------------------------------

BAD_RATES = ["1/0second", "0/second", "1/99999999999999day", "5/fortnight", "1/minute;1/60second", "lots"]


@pytest.mark.parametrize("name", RATE_SETTINGS)
@pytest.mark.parametrize("value", BAD_RATES)
def test_every_rate_setting_refuses_nonsense_in_one_line_naming_it(name, value):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={f"SKYWARDEN_{name.upper()}": value})
    message = str(info.value)
    assert message.startswith(f"invalid setting {name} (SKYWARDEN_{name.upper()})") and "\n" not in message
    with pytest.raises(SettingsError, match=f"--{name.replace('_', '-')}"):
        load_settings(cli={name: value}, environ={})


@pytest.mark.parametrize("name", RATE_SETTINGS)
def test_serve_refuses_a_nonsense_rate_at_start_up_in_one_line(tmp_path, capsys, name):
    from skywarden.server.cli.main import main

    assert main(["serve", f"--{name.replace('_', '-')}", "1/0second", "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and name in err and "1/0second" in err and "Traceback" not in err


async def test_the_admin_api_refuses_nonsense_key_limits_naming_the_field(client):
    key = await create_key(client.admin, name="limited")
    for value in [*BAD_RATES, "", "  "]:
        resp = await client.admin.post("/api/admin/keys", json={"name": "bad", "rate_limit": value})
        assert resp.status == 422 and resp.content_type == "application/problem+json", value
        assert [e["field"] for e in (await resp.json())["errors"]] == ["rate_limit"]
        resp = await client.admin.patch(f"/api/admin/keys/{key['id']}", json={"rate_limit": value})
        assert resp.status == 422 and [e["field"] for e in (await resp.json())["errors"]] == ["rate_limit"]
    listed = await (await client.admin.get("/api/admin/keys")).json()
    assert "bad" not in [k["name"] for k in listed["keys"]]
    assert (await (await client.admin.get(f"/api/admin/keys/{key['id']}")).json())["rate_limit"] is None


# -- a rate an earlier version stored ---------------------------------------------------------------

# Tokens of the limits notation and its near misses; a text is any run of them.
TOKENS = [
    *("0", "1", "5", "00", "60", "1000"),
    *("/", "per", "PER", " per ", ":"),
    *("second", "seconds", "Minute", "HOURS", "day", "month", "year", "years", "sec", "\u017fecond"),
    *(";", ",", "|", " ", "  ", "\t", "\n", "\u00a0", "\u2003"),
    *("x", "-", ".", "e"),
]


def _limits_meaning(text: str) -> list[tuple[int, int]] | None:
    """What limits.parse_many (the parser of earlier versions) made of ``text``: (amount, seconds)
    per window, each length once with its smallest amount; None when it refused the text or read
    a count of 0 (``1/0second``), which it took for 1."""
    try:
        items = parse_many(text)
    except ValueError:
        return None
    for part in SEPARATORS.split(text):
        multiples = SINGLE_EXPR.match(part)[3]
        if multiples is not None and int(multiples) == 0:
            return None
    shortest: dict[int, int] = {}
    for item in items:
        shortest[item.get_expiry()] = min(item.amount, shortest.get(item.get_expiry(), item.amount))
    return list(shortest.items())


def _meaning(found) -> list[tuple[int, int]]:
    return [(w.get_expiry(), w.amount) for w in found.windows]


@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=14).map("".join) | windows().map(lambda w: w[0]))
def test_a_stored_rate_means_what_limits_made_of_it_or_refuses_the_key(text):
    found = stored_rate(text)
    meaning = _limits_meaning(text)
    if meaning is None:  # refused by limits (an error on every request then), or 1/0second
        assert found.problem and not found.allows_nothing and not found.windows
        return
    if any(seconds > MAX_STORED_WINDOW_SECONDS for seconds, _ in meaning) or len(meaning) > MAX_STORED_WINDOWS:
        assert found.problem and not found.windows
        return
    assert _meaning(found) == meaning
    assert found.allows_nothing == any(amount == 0 for _, amount in meaning)
    assert (found.problem is not None) == found.allows_nothing


@pytest.mark.parametrize(
    ("text", "meaning"),
    [
        ("1per second", [(1, 1)]),
        ("1 per5 second", [(5, 1)]),
        ("1per5seconds", [(5, 1)]),
        ("10 PER 2 Minutes", [(120, 10)]),
        ("1/2 year", [(2 * 360 * 86400, 1)]),
        ("1/50 years", [(50 * 360 * 86400, 1)]),
        ("5/second;5/second", [(1, 5)]),
        ("10/minute;3/60 seconds", [(60, 3)]),
        ("1/second:;2/minute", [(1, 1), (60, 2)]),
        (" 1 / second ,2/day|3 per 2 days", [(1, 1), (86400, 2), (172800, 3)]),
        ("1\u00a0per\u2003second\n", [(1, 1)]),
        ("99999999999/day", [(86400, 99999999999)]),
        (";".join(f"1/{n}second" for n in range(1, 21)), [(n, 1) for n in range(1, 21)]),
    ],
)
def test_sane_forms_earlier_versions_stored_keep_their_meaning(text, meaning):
    found = stored_rate(text)
    assert found.problem is None and _meaning(found) == meaning


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("1/0second", "no window"),
        ("5 per 00 minutes", "no window"),
        ("1/second;1/0minute", "'1/0minute': a window of 0 minutes"),
        (f"{MAX_STORED_AMOUNT + 1}/day", "more than a counter holds"),
        ("1/101 years", "more than 100 years"),
        ("1/99999999999999999999 day", "more than 100 years"),
        (";".join(f"1/{n}second" for n in range(1, MAX_STORED_WINDOWS + 2)), "windows"),
        ("lots", "not a rate"),
        ("1/fortnight", "unknown unit"),
        ("1/second;", "empty window"),
        ("   ", "blank"),
        ("0/second", "allows no request"),
        ("0 per 5 minutes;100/day", "allows no request"),
    ],
)
def test_a_stored_rate_that_cannot_be_used_names_its_problem(text, words):
    found = stored_rate(text)
    assert found.problem and words in found.problem and "\n" not in found.problem


def _store_rate(client, text: str | None) -> None:
    """Write the key's rate_limit into the SQLite store as an earlier version (or a hand) left it."""
    database = client.server.app[SETTINGS].resolved_database_url.removeprefix("sqlite:///")
    with sqlite3.connect(database) as conn:
        conn.execute("UPDATE api_keys SET rate_limit = ? WHERE id = ?", (text, client.key_id))
    conn.close()
    client.server.app[AUTHENTICATOR].forget_all()


async def _mcp_call(client):
    message = modern_rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "CO"}}, id=3)
    return await client.post("/mcp", json=message, headers=modern_headers(message))


async def test_sane_stored_forms_limit_the_key_as_they_did(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="1000/minute"))
    for text, policy in [
        ("1per second", '"key-second";q=1;w=1'),
        ("1 per5 second", '"key-5second";q=1;w=5'),
        ("1/2 year", '"key-2year";q=1;w=62208000'),
        ("7/day;7/day", '"key-day";q=7;w=86400'),
    ]:
        _store_rate(client, text)
        resp = await client.get("/api/mcp/tools")
        assert resp.status == 200 and resp.headers["RateLimit-Policy"] == policy, text
    _store_rate(client, "1/2 year")  # one request was allowed in two years, and it was made
    resp = await client.get("/api/mcp/tools")
    assert resp.status == 429 and resp.headers["RateLimit-Policy"] == '"key-2year";q=1;w=62208000'


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0/second", "allows no request at all"),
        ("0 per 5 minutes;100/day", "allows no request at all"),
        ("1/0second", "a window of 0 seconds is no window"),
        ("1/minute|1/0hour", "a window of 0 hours"),
        ("1/101 years", "more than 100 years"),
        ("lots", "is not a rate"),
        (" ", "blank"),
    ],
)
async def test_a_stored_rate_that_allows_nothing_or_is_no_rate_refuses_the_key(make_client, make_settings, text, words):
    client = await make_client(make_settings(rate_limit=""))  # no default to fall back to: nothing looser
    _store_rate(client, text)
    for _ in range(2):
        resp = await client.get("/api/mcp/tools")
        problem = await resp.json()
        assert resp.status == 403 and problem["type"].endswith("/key-rate-limit-unusable"), problem
        assert words in problem["detail"] and repr(text) in problem["detail"]
    resp = await _mcp_call(client)
    answer = await resp.json()
    assert resp.status == 403 and answer["error"]["code"] == -32003 and words in answer["error"]["message"]
    logged = [
        e
        for e in drain_logs()
        if e.get("event", "").startswith("stored rate limit unusable") and e.get("key_id") == client.key_id
    ]
    assert len(logged) == 1 and words.split()[-1] in logged[0]["problem"]
    audited = [e for e in drain_logs() if e.get("event") == "request" and e.get("key_id") == client.key_id]
    assert audited[-1]["status"] == 403 and audited[-1]["reason"] == "key_rate_limit"

    view = await (await client.admin.get(f"/api/admin/keys/{client.key_id}")).json()
    assert view["rate_limit"] == text and words in view["rate_limit_problem"]
    listed = await (await client.admin.get("/api/admin/keys")).json()
    assert [k["rate_limit_problem"] for k in listed["keys"] if k["id"] == client.key_id] == [view["rate_limit_problem"]]

    fixed = await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"rate_limit": "10/minute"})
    assert fixed.status == 200 and (await fixed.json())["rate_limit_problem"] is None
    assert (await client.get("/api/mcp/tools")).status == 200


async def test_a_key_without_a_rate_of_its_own_has_no_problem(client):
    view = await (await client.admin.get(f"/api/admin/keys/{client.key_id}")).json()
    assert view["rate_limit"] is None and view["rate_limit_problem"] is None


def test_db_status_names_each_key_whose_stored_rate_refuses_it(tmp_path, capsys, monkeypatch):
    from skywarden.server.cli.main import main
    from skywarden.server.observability import logging_setup

    # The commands run in this process: they keep the test session's log sink, not their own.
    monkeypatch.setattr(logging_setup, "configure_logging", lambda *args, **kwargs: [])
    monkeypatch.setattr(logging_setup, "close_sinks", lambda: None)

    data = ["--data-dir", str(tmp_path)]
    ids = {}
    for name in ("fine", "nothing", "nonsense", "gone"):
        assert main(["keys", "create", "--name", name, "--json", *data]) == 0
        created = json.loads(capsys.readouterr().out)
        SECRETS.add(created["key"])
        ids[name] = created["id"]
    assert main(["keys", "revoke", ids["gone"], *data]) == 0
    with sqlite3.connect(tmp_path / "skywarden.db") as conn:
        for name, text in (("fine", "1per minute"), ("nothing", "0/day"), ("nonsense", "1/0second"), ("gone", "x")):
            conn.execute("UPDATE api_keys SET rate_limit = ? WHERE id = ?", (text, ids[name]))
    conn.close()
    capsys.readouterr()
    assert main(["db", "status", *data]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert "(up to date)" in lines[0] and len(lines) == 3, lines
    assert ids["nothing"] in lines[1] and "'0/day': allows no request at all" in lines[1]
    assert ids["nonsense"] in lines[2] and "'1/0second': a window of 0 seconds is no window" in lines[2]
    assert f"PATCH /api/admin/keys/{ids['nothing']}" in lines[1] and f"/api/admin/keys/{ids['nonsense']}" in lines[2]
