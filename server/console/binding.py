"""Tying a console sign-in to the browser that started it.

``/admin/oidc/start`` gives the browser a random secret in a short-lived cookie and keeps only
its SHA-256 with the pending sign-in; the callback and the handle's redemption must present the
same cookie (compared in constant time), and the redemption clears it. A callback URL or a
handle carried to another client is worth nothing there.

Over HTTPS the cookie is ``__Host-skywarden-signin``: ``Secure``, ``Path=/``, no ``Domain``,
so no other host or plain-HTTP page can set or overwrite it. Browsers refuse a ``__Host-`` (or
any ``Secure``) cookie from a plain-HTTP page, so over HTTP (a loopback development server) it is
``skywarden-signin`` with ``Path=/admin/oidc``. Both are ``HttpOnly`` (no script reads them) and
``SameSite=Lax``: sent on the provider's top-level redirect back to the callback, never on a
request another site's page makes in the background.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from http.cookies import SimpleCookie

from aiohttp import web

from skywarden.server.http.paths import CONSOLE_PATH

SECURE_NAME = "__Host-skywarden-signin"
PLAIN_NAME = "skywarden-signin"
PLAIN_PATH = CONSOLE_PATH + "/oidc"
_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")  # what secrets.token_urlsafe(32) gives


def _name_and_path(request: web.Request) -> tuple[str, str]:
    return (SECURE_NAME, "/") if request.scheme == "https" else (PLAIN_NAME, PLAIN_PATH)


def _digest(value: str) -> bytes:
    return hashlib.sha256(value.encode("ascii")).digest()


def _set_cookie(request: web.Request, value: str, max_age: int) -> dict[str, str]:
    """The ``Set-Cookie`` header for the sign-in cookie of this request's scheme."""
    name, path = _name_and_path(request)
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = path
    morsel["max-age"] = str(max_age)
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if request.scheme == "https":
        morsel["secure"] = True
    return {"Set-Cookie": morsel.OutputString()}


def bind(request: web.Request, lifetime: int) -> tuple[dict[str, str], bytes]:
    """A fresh secret for the browser (the ``Set-Cookie`` header) and what the server keeps: its hash."""
    value = secrets.token_urlsafe(32)
    return _set_cookie(request, value, lifetime), _digest(value)


def presented_by(request: web.Request, expected: bytes) -> bool:
    """Whether the request carries the cookie whose hash is ``expected``. Any other value (none,
    malformed, another sign-in's, the wrong cookie name for the scheme) is not it."""
    value = request.cookies.get(_name_and_path(request)[0], "")
    if not _VALUE.fullmatch(value):
        return False
    return hmac.compare_digest(_digest(value), expected)


def cleared(request: web.Request) -> dict[str, str]:
    """The ``Set-Cookie`` header that removes the sign-in cookie: it has been used."""
    return _set_cookie(request, "", 0)
