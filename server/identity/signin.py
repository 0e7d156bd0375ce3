"""From a presented access token to a Principal, or the refusal each door answers with.

Called by the auth middleware for the admin API (admin sign-in) and for the tool doors
(resource-server mode). Refusals are 401 with ``WWW-Authenticate: Bearer error="invalid_token"``
and a description of what was wrong (never the token), 403 when a valid token lacks what the
request needs, and 503 when the issuer's keys cannot be read.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

from skywarden.server.errors import ADMIN_RULE_NOT_MET, IDENTITY_UNAVAILABLE, UNAUTHORIZED, ApiError
from skywarden.server.http.challenges import REALM, bearer_challenge
from skywarden.server.identity.jwks import IssuerUnavailable
from skywarden.server.identity.resource import challenge
from skywarden.server.identity.service import Identity
from skywarden.server.identity.tokens import TokenRefused
from skywarden.server.principal import Principal
from skywarden.server.request_state import state_of

T = TypeVar("T")


def refused(request: web.Request, reason: str, description: str, www_authenticate: str) -> ApiError:
    state_of(request).auth_failure = reason
    return ApiError(UNAUTHORIZED, description, headers={"WWW-Authenticate": www_authenticate})


async def _checked(request: web.Request, verification: Awaitable[T], challenge_for: Callable[[str], str]) -> T:
    """``verification``'s result, or the door's answer: 401 with ``challenge_for(description)``
    for a refused token, 503 when the issuer cannot be read."""
    try:
        return await verification
    except TokenRefused as exc:
        raise refused(request, exc.reason, exc.description, challenge_for(exc.description)) from None
    except IssuerUnavailable as exc:
        # A 503, not a 401 (the credential may be valid, and a 401 sends clients back to sign in),
        # not counted as a wrong credential; Retry-After says when the issuer will be asked again.
        # The failed fetch itself is logged once (``jwks``).
        state_of(request).auth_failure = "identity_unavailable"
        raise ApiError(
            IDENTITY_UNAVAILABLE,
            f"The identity provider's signing keys cannot be read right now; try again in {exc.retry_after} seconds.",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None


def admin_challenge(description: str | None = None) -> str:
    return bearer_challenge(realm=REALM, error="invalid_token", description=description)


async def admin_principal(request: web.Request, identity: Identity, token: str) -> Principal:
    """An admin signed in with an access token for ``admin_oidc_audience`` meeting ``admin_oidc_rule``."""
    principal, allowed = await _checked(request, identity.admin_token(token), admin_challenge)
    if not allowed:
        state_of(request).auth_failure = "admin_rule"
        raise ApiError(
            ADMIN_RULE_NOT_MET,
            f"The access token is valid but does not grant admin rights: it needs {identity.admin_rule}.",
            audit=principal.identity_fields(),
        )
    return principal


async def subject_principal(request: web.Request, identity: Identity, token: str) -> Principal:
    """A caller of the tool doors with an access token for ``oauth_resource_url``."""
    resource = identity.resource_url
    verified = await _checked(
        request,
        identity.verifier.verify(token, resource),
        lambda text: challenge(resource, "invalid_token", text),
    )
    return identity.subject(verified)
