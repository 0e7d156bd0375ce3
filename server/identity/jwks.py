"""One issuer's OpenID configuration and signing keys: fetched, cached, refetched rarely.

An unknown key id triggers a refetch (the issuer may have rotated its keys), but at most one
per ``cooldown`` seconds and one at a time: a flood of tokens with made-up key ids costs the
issuer one request per cooldown, not one per token.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    import jwt

from skywarden.server.jsonutil import loads_guarded

MAX_DOCUMENT_BYTES = 512 * 1024
FETCH_TIMEOUT_SECONDS = 10.0


class IssuerUnavailable(Exception):
    """The issuer's configuration or keys could not be read; the message is safe to log."""


@dataclass
class IdentityHttp:
    """The one HTTP client every issuer is read through: opened on start-up, closed on clean-up."""

    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = aiohttp.ClientSession(trust_env=False, headers={"User-Agent": "skywarden"})

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def __call__(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the identity HTTP client is used before start-up")
        return self._session


@dataclass
class IssuerKeys:
    issuer: str
    http: IdentityHttp
    cooldown: float
    clock: Callable[[], float] = time.monotonic
    _keys: dict[str, jwt.PyJWK] = field(default_factory=dict)
    _configuration: dict[str, Any] | None = None
    _fetched_at: float | None = None
    _fetching: asyncio.Task | None = None

    async def configuration(self) -> dict[str, Any]:
        """The issuer's OpenID configuration (endpoints, ``jwks_uri``), read once and kept; every
        key refetch reads it anew."""
        if self._configuration is None:
            self._configuration = await self._read_configuration()
        return self._configuration

    async def key(self, kid: str) -> jwt.PyJWK | None:
        found = self._keys.get(kid)
        if found is not None:
            return found
        if self._fetched_at is None or self.clock() - self._fetched_at >= self.cooldown or self._fetching:
            await self.refresh()
        return self._keys.get(kid)

    async def refresh(self) -> None:
        """Fetch the keys now; callers that arrive meanwhile share the one fetch."""
        if self._fetching is None:
            self._fetching = asyncio.ensure_future(self._fetch())
        task = self._fetching
        try:
            await asyncio.shield(task)
        finally:
            if task.done() and self._fetching is task:
                self._fetching = None

    async def _fetch(self) -> None:
        self._fetched_at = self.clock()  # a failed fetch counts too: an unreachable issuer is not hammered
        config = self._configuration = await self._read_configuration()
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise IssuerUnavailable(f"{self.issuer}: its OpenID configuration has no jwks_uri")
        document = await self._get_json(jwks_uri)
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise IssuerUnavailable(f"{self.issuer}: its JWKS has no keys")
        self._keys = _usable_keys(keys)

    async def _read_configuration(self) -> dict[str, Any]:
        config = await self._get_json(self.issuer.rstrip("/") + "/.well-known/openid-configuration")
        if not isinstance(config, dict) or config.get("issuer") != self.issuer:
            raise IssuerUnavailable(f"{self.issuer}: its OpenID configuration names another issuer")
        return config

    async def _get_json(self, url: str) -> Any:
        try:
            async with self.http().get(
                url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS), allow_redirects=False
            ) as resp:
                body = await resp.content.read(MAX_DOCUMENT_BYTES + 1)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IssuerUnavailable(f"{self.issuer}: {url} could not be read ({type(exc).__name__})") from None
        if status != 200 or len(body) > MAX_DOCUMENT_BYTES:
            raise IssuerUnavailable(f"{self.issuer}: {url} answered HTTP {status}")
        try:
            return loads_guarded(body, 32)
        except ValueError:
            raise IssuerUnavailable(f"{self.issuer}: {url} is not JSON") from None


def _usable_keys(keys: list[Any]) -> dict[str, jwt.PyJWK]:
    """Signing keys with a key id; encryption keys and keys PyJWT cannot read are left out."""
    import jwt

    usable = {}
    for entry in keys:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in {"RSA", "EC", "OKP"}:  # never a symmetric key: no HMAC with a published key
            continue
        try:
            usable[entry["kid"]] = jwt.PyJWK(entry)
        except (jwt.PyJWKError, jwt.InvalidKeyError, ValueError, TypeError):
            continue
    return usable
