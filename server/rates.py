"""Rates in the ``limits`` notation: the one parser for every rate Skywarden accepts.

A rate is one or more windows separated by ``;``, ``,`` or ``|``, each ``<amount>/<unit>``,
``<amount>/<count> <unit>`` or ``<amount> per <count> <unit>`` (spaces around ``/`` and
``per`` optional, any case); units ``second``, ``minute``, ``hour``, ``day``, ``month`` (30
days) or ``year`` (360 days), singular or plural. That grammar is exactly the one
``limits.parse_many`` reads (its quirks included: Unicode spaces, a ``:`` before a separator),
so every rate an earlier version stored still reads; what differs is which values are taken.

- ``parse_rate``, for a rate given now (the settings ``rate_limit``, ``oauth_rate_limit``,
  ``auth_failure_limit``, ``unauthenticated_limit``, and a key's own ``rate_limit`` at the
  admin API and the CLI): every window must make sense. The amount is a whole number from 1 to
  1,000,000,000, a count, when given, is at least 1, a window lasts at most 366 days; at most 8
  windows, no two of the same length, at most 200 characters in all.
- ``stored_rate``, for a key's own rate as a store holds it (the limiter, the admin API's key
  view, ``skywarden db status``): a rate an earlier version accepted keeps the meaning it had.
  Windows of the same length are one window with the smallest amount (what enforcing each
  meant); a window may last up to 100 years. An amount of 0 allows no request at all, as it
  always did. What cannot be a rate (a count of 0, as in ``1/0second``, which ``limits`` read
  as one a second; text that is no rate) is a problem: the key is refused, never held to a
  looser rate.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from limits import (
    RateLimitItem,
    RateLimitItemPerDay,
    RateLimitItemPerHour,
    RateLimitItemPerMinute,
    RateLimitItemPerMonth,
    RateLimitItemPerSecond,
    RateLimitItemPerYear,
)

MAX_AMOUNT = 1_000_000_000
MAX_WINDOW_SECONDS = 366 * 24 * 3600
MAX_WINDOWS = 8
MAX_TEXT = 200
UNITS: dict[str, type[RateLimitItem]] = {
    "second": RateLimitItemPerSecond,
    "minute": RateLimitItemPerMinute,
    "hour": RateLimitItemPerHour,
    "day": RateLimitItemPerDay,
    "month": RateLimitItemPerMonth,
    "year": RateLimitItemPerYear,
}
# What a stored rate may hold beyond a new one: what a counter holds exactly, a century, and
# more windows than anyone writes by hand.
MAX_STORED_AMOUNT = 2**53
MAX_STORED_WINDOW_SECONDS = 100 * RateLimitItemPerYear.GRANULARITY.seconds
MAX_STORED_WINDOWS = 64

# limits.util.SINGLE_EXPR, with the unit's word as one group (no re.ASCII: like limits, any
# Unicode space separates; the digits are ASCII either way).
_WINDOW = re.compile(r"\s*([0-9]+)\s*(?:/|\s*per\s*)\s*([0-9]+)?\s*([a-z]+)\s*", re.IGNORECASE)
_SEPARATOR = re.compile(r"[;,|]")
EXAMPLE = "'120/minute' or '10/second;1000/day'"


class _WindowError(ValueError):
    def __init__(self, part: str, problem: str) -> None:
        super().__init__(problem)
        self.part = part


@dataclass(frozen=True)
class _Written:
    """One window as written: the amount, the count (None when not written) and the unit."""

    text: str
    amount: int
    count: int | None
    kind: type[RateLimitItem]

    def seconds(self) -> int:
        return (self.count or 1) * self.kind.GRANULARITY.seconds

    def item(self) -> RateLimitItem:
        return self.kind(self.amount, self.count or 1)


def _written(text: str) -> list[_Written]:
    """The windows of ``text`` as written; _WindowError (or ValueError) for text outside the grammar."""
    parts = _SEPARATOR.split(text)
    return [_written_window(part, last=index == len(parts) - 1) for index, part in enumerate(parts)]


def _written_window(part: str, last: bool) -> _Written:
    shown = part.strip()
    if not shown:
        raise _WindowError(part, "has an empty window (two separators in a row, or one at an end)")
    if not last and part.endswith(":"):  # limits' EXPR lets a ':' stand before a separator
        part = part[:-1]
    match = _WINDOW.fullmatch(part)
    if match is None:
        raise _WindowError(shown, f"is not a rate; write it as {EXAMPLE}")
    word = match[3].lower()
    kind = UNITS.get(word) or UNITS.get(word.removesuffix("s"))
    if kind is None:
        raise _WindowError(shown, f"unknown unit {match[3]!r}; use {', '.join(UNITS)}")
    return _Written(shown, int(match[1]), None if match[2] is None else int(match[2]), kind)


def _problem(exc: _WindowError, several: bool) -> str:
    return f"{exc.part!r}: {exc}" if several else str(exc)


def parse_rate(text: str) -> tuple[RateLimitItem, ...]:
    """The windows of ``text``; "" (or only spaces) is no limit at all, ``()``. Raises ValueError
    with a message that says what is wrong, for any text that is not a rate as described above."""
    if not isinstance(text, str):
        raise ValueError(f"must be a rate such as {EXAMPLE}")
    if not text.strip():
        return ()
    if len(text) > MAX_TEXT:
        raise ValueError(f"must be at most {MAX_TEXT} characters")
    parts = _SEPARATOR.split(text)
    if len(parts) > MAX_WINDOWS:
        raise ValueError(f"must have at most {MAX_WINDOWS} windows")
    try:
        windows = tuple(_checked(w).item() for w in _written(text))
    except _WindowError as exc:
        raise ValueError(_problem(exc, len(parts) > 1)) from None
    lengths = [w.get_expiry() for w in windows]
    if len(set(lengths)) != len(lengths):
        raise ValueError("must not give two windows of the same length")
    return windows


def _checked(window: _Written) -> _Written:
    """A window given now: within every bound."""
    unit = window.kind.GRANULARITY.name
    if not 1 <= window.amount <= MAX_AMOUNT:
        raise _WindowError(window.text, f"the amount must be a whole number from 1 to {MAX_AMOUNT:,}")
    _refuse_zero_count(window, unit)
    if window.seconds() > MAX_WINDOW_SECONDS:
        raise _WindowError(window.text, f"a window may last at most {MAX_WINDOW_SECONDS // 86400} days")
    return window


def _refuse_zero_count(window: _Written, unit: str) -> None:
    if window.count == 0:
        raise _WindowError(window.text, f"a window of 0 {unit}s is no window; give a count of at least 1")


@dataclass(frozen=True)
class StoredRate:
    """What a key's stored rate means: its windows, or why the key must be refused."""

    windows: tuple[RateLimitItem, ...] = ()
    problem: str | None = None  # set: every request with the key is refused, and this says why
    allows_nothing: bool = False  # the problem is an amount of 0: a rate, one that allows no request


