"""Rates in the ``limits`` notation: the one parser for every rate Skywarden accepts.

The settings (``rate_limit``, ``oauth_rate_limit``, ``auth_failure_limit``,
``unauthenticated_limit``), a key's own ``rate_limit`` (admin API and CLI) and the rate limiter
all read a rate through ``parse_rate``. A rate is one or more windows separated by ``;`` (or
``,`` or ``|``), each ``<amount>/<unit>``, ``<amount>/<count> <unit>`` or ``<amount> per <count>
<unit>``; units ``second``, ``minute``, ``hour``, ``day``, ``month`` (30 days) or ``year`` (360
days), singular or plural, any case. ``limits.parse_many`` alone reads ``1/0second`` as one a
second and ``0/second`` as a limit that refuses everything; here every window must make sense:

- the amount is a whole number from 1 to 1,000,000,000;
- the count, when given, is at least 1;
- a window lasts at most 366 days;
- at most 8 windows, no two of the same length, and at most 200 characters in all.
"""

from __future__ import annotations

import re

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

_WINDOW = re.compile(r"\s*([0-9]+)\s*(?:/|\s+per\s+)\s*([0-9]+)?\s*([a-z]+)\s*", re.ASCII | re.IGNORECASE)
_SEPARATOR = re.compile(r"[;,|]")
EXAMPLE = "'120/minute' or '10/second;1000/day'"


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
        windows = tuple(_window(part) for part in parts)
    except _WindowError as exc:
        raise ValueError(f"{exc.part!r}: {exc}" if len(parts) > 1 else str(exc)) from None
    lengths = [w.get_expiry() for w in windows]
    if len(set(lengths)) != len(lengths):
        raise ValueError("must not give two windows of the same length")
    return windows


class _WindowError(ValueError):
    def __init__(self, part: str, problem: str) -> None:
        super().__init__(problem)
        self.part = part


def _window(part: str) -> RateLimitItem:
    shown = part.strip()
    if not shown:
        raise ValueError("has an empty window (two separators in a row, or one at an end)")
    match = _WINDOW.fullmatch(part)
    if match is None:
        raise _WindowError(shown, f"is not a rate; write it as {EXAMPLE}")
    amount, count, word = int(match[1]), int(match[2] or 1), match[3].lower()
    kind = UNITS.get(word) or UNITS.get(word.removesuffix("s"))
    if kind is None:
        raise _WindowError(shown, f"unknown unit {match[3]!r}; use {', '.join(UNITS)}")
    if not 1 <= amount <= MAX_AMOUNT:
        raise _WindowError(shown, f"the amount must be a whole number from 1 to {MAX_AMOUNT:,}")
    if count < 1:
        raise _WindowError(shown, f"a window of 0 {kind.GRANULARITY.name}s is no window; give a count of at least 1")
    if count * kind.GRANULARITY.seconds > MAX_WINDOW_SECONDS:
        raise _WindowError(shown, f"a window may last at most {MAX_WINDOW_SECONDS // 86400} days")
    return kind(amount, count)
