"""One issuer's OpenID configuration and signing keys: fetched, cached, refetched rarely.

An unknown key id triggers a refetch (the issuer may have rotated its keys), but at most one
per ``cooldown`` seconds and one at a time: a flood of tokens with made-up key ids costs the
issuer one request per cooldown, not one per token. A failed fetch counts too, so an issuer
that is down is asked once per cooldown; until a fetch succeeds again, whatever needs a key or
the configuration that is not already here gets ``IssuerUnavailable`` (a 503, never a 401:
the token may well be valid), with the seconds until the next fetch. The configuration is kept
apart from the keys: once it has been read it is there, also while the JWKS cannot be read.
Whatever goes wrong in a fetch (a network error, a document in any shape, a key PyJWT cannot
read) is a failed read, never a crash and never an "unknown key".
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp
import structlog

if TYPE_CHECKING:
    import jwt

from skywarden.server.http.response_body import ResponseTooLarge, read_response_body
from skywarden.server.identity.claim_text import display
from skywarden.server.jsonutil import loads_guarded
from skywarden.server.outbound import client_session

log = structlog.get_logger("skywarden.server")
MAX_DOCUMENT_BYTES = 512 * 1024
FETCH_TIMEOUT_SECONDS = 10.0
MIN_RSA_BITS = 2048  # RFC 7518 section 3.3
LOGGED_KIDS = 20


class IssuerUnavailable(Exception):
    """The issuer's configuration or keys could not be read; the message is safe to log.
    ``retry_after``: seconds until the next fetch may be tried."""

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass
class IdentityHttp:
    """The one HTTP client every issuer is read through: opened on start-up, closed on clean-up."""

    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        self._session = client_session(headers={"User-Agent": "skywarden"})

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
    _attempted_at: float | None = None
    _failure: str | None = None  # why the last fetch failed; None once one succeeded
    _unreadable: list[str] = field(default_factory=list)  # kids of published keys left out, as last logged
    _fetching: asyncio.Task[None] | None = None

    async def configuration(self) -> dict[str, Any]:
        """The issuer's OpenID configuration (endpoints, ``jwks_uri``), read once and kept; every
        key refetch reads it anew. A JWKS that cannot be read does not keep it back."""
        if self._configuration is None:
            with contextlib.suppress(IssuerUnavailable):
                await self._refresh_when_due()
        if self._configuration is None:
            raise self._unavailable(self._failure or f"{self.issuer}: its OpenID configuration is not read yet")
        return self._configuration

    async def key(self, kid: str) -> jwt.PyJWK | None:
        """The published key ``kid``, or None if the issuer does not publish it. Raises
        ``IssuerUnavailable`` when the keys cannot be read to find out."""
        found = self._keys.get(kid)
        if found is None:
            await self._refresh_when_due()
            found = self._keys.get(kid)
        return found

    async def _refresh_when_due(self) -> None:
        """Fetch unless a fetch was tried within the cooldown; callers that arrive meanwhile share
        the one fetch. Raises ``IssuerUnavailable`` while the last fetch failed."""
        if self._fetching is None and (self._attempted_at is None or self._retry_after() <= 0):
            self._attempted_at = self.clock()
            self._fetching = asyncio.ensure_future(self._fetch())
            self._fetching.add_done_callback(self._fetched)
        if self._fetching is not None:
            await asyncio.shield(self._fetching)
        if self._failure is not None:
            raise self._unavailable(self._failure)

    def _fetched(self, task: asyncio.Task[None]) -> None:
        if self._fetching is task:
            self._fetching = None

    def _retry_after(self) -> float:
        return 0.0 if self._attempted_at is None else self._attempted_at + self.cooldown - self.clock()

    def _unavailable(self, reason: str) -> IssuerUnavailable:
        return IssuerUnavailable(reason, max(1, math.ceil(self._retry_after())))

    async def _fetch(self) -> None:
        """One fetch; its outcome is logged here, once, not by each request that waited on it."""
        try:
            self._keys = await self._read_keys()
        except Exception as exc:  # whatever it is, the keys were not read: a 503, never a 500 or a 401
            self._failure = (
                str(exc)
                if isinstance(exc, IssuerUnavailable)
                else f"{self.issuer}: its keys could not be read ({type(exc).__name__})"
            )
            log.warning(
                "identity provider unavailable", issuer=self.issuer, reason=self._failure, retry_in=self.cooldown
            )
        else:
            if self._failure is not None:
                log.info("identity provider available again", issuer=self.issuer)
            self._failure = None

    async def _read_keys(self) -> dict[str, jwt.PyJWK]:
        config = self._configuration = await self._read_configuration()
        jwks_uri = config.get("jwks_uri")
        if not isinstance(jwks_uri, str) or not jwks_uri.startswith(("https://", "http://")):
            raise IssuerUnavailable(f"{self.issuer}: its OpenID configuration has no jwks_uri")
        document = await self._get_json(jwks_uri, "its JWKS (jwks_uri)")
        keys = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(keys, list):
            raise IssuerUnavailable(f"{self.issuer}: its JWKS has no keys")
        usable, unreadable = _usable_keys(keys)
        self._note_unreadable(unreadable)
        if not usable:
            raise IssuerUnavailable(f"{self.issuer}: its JWKS holds no signing key Skywarden can use")
        return usable

    def _note_unreadable(self, kids: list[str]) -> None:
        """Log the published signing keys that are left out, once until that list changes."""
        if kids == self._unreadable:
            return
        self._unreadable = kids
        if kids:
            shown = [display(kid) or "(blank)" for kid in kids[:LOGGED_KIDS]]
            log.warning("identity provider publishes keys Skywarden cannot use", issuer=self.issuer, kids=shown)

    async def _read_configuration(self) -> dict[str, Any]:
        url = self.issuer.rstrip("/") + "/.well-known/openid-configuration"
        config = await self._get_json(url, "its OpenID configuration")
        if not isinstance(config, dict) or config.get("issuer") != self.issuer:
            raise IssuerUnavailable(f"{self.issuer}: its OpenID configuration names another issuer")
        return config

    async def _get_json(self, url: str, what: str) -> Any:
        """The JSON document at ``url``; failures name ``what``, never the URL (the issuer wrote it)."""
        try:
            async with self.http().get(
                url, timeout=aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS), allow_redirects=False
            ) as resp:
                status = resp.status
                if status != 200:
                    raise IssuerUnavailable(f"{self.issuer}: {what} answered HTTP {status}")
                body = await read_response_body(resp, MAX_DOCUMENT_BYTES)
        except ResponseTooLarge:
            raise IssuerUnavailable(f"{self.issuer}: {what} is larger than {MAX_DOCUMENT_BYTES} bytes") from None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:  # ValueError: a URL that is no URL
            raise IssuerUnavailable(f"{self.issuer}: {what} could not be read ({type(exc).__name__})") from None
        try:
            return loads_guarded(body, 32)
        except ValueError:
            raise IssuerUnavailable(f"{self.issuer}: {what} is not JSON") from None


def _usable_keys(keys: list[Any]) -> tuple[dict[str, jwt.PyJWK], list[str]]:
    """Signing keys with a key id, and the key ids of signing keys that cannot be used: PyJWT
    cannot read them (whatever it raises), they hold a private key, or an RSA key is under
    ``MIN_RSA_BITS``. Encryption keys (``use`` other than ``sig``) and symmetric keys are left
    out without a word. ``key_ops`` is not read: issuers publish the private key's ``["sign"]``
    on the public one (oidc-provider does)."""
    import jwt
    from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa

    public_types = (rsa.RSAPublicKey, ec.EllipticCurvePublicKey, ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)

    usable = {}
    unreadable = []
    for entry in keys:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or entry.get("use", "sig") != "sig":
            continue
        if entry.get("kty") not in ("RSA", "EC", "OKP"):  # never a symmetric key: no HMAC with a published key
            continue
        try:
            key = jwt.PyJWK(entry)
            if not isinstance(key.key, public_types):
                raise ValueError("not a public key")
            if isinstance(key.key, rsa.RSAPublicKey) and key.key.key_size < MIN_RSA_BITS:
                raise ValueError("RSA key too short")
        except Exception:  # PyJWT raises what it likes for what it cannot read (NotImplementedError for alg none)
            unreadable.append(entry["kid"])
            continue
        usable[entry["kid"]] = key
    return usable, unreadable