@functools.lru_cache(maxsize=1024)
def stored_rate(text: str) -> StoredRate:
    """A key's own rate as a store holds it (see the module's docstring). Never raises."""
    if not text.strip():
        return StoredRate(problem="is blank; a key without a rate of its own holds null")
    several = bool(_SEPARATOR.search(text))
    try:
        written = _written(text)
        for window in written:
            _refuse_zero_count(window, window.kind.GRANULARITY.name)
            if window.amount > MAX_STORED_AMOUNT:
                raise _WindowError(window.text, f"an amount over {MAX_STORED_AMOUNT:,} is more than a counter holds")
            if window.seconds() > MAX_STORED_WINDOW_SECONDS:
                raise _WindowError(window.text, "a window of more than 100 years is no rate")
    except _WindowError as exc:
        return StoredRate(problem=_problem(exc, several))
    shortest: dict[int, _Written] = {}  # each length once, where it first appears, with its smallest amount
    for window in written:
        found = shortest.get(window.seconds())
        if found is None or window.amount < found.amount:
            shortest[window.seconds()] = window
    if len(shortest) > MAX_STORED_WINDOWS:
        return StoredRate(problem=f"has more than {MAX_STORED_WINDOWS} windows of different lengths")
    windows = tuple(w.item() for w in shortest.values())
    if any(w.amount == 0 for w in windows):
        return StoredRate(windows, "allows no request at all (an amount of 0)", allows_nothing=True)
    return StoredRate(windows)


def stored_rate_problem(text: str | None) -> str | None:
    """Why a key's stored ``rate_limit`` refuses every request with it; None when it works (or
    is absent: the server's ``rate_limit`` applies)."""
    return stored_rate(text).problem if text else None
