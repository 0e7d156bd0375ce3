"""Access-token verification: PyJWT does the cryptography and the claim checks; this module
decides what is trusted (issuers, algorithms, audiences, sizes) and names each refusal.

A token is checked in this order, and refused at the first failure: its size, its header's
algorithm (an allow-list of public-key algorithms: never ``none``, never HMAC, so a public key
can never be used as an HMAC secret), its issuer (configured ones only; the unverified ``iss``
only picks which issuer's keys to try), its key id (one of that issuer's published keys), then
the signature and ``iss``, ``aud``, ``exp``, ``nbf`` and ``iat`` with a small leeway, and last
the strings a principal takes from it (``claim_text``).
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from skywarden.server.identity.claim_text import UnusableClaim, read_claims

if TYPE_CHECKING:
    import jwt

    from skywarden.server.identity.jwks import IssuerKeys

CACHED_TOKENS = 10_000
REQUIRED_CLAIMS = ["iss", "aud", "exp", "iat", "sub"]


class TokenRefused(Exception):
    """The token is not accepted. ``reason`` goes to the audit log; ``description`` (safe, no
    token content) goes into ``WWW-Authenticate: Bearer error="invalid_token"``."""

    def __init__(self, reason: str, description: str) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description


@dataclass(frozen=True, slots=True)
class VerifiedToken:
    """A token that verified. ``subject``, ``name``, ``email`` and ``scopes`` are safe to keep and
    show (``claim_text``); ``claims`` are only ever compared, never written anywhere."""

    issuer: str
    subject: str
    name: str
    email: str | None
    scopes: frozenset[str]
    claims: Mapping[str, Any]
    expires_at: float


def looks_like_jwt(credential: str) -> bool:
    """Three base64url parts, the first a JSON object: what no API key can look like."""
    return credential.startswith("eyJ") and credential.count(".") == 2


# PyJWT's error class name -> (audit reason, description); by name, so that PyJWT (and
# cryptography, which it loads) is imported only once a token is actually verified.
_JWT_ERRORS: dict[str, tuple[str, str]] = {
    "ExpiredSignatureError": ("token_expired", "The access token has expired."),
    "ImmatureSignatureError": ("token_not_yet_valid", "The access token is not valid yet (nbf or iat)."),
    "InvalidIssuedAtError": ("token_not_yet_valid", "The access token's iat is in the future."),
    "InvalidAudienceError": ("token_audience", "The access token was not issued for this server (aud)."),
    "InvalidIssuerError": ("token_issuer", "The access token's issuer is not trusted here."),
    "InvalidSignatureError": ("token_signature", "The access token's signature does not verify."),
    "MissingRequiredClaimError": ("token_claims", "The access token lacks a required claim (iss, aud, exp, iat, sub)."),
    "InvalidSubjectError": ("token_claims", "The access token's sub claim is not a usable subject."),
    "InvalidJTIError": ("token_claims", "The access token's jti claim is not a string."),
}


_FAMILY = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}


def key_fits(key: jwt.PyJWK, alg: str) -> bool:
    """The token's algorithm is the key's declared ``alg``, or of its key type's family."""
    declared = key._jwk_data.get("alg")
    if isinstance(declared, str) and declared:
        return declared == alg
    return alg.startswith(_FAMILY.get(key.key_type or "", ()))


@dataclass
class TokenVerifier:
    issuers: Mapping[str, IssuerKeys]
    algorithms: frozenset[str]
    leeway: float
    max_bytes: int
    clock: Callable[[], float] = time.time
    _cache: OrderedDict[tuple[str, bytes], VerifiedToken] = field(default_factory=OrderedDict)

    async def verify(self, token: str, audience: str) -> VerifiedToken:
        """The token's verified claims for ``audience``, or ``TokenRefused``. ``IssuerUnavailable``
        escapes when the issuer's keys cannot be read (the caller answers 503, not 401)."""
        if len(token) > self.max_bytes:
            raise TokenRefused("token_too_large", f"The access token is larger than {self.max_bytes} bytes.")
        cache_key = (audience, hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest())
        cached = self._cache.get(cache_key)
        if cached is not None:
            if cached.expires_at + self.leeway > self.clock():
                self._cache.move_to_end(cache_key)
                return cached
            del self._cache[cache_key]
        verified = await self._verify(token, audience)
        self._cache[cache_key] = verified
        while len(self._cache) > CACHED_TOKENS:
            self._cache.popitem(last=False)
        return verified

    async def _verify(self, token: str, audience: str) -> VerifiedToken:
        import jwt

        try:
            header = jwt.get_unverified_header(token)
            unverified = jwt.decode(token, options={"verify_signature": False})
        except (jwt.PyJWTError, ValueError, TypeError):
            raise TokenRefused("token_malformed", "The access token is not a well-formed JWT.") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise TokenRefused("token_algorithm", "The access token's signature algorithm is not accepted here.")
        iss = unverified.get("iss")
        issuer = self.issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            raise TokenRefused("token_issuer", "The access token's issuer is not trusted here.")
        kid = header.get("kid")
        key = await issuer.key(kid) if isinstance(kid, str) and kid else None
        if key is None:
            raise TokenRefused("token_key", "The access token is signed with a key its issuer does not publish.")
        if not key_fits(key, alg):
            raise TokenRefused("token_algorithm", "The access token's algorithm does not match its key.")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                audience=audience,
                issuer=issuer.issuer,
                leeway=self.leeway,
                options={"require": REQUIRED_CLAIMS, "strict_aud": False},
            )
        except jwt.PyJWTError as exc:
            for error_type in type(exc).__mro__:
                if error_type.__name__ in _JWT_ERRORS:
                    raise TokenRefused(*_JWT_ERRORS[error_type.__name__]) from None
            raise TokenRefused("token_invalid", "The access token cannot be verified.") from None
        try:
            text = read_claims(claims)
        except UnusableClaim as exc:
            raise TokenRefused("token_claims", str(exc)) from None
        return VerifiedToken(
            issuer.issuer, text.subject, text.name, text.email, text.scopes, claims, _seconds(claims["exp"])
        )


def _seconds(value: Any) -> float:
    """``exp`` as PyJWT accepted it (any integer, also as a string), as a float; one past float's
    range is never."""
    try:
        return float(value)
    except (OverflowError, ValueError, TypeError):
        return math.inf
