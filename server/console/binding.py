"""The console sign-in's cookie: a sign-in in progress, kept by the browser that started it.

The server keeps nothing for a sign-in in progress, so no number of callers can fill anything.
What it would have kept (the ``state``, the PKCE verifier, the expiry; later the handle and a
refusal) travels in a cookie, sealed with AES-GCM under a key derived from the server secret
(``derive_key``): the browser can neither read nor change it, and nobody without the secret can
make one. The cookie's name is bound into the seal, so a value made for one name opens under no
other.

Over HTTPS the cookie is ``__Host-skywarden-signin``: ``Secure``, ``Path=/``, no ``Domain``.
Browsers let only HTTPS pages of this host name set a cookie of that name: not another host of
the site, not a plain-HTTP page. Browsers refuse a ``Secure`` cookie on a plain-HTTP page, so over HTTP (a
loopback development server) it is ``skywarden-signin`` with ``Path=/admin/oidc``; any page of
the same host name (another port) can set that one. Both are ``HttpOnly`` and ``SameSite=Lax``.

Only a cookie of exactly that name counts. The ``Cookie`` header is read here, not through
aiohttp's ``request.cookies``, which strips Unicode whitespace from names (``U+2000__Host-…``,
which any host of the site may set, would read as ``__Host-…``) and keeps only the last of two
cookies of one name (a copy planted beside the real one would hide it). Every value of the
exact name is tried.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Iterable
from http.cookies import SimpleCookie
from typing import Any

import orjson
from aiohttp import web

from skywarden.server.http.paths import CONSOLE_PATH

SECURE_NAME = "__Host-skywarden-signin"
PLAIN_NAME = "skywarden-signin"
PLAIN_PATH = CONSOLE_PATH + "/oidc"
KEY_PURPOSE = b"skywarden console sign-in cookie v1"
NONCE_BYTES = 12
MAX_VALUE_CHARS = 3000  # a sealed value is a few hundred characters; a browser keeps 4096 bytes a cookie
_VALUE = re.compile(rf"[A-Za-z0-9_-]{{{NONCE_BYTES + 16},{MAX_VALUE_CHARS}}}")
_PAIR_SPACE = " \t"  # the only characters trimmed around a name=value pair (RFC 6265 OWS)


# cryptography is imported where it is used: a server without single sign-on never loads it.


def derive_key(server_secret: bytes) -> bytes:
    """The cookie's AES-256-GCM key: the server secret through HKDF-SHA256 with this purpose
    alone, so it is no other use's key and tells nothing about the secret."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=KEY_PURPOSE).derive(server_secret)


def cookie_name(request: web.Request) -> str:
    return SECURE_NAME if request.scheme == "https" else PLAIN_NAME


def values_named(headers: Iterable[str], name: str) -> list[str]:
    """Every value of a cookie named exactly ``name`` in these ``Cookie`` header lines, in order.
    A name that differs in any way (case, a Unicode space or format character, an encoding) is
    another cookie's."""
    found = []
    for header in headers:
        for pair in header.split(";"):
            key, equals, value = pair.strip(_PAIR_SPACE).partition("=")
            if equals and key == name:
                found.append(value)
    return found


class SignInCookie:
    """Seals a payload (a small JSON object) into the sign-in cookie and opens it again."""

    def __init__(self, key: bytes) -> None:
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        self._aead = AESGCM(key)
        self._refused = (binascii.Error, ValueError, InvalidTag)

    def __repr__(self) -> str:
        return "SignInCookie(<key>)"

    def _seal(self, name: str, payload: dict[str, Any]) -> str:
        nonce = os.urandom(NONCE_BYTES)
        sealed = nonce + self._aead.encrypt(nonce, orjson.dumps(payload), name.encode())
        return base64.urlsafe_b64encode(sealed).rstrip(b"=").decode()

    def _open(self, name: str, value: str) -> dict[str, Any] | None:
        if not _VALUE.fullmatch(value):
            return None
        try:
            sealed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
            payload = orjson.loads(self._aead.decrypt(sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], name.encode()))
        except self._refused:
            return None
        return payload if isinstance(payload, dict) else None

    def set(self, request: web.Request, payload: dict[str, Any], max_age: int) -> dict[str, str]:
        """The ``Set-Cookie`` header that gives the browser ``payload``, sealed, for ``max_age`` seconds."""
        name = cookie_name(request)
        return _set_cookie(request, name, self._seal(name, payload), max_age)

    def opened(self, request: web.Request) -> list[dict[str, Any]]:
        """The payloads of every sign-in cookie of this request's scheme that this server sealed."""
        name = cookie_name(request)
        opened = (self._open(name, value) for value in values_named(request.headers.getall("Cookie", ()), name))
        return [payload for payload in opened if payload is not None]

    def cleared(self, request: web.Request) -> dict[str, str]:
        """The ``Set-Cookie`` header that removes the sign-in cookie: it has been used."""
        return _set_cookie(request, cookie_name(request), "", 0)


def _set_cookie(request: web.Request, name: str, value: str, max_age: int) -> dict[str, str]:
    jar: SimpleCookie = SimpleCookie()
    jar[name] = value
    morsel = jar[name]
    morsel["path"] = "/" if name == SECURE_NAME else PLAIN_PATH
    morsel["max-age"] = str(max_age)
    morsel["httponly"] = True
    morsel["samesite"] = "Lax"
    if request.scheme == "https":
        morsel["secure"] = True
    return {"Set-Cookie": morsel.OutputString()}
