"""Key store URLs as messages may show them: never with a password."""

from __future__ import annotations

import re

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")
UNPARSEABLE = "(a URL that does not parse)"
_PASSWORD_PARAMETER = re.compile(r"(?<=[?&])password=([^&]*)", re.IGNORECASE)


def display_url(database_url: str) -> str:
    """The URL without its password (in the user part or a ``password=`` parameter); a SQLite
    store as its path. Read by hand rather than with ``urlsplit``, which a password holding
    ``/``, ``?``, ``#`` or ``@`` would mislead into showing part of it."""
    if database_url.startswith(SQLITE_SCHEME):
        return database_url.removeprefix(SQLITE_SCHEME)
    scheme, sep, rest = database_url.partition("://")
    if not sep:
        return UNPARSEABLE
    userinfo, at, tail = _PASSWORD_PARAMETER.sub("", rest).rpartition("@")
    location, _, query = tail.partition("?")
    kept = "&".join(p for p in query.split("&") if p)
    user = userinfo.split(":", 1)[0] + "@" if at else ""
    return f"{scheme}://{user}{location}" + (f"?{kept}" if kept else "")


def url_passwords(database_url: str) -> list[str]:
    """The passwords a URL holds (after ``user:`` and in ``password=``), to keep them out of messages."""
    rest = database_url.partition("://")[2]
    found = [m.group(1) for m in _PASSWORD_PARAMETER.finditer(rest)]
    userinfo, at, _ = _PASSWORD_PARAMETER.sub("", rest).rpartition("@")
    if at and ":" in userinfo:
        found.append(userinfo.split(":", 1)[1])
    return [p for p in found if p]
