"""Step 8 of the request path (docs/architecture.md): authenticate every request whose route
is not public.

Run by the admission middleware (``auth/admission.py``); it sets the request state's ``principal`` or raises.

Who may call a route is its rule (``http/routes.py``): API keys open ``KEY`` routes (the tool
routes and /mcp); the admin token opens ``ADMIN`` routes (/api/admin), and it or the metrics
token ``METRICS`` (/metrics). With OpenID issuers configured (docs/identity.md), an access token
may open ``ADMIN`` routes (admin sign-in) and, in resource-server mode, ``KEY`` routes. A
credential shaped like a JWT is only ever verified as a token, and anything else only ever
looked up as a key. Every key failure is the same 401, whatever the reason (kept for the audit
log).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_plus

from aiohttp import web

from skywarden.server.auth.authenticator import Authenticator, AuthFailure
from skywarden.server.auth.credentials import AdminCredential
from skywarden.server.errors import AMBIGUOUS_CREDENTIALS, CREDENTIAL_IN_URL, UNAUTHORIZED, ApiError
from skywarden.server.http.challenges import REALM, bearer_challenge
from skywarden.server.http.routes import Access, Door, rule_of
from skywarden.server.identity.jwks import IssuerUnavailable
from skywarden.server.identity.resource import challenge
from skywarden.server.identity.service import Identity
from skywarden.server.identity.signin import admin_principal, refused, subject_principal
from skywarden.server.identity.tokens import TokenRefused, looks_like_jwt
from skywarden.server.keys import KEY_ANYWHERE, PRODUCT, display_prefix, is_well_formed, key_environment
from skywarden.server.observability.audit import note
from skywarden.server.principal import Principal
from skywarden.server.request_state import state_of

REFUSED_STATUSES = frozenset({400, 401, 403})
ADMIN_PRINCIPAL = Principal(kind="admin", id="admin", name="admin")
METRICS_PRINCIPAL = Principal(kind="metrics", id="metrics", name="metrics")
# Query parameter names that say "credential", compared lower-cased without anything but letters
# and digits (api_key, API-Key, apiKey, x-api-key, access_token, ...).
QUERY_SECRET_NAMES = frozenset(
    {
        "apikey",
        "xapikey",
        "key",
        "token",
        "accesstoken",
        "authtoken",
        "admintoken",
        "idtoken",
        "bearer",
        "authorization",
    }
)
_NOT_NAME = re.compile(r"[^a-z0-9]")


def _one(request: web.Request, header: str) -> str | None:
    values = request.headers.getall(header, ())
    if len(values) > 1:
        raise ApiError(AMBIGUOUS_CREDENTIALS, f"The {header} header appears {len(values)} times; send it once.")
    return values[0] if values else None


def bearer_token(request: web.Request) -> str | None:
    """The token of ``Authorization: Bearer``; "" for another scheme or an empty token; None if absent."""
    value = _one(request, "Authorization")
    if value is None:
        return None
    scheme, _, token = value.partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else ""


def presented_credential(request: web.Request) -> str | None:
    """The one credential of the request: ``X-API-Key`` or ``Authorization: Bearer``.

    Ambiguity is refused rather than resolved: a header given twice, or both headers given
    (even one of them empty), is a 400 that says so."""
    api_key = _one(request, "X-API-Key")
    bearer = bearer_token(request)
    if api_key is not None and bearer is not None:
        raise ApiError(
            AMBIGUOUS_CREDENTIALS,
            "Both X-API-Key and Authorization are present; send the credential in one of them.",
        )
    return api_key.strip() if api_key is not None else bearer


def credential_in_url(request: web.Request) -> bool:
    """Whether the URL holds a credential: a query parameter named for one (``QUERY_SECRET_NAMES``,
    whatever its value), or an API key anywhere in the path or the query (percent-encoded or not).
    (A value shaped like a JWT is not refused: an identity provider's sign-in ``code`` may be one.)"""
    raw = request.raw_path
    if "?" not in raw and PRODUCT not in raw and "%" not in raw:  # the usual request: nothing to look at
        return False
    if KEY_ANYWHERE.search(raw) or KEY_ANYWHERE.search(request.path):
        return True
    return any(
        _NOT_NAME.sub("", name.lower()) in QUERY_SECRET_NAMES or KEY_ANYWHERE.search(value)
        for name, value in request.rel_url.query.items()
    )


def check_credential_in_url(request: web.Request) -> None:
    """The first edge check (``auth/admission.py``), on every path, public ones, unknown ones and
    CORS preflights included: a credential in the URL is refused before anything else can echo
    the URL (an HTTPS redirect) or answer as if nothing were wrong."""
    if credential_in_url(request):
        raise ApiError(
            CREDENTIAL_IN_URL, "Credentials are never accepted in the URL; send the key in the X-API-Key header."
        )


@dataclass(frozen=True, slots=True)
class Authentication:
    """Step 8, built by the app factory with every credential it checks: ``keys`` (API keys),
    the admin token, the metrics token and, with OpenID issuers, ``identity`` (access tokens).
    Called by admission with the request; reads who may call the route from its rule
    (``http/routes.py``)."""

    keys: Authenticator
    admin: AdminCredential
    metrics: AdminCredential | None
    identity: Identity | None

    def unauthorized(self, request: web.Request, reason: str, presented: bool) -> ApiError:
        """The one 401: the same answer whatever the reason, which only the audit log keeps."""
        state_of(request).auth_failure = reason
        error = "invalid_token" if presented else None
        rule = rule_of(request)
        identity = self.identity
        if identity is not None and identity.resource_server and rule.access is not Access.ADMIN:
            www_authenticate = challenge(identity.resource_url, error)
        else:
            www_authenticate = bearer_challenge(realm=REALM, error=error)
        if rule.access is Access.ADMIN:
            detail = "A valid admin token is required (Authorization: Bearer)."
        elif rule.door is Door.JSON_RPC:
            detail = "Unauthorized: a valid API key is required (X-API-Key or Authorization: Bearer)."
        else:
            detail = "A valid credential is required (X-API-Key or Authorization: Bearer)."
        return ApiError(UNAUTHORIZED, detail, headers={"WWW-Authenticate": www_authenticate})

    async def __call__(self, request: web.Request) -> Principal | None:
        """Set (and return) the request state's ``principal``, or raise; public routes and CORS
        preflights get none."""
        if request.method == "OPTIONS":
            return None
        if isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed):
            raise request.match_info.http_exception  # a known path, a method it never takes: public knowledge
        access = rule_of(request).access
        if access is Access.PUBLIC:
            return None
        credential = presented_credential(request)
        if access is Access.METRICS:
            principal = self._metrics_principal(request, credential)
        elif access is Access.ADMIN:
            principal = await self._admin_principal(request, credential)
        elif credential and looks_like_jwt(credential):
            principal = await self._as_subject(request, credential)
        else:
            try:
                principal = await self.keys.authenticate(credential)
            except AuthFailure as failure:
                if failure.key is not None:  # a key the store knows: named as every event about a key names it
                    note(request, key_id=failure.key.id, key_prefix=failure.key.prefix)
                elif credential and failure.reason not in {"malformed", "admin_token_as_key"}:
                    note(request, key_prefix=display_prefix(credential))  # well-formed: the prefix is not secret
                raise self.unauthorized(request, failure.reason, bool(credential)) from None
        state_of(request).principal = principal
        return principal

    async def still_valid(self, request: web.Request) -> bool:
        """Whether the credential ``request`` was let in with still holds (a change stream asks
        now and then): the key, or the access token (its expiry, its issuer's keys). No use is
        counted, nothing is audited."""
        try:
            credential = presented_credential(request)
        except ApiError:
            return False
        identity = self.identity
        if credential and looks_like_jwt(credential):
            if identity is None or not identity.resource_server:
                return False
            try:
                await identity.verifier.verify(credential, identity.resource_url)
            except (TokenRefused, IssuerUnavailable):  # the client opens it again, and hears why
                return False
            return True
        return await self.keys.still_valid(credential)

    def _metrics_principal(self, request: web.Request, credential: str | None) -> Principal:
        token = bearer_token(request)
        if token and (self.admin.matches(token) or (self.metrics is not None and self.metrics.matches(token))):
            return METRICS_PRINCIPAL
        raise self.unauthorized(request, "missing" if not credential else "bad_metrics_token", bool(credential))

    async def _admin_principal(self, request: web.Request, credential: str | None) -> Principal:
        token = bearer_token(request)
        identity = self.identity
        if token and self.admin.matches(token):
            return ADMIN_PRINCIPAL
        if token and identity is not None and identity.admin_sign_in and looks_like_jwt(token):
            return await admin_principal(request, identity, token)
        raise self.unauthorized(request, "missing" if not credential else "bad_admin_token", bool(credential))

    async def _as_subject(self, request: web.Request, token: str) -> Principal:
        identity = self.identity
        if identity is None or not identity.resource_server:
            raise self.unauthorized(request, "token_not_accepted", True)
        if request.headers.get("X-API-Key") is not None:
            raise refused(
                request,
                "token_in_api_key_header",
                "Access tokens go in Authorization: Bearer, not X-API-Key.",
                challenge(identity.resource_url, "invalid_request"),
            )
        return await subject_principal(request, identity, token)

    async def note_refused_key(self, request: web.Request, error: ApiError) -> None:
        """Name the key a refused request carried, at any door and for any refusal (a key at
        the admin door or /metrics, in the URL, beside a second credential): its display
        prefix, and its id when the store knows it, as every event about a key names it (the
        leaked-key runbook looks for both). Nothing is added when authentication already named it."""
        if error.kind.status not in REFUSED_STATUSES:
            return
        try:
            event = state_of(request).audit
        except KeyError:
            return
        if "key_prefix" in event or "key_id" in event:
            return
        presented = _key_shaped(request)
        if presented is None:
            return
        known = await self.keys.known_key(presented)
        if known is not None:
            note(request, key_id=known.id, key_prefix=display_prefix(presented))
        else:
            note(request, key_prefix=display_prefix(presented))


def _key_shaped(request: web.Request) -> str | None:
    """The first well-formed API key the request carries anywhere a credential is looked for:
    ``X-API-Key``, ``Authorization: Bearer`` (every copy of either), then the URL's path and query."""
    candidates = [value.strip() for value in request.headers.getall("X-API-Key", ())]
    for value in request.headers.getall("Authorization", ()):
        scheme, _, token = value.partition(" ")
        if scheme.lower() == "bearer":
            candidates.append(token.strip())
    for part in (request.rel_url.raw_path, request.rel_url.raw_query_string):
        candidates += KEY_ANYWHERE.findall(unquote_plus(part))
    return next((c for c in candidates if is_well_formed(c) and key_environment(c) != "admin"), None)
