"""The one rate parser (``server/rates.py``) and everything that takes a rate through it: the four
rate settings (one line naming the setting), a key's own limit at the admin API (422 naming the
field, nothing stored) and at the CLI, and a rate an earlier version stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skywarden.server.rates import MAX_AMOUNT, MAX_WINDOW_SECONDS, MAX_WINDOWS, UNITS, parse_rate
from skywarden.server.settings import SettingsError, load_settings
from tests.conftest import create_key, drain_logs

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


async def test_a_refused_rate_an_earlier_version_stored_holds_the_key_to_the_default(make_client, make_settings):
    from skywarden.server.appkeys import AUTHENTICATOR, KEY_STORE

    client = await make_client(make_settings(rate_limit="2/minute"))
    await client.server.app[KEY_STORE].update(client.key_id, {"rate_limit": "0/second"})  # as parse_many let in
    client.server.app[AUTHENTICATOR].forget_all()
    statuses = [(await client.get("/api/mcp/tools")).status for _ in range(3)]
    assert statuses == [200, 200, 429]  # the default 2/minute, not "nothing ever"
    warnings = [e for e in drain_logs() if e.get("event", "").startswith("stored rate limit refused")]
    assert warnings and warnings[-1]["key_id"] == client.key_id
