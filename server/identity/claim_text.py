"""The strings a verified token gives Skywarden, made safe to keep.

A signature proves who issued a token, not that its strings can be logged, stored or shown:
a JSON string may hold a lone UTF-16 surrogate, NUL or a terminal escape, and none of those
can be written to the audit log (orjson), PostgreSQL or the console. Every string a
``Principal`` takes from a token passes through ``read_claims``, and nothing else of the token
is ever written anywhere (the admin rule only compares).

- ``sub`` names the caller (its rate limit, sessions, audit events, ``created_by``): one that is
  not plain text refuses the token.
- ``scope`` / ``scp`` decide what the caller may do: a claim of the wrong type, an empty scope
  (a leading, trailing or doubled space) or a scope with an unusable character refuses the
  token. Scopes are split on the space character only (RFC 6749 section 3.3), so each is
  compared exactly as written.
- ``name``, ``preferred_username`` and ``email`` are only shown: an unusable character becomes
  U+FFFD (a space if it is a line break or tab), the text is cut to ``MAX_DISPLAY_CHARS``, and
  one that is not a string or holds nothing visible is passed over.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

MAX_SUBJECT_CHARS = 255  # OpenID Connect Core 1.0, section 2
MAX_DISPLAY_CHARS = 200
MAX_SCOPE_CHARS = 4096
REPLACEMENT = "\ufffd"
# Controls, lone surrogates, line and paragraph separators, and the bidirectional controls that
# make displayed text read other than it is stored (CVE-2021-42574).
_UNUSABLE_CATEGORIES = frozenset({"Cc", "Cs", "Zl", "Zp"})
_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


class UnusableClaim(ValueError):
    """A claim the token cannot be accepted with; the message names the claim, never its value."""


@dataclass(frozen=True, slots=True)
class TokenText:
    subject: str
    scopes: frozenset[str]
    name: str  # ``name``, else ``preferred_username``, else the subject
    email: str | None


def unusable(char: str) -> bool:
    return unicodedata.category(char) in _UNUSABLE_CATEGORIES or char in _BIDI_CONTROLS


def plain(text: str) -> bool:
    """No character that cannot be written or that changes how the text reads."""
    return text.isprintable() or not any(unusable(c) for c in text)


def display(value: Any) -> str | None:
    """A display claim as it may be shown and kept; None if it is not a string or holds nothing."""
    if not isinstance(value, str):
        return None
    text = value[:MAX_DISPLAY_CHARS]
    if not plain(text):
        text = "".join((" " if c.isspace() else REPLACEMENT) if unusable(c) else c for c in text)
    return text if text.strip() else None


def subject(claims: Mapping[str, Any]) -> str:
    value = claims.get("sub")
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_SUBJECT_CHARS or not plain(value):
        raise UnusableClaim(
            f"The access token's sub claim is not a usable subject (1 to {MAX_SUBJECT_CHARS} characters of plain text)."
        )
    return value


def scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 9068: space-separated) or, without it, ``scp`` (Entra ID: a string; Okta: a list)."""
    name = "scope" if "scope" in claims else "scp"
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        words = value.split(" ") if value else []
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        words = value
    else:
        raise UnusableClaim(
            f"The access token's {name} claim is neither a space-separated string nor a list of strings."
        )
    if sum(len(w) for w in words) > MAX_SCOPE_CHARS or not all(w and plain(w) for w in words):
        raise UnusableClaim(
            f"The access token's {name} claim holds a scope that is empty (a space too many) or not plain text."
        )
    return frozenset(words)


def read_claims(claims: Mapping[str, Any]) -> TokenText:
    """What a verified token's claims give a principal, or ``UnusableClaim``."""
    sub = subject(claims)
    return TokenText(
        subject=sub,
        scopes=scopes(claims),
        name=display(claims.get("name")) or display(claims.get("preferred_username")) or sub,
        email=display(claims.get("email")),
    )
