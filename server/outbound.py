"""The HTTP clients the server itself makes requests with: plugins' outside APIs, identity
issuers' keys, upstream MCP servers.

Each such client serves every caller at once, so nothing an answer sets may follow another
caller's requests: no cookie is kept or sent (a ``Cookie`` header an operator configured still
goes). An aiohttp client takes nothing from the environment (proxies, ``.netrc``); an httpx
client is given its transport, which takes no proxy from it either.
"""

from __future__ import annotations

from http.cookiejar import CookieJar, DefaultCookiePolicy
from typing import Any

import aiohttp


def client_session(**options: Any) -> aiohttp.ClientSession:
    """An aiohttp client of the server's: ``options`` as for ``aiohttp.ClientSession``."""
    return aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar(), trust_env=False, **options)


def no_cookie_jar() -> CookieJar:
    """The jar for an httpx client of the server's (its ``cookies`` option): it never holds one."""
    return CookieJar(DefaultCookiePolicy(allowed_domains=[]))  # no domain allowed: none kept, none sent
