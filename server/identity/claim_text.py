"""The strings a verified token gives Skywarden, made safe to keep.

A signature proves who issued a token, not that its strings can be logged, stored or shown:
a JSON string may hold a lone UTF-16 surrogate, NUL, a terminal escape, or characters that
show nothing at all (zero-width spaces, tag characters, fillers), and none of those can be
written to the audit log (orjson), PostgreSQL or the console, or read there as stored. Every
string a ``Principal`` takes from a token passes through ``read_claims``, and nothing else of
the token is ever written anywhere (the admin rule only compares).

*Plain* text holds no ``unusable`` character; *visible* text holds at least one character that
shows (a letter, digit, punctuation mark or symbol that is not a filler).

- ``sub`` names the caller (its rate limit, sessions, audit events, ``created_by``): one that is
  not plain and visible refuses the token.
- ``scope`` / ``scp`` decide what the caller may do: a claim of the wrong type (``scope`` is a
  string, RFC 9068; ``scp`` a string or, as Okta writes it, a list of strings), an empty scope
  (a leading, trailing or doubled space) or a scope that is not plain and visible refuses the
  token. Scopes are split on the space character only (RFC 6749 section 3.3, ``words``), so
  each is compared exactly as written.
- ``name``, ``preferred_username`` and ``email`` are only shown: one that is not a string or
  is not visible is passed over; otherwise an unusable character becomes U+FFFD (a space if it
  is a line break or tab; a zero-width joiner inside an emoji sequence is kept) and the text is
  cut to ``MAX_DISPLAY_CHARS``.
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
# Controls (Cc), format characters (Cf: zero-width spaces and joiners, the bidirectional controls
# of CVE-2021-42574, tag characters, the soft hyphen, the BOM, U+2060-206F), lone surrogates
# (Cs), private-use (Co) and unassigned (Cn) code points, line and paragraph separators.
_UNUSABLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
# Letters and symbols that show as blank space: the Hangul fillers (Default_Ignorable_Code_Point,
# yet category Lo) and the blank Braille pattern.
FILLERS = frozenset("\u115f\u1160\u3164\uffa0\u2800")
_SHOWN_CATEGORIES = frozenset("LNPS")  # letters, numbers, punctuation, symbols
ZWJ = "\u200d"
EMOJI_STYLE = "\ufe0f"  # variation selector 16


class UnusableClaim(ValueError):
    """A claim the token cannot be accepted with; the message names the claim, never its value."""


@dataclass(frozen=True, slots=True)
class TokenText:
    subject: str
    scopes: frozenset[str]
    name: str  # ``name``, else ``preferred_username``, else the subject
    email: str | None


def unusable(char: str) -> bool:
    return unicodedata.category(char) in _UNUSABLE_CATEGORIES or char in FILLERS


def plain(text: str) -> bool:
    """No character that cannot be written, that changes how the text reads or that shows nothing."""
    if text.isascii():
        return text.isprintable()  # in ASCII only the controls are unusable
    return not any(unusable(c) for c in text)


def visible(text: str) -> bool:
    """At least one character that shows: not only spaces, marks (a variation selector alone),
    fillers or unusable characters."""
    return any(unicodedata.category(c)[0] in _SHOWN_CATEGORIES and c not in FILLERS for c in text)


def words(value: str) -> list[str]:
    """A space-separated claim (``scope``, ``scp``, a string the admin rule looks into) split on
    the space character only: a leading, trailing or doubled space gives an empty word."""
    return value.split(" ") if value else []


def display(value: Any) -> str | None:
    """A display claim as it may be shown and kept; None if it is not a string or shows nothing."""
    if not isinstance(value, str):
        return None
    text = value[:MAX_DISPLAY_CHARS]
    if not visible(text):
        return None
    if not plain(text):
        text = "".join(
            (" " if c.isspace() else REPLACEMENT) if unusable(c) and not _joins_emoji(text, i) else c
            for i, c in enumerate(text)
        )
    return text


def _joins_emoji(text: str, at: int) -> bool:
    """A zero-width joiner between two emoji (👩‍💻, 🏳️‍🌈) only builds a picture: kept in shown text."""
    if text[at] != ZWJ or at == 0 or at + 1 == len(text):
        return False
    before = text[at - 2] if text[at - 1] == EMOJI_STYLE and at > 1 else text[at - 1]
    return unicodedata.category(before) in ("So", "Sk") and unicodedata.category(text[at + 1]) == "So"


def subject(claims: Mapping[str, Any]) -> str:
    value = claims.get("sub")
    if not isinstance(value, str) or len(value) > MAX_SUBJECT_CHARS or not plain(value) or not visible(value):
        raise UnusableClaim(
            f"The access token's sub claim is not a usable subject (1 to {MAX_SUBJECT_CHARS} characters "
            "of plain text, at least one of them visible)."
        )
    return value


def scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    """``scope`` (RFC 9068: a space-separated string) or, without it, ``scp`` (Entra ID: such a
    string; Okta: a list of strings)."""
    name = "scope" if "scope" in claims else "scp"
    value = claims.get(name)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        scope_list = words(value)
    elif name == "scp" and isinstance(value, list) and all(isinstance(v, str) for v in value):
        scope_list = value
    elif name == "scope":
        raise UnusableClaim("The access token's scope claim is not a space-separated string.")
    else:
        raise UnusableClaim("The access token's scp claim is neither a space-separated string nor a list of strings.")
    if sum(len(w) for w in scope_list) > MAX_SCOPE_CHARS or not all(plain(w) and visible(w) for w in scope_list):
        raise UnusableClaim(
            f"The access token's {name} claim holds a scope that is empty (a space too many) "
            "or not plain, visible text."
        )
    return frozenset(scope_list)


def read_claims(claims: Mapping[str, Any]) -> TokenText:
    """What a verified token's claims give a principal, or ``UnusableClaim``."""
    sub = subject(claims)
    return TokenText(
        subject=sub,
        scopes=scopes(claims),
        name=display(claims.get("name")) or display(claims.get("preferred_username")) or sub,
        email=display(claims.get("email")),
    )
