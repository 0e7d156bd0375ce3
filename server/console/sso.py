"""Console sign-in with the company identity provider: authorization code + PKCE, done by the
server so that the page talks to its own origin only, and bound to the browser that started it
(``binding``).

1. ``/admin/oidc/start`` sends the browser to the issuer with a fresh ``state`` and PKCE
   challenge, and gives the browser a sign-in cookie. The server keeps the verifier and the
   cookie's hash, ten minutes at most (``pending``: bounded, refuses rather than evicts).
2. ``/admin/oidc/callback`` goes on only if the browser presents that cookie. It exchanges the
   code (with the verifier) for an access token for ``admin_oidc_audience``, checks it as the
   admin API will (signature, audience, ``admin_oidc_rule``) and sends the browser back to
   ``/admin#signin=<handle>``: a one-time handle, good for sixty seconds, for the outcome
   (the token, or why there is none), never the token itself.
3. The page posts the handle to ``/admin/oidc/redeem`` with the same cookie (and, from a
   browser, ``Sec-Fetch-Site: same-origin``); the answer is the token (kept in the page's
   memory, as a pasted admin token is) or a problem naming the refusal, and the cookie is
   cleared.

A sign-in the server cannot tie to the browser ends at ``/admin#error=<code>``: only codes from
``FRAGMENT_ERRORS``, which the page turns into its own sentences; nothing from the request is
ever put into the address. Pending sign-ins and handles live in this process; behind a load
balancer, route ``/admin/oidc/*`` of one browser to one instance (docs/console.md).
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass, field
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from skywarden.server.appkeys import LIMITER
from skywarden.server.console import binding
from skywarden.server.console.pending import Full, OnceStore, client_of
from skywarden.server.errors import (
    ADMIN_RULE_NOT_MET,
    BAD_REQUEST,
    FORBIDDEN_ORIGIN,
    IDENTITY_UNAVAILABLE,
    RATE_LIMITED,
    ApiError,
    ErrorKind,
)
from skywarden.server.http.body import read_json
from skywarden.server.http.paths import CONSOLE_PATH
from skywarden.server.identity.jwks import IssuerKeys, IssuerUnavailable
from skywarden.server.identity.service import Identity
from skywarden.server.identity.tokens import TokenRefused
from skywarden.server.jsonutil import dumps, loads_guarded

log = structlog.get_logger("skywarden.server")
PENDING_SECONDS = 600
HANDLE_SECONDS = 60
MAX_PER_CLIENT = 10  # live pending sign-ins (and handles) per client address (IPv6: per /64)
MAX_TOTAL = 10_000
SSO_TIMEOUT_SECONDS = 10
UNAVAILABLE_RETRY_SECONDS = 5
TIMEOUT = aiohttp.ClientTimeout(total=SSO_TIMEOUT_SECONDS)
START_PATH = CONSOLE_PATH + "/oidc/start"
CALLBACK_PATH = CONSOLE_PATH + "/oidc/callback"
REDEEM_PATH = CONSOLE_PATH + "/oidc/redeem"
NO_STORE = {"Cache-Control": "no-store"}

# Every refusal a sign-in can end in, by the code the page knows it by (app.js SIGN_IN_ERRORS
# holds the page's sentence for each; a test keeps the two lists equal).
SIGN_IN_ERRORS: dict[str, str] = {
    "expired": "This sign-in expired or was already used; sign in again.",
    "other_browser": (
        "This sign-in was started in another browser, or this browser did not keep its sign-in cookie; "
        "sign in again here."
    ),
    "unavailable": "The identity provider cannot be reached; try again shortly.",
    "busy": "Too many sign-ins are finishing at once; try again shortly.",
    "cancelled": "The identity provider did not sign you in; sign in again.",
    "provider_error": "The identity provider refused the sign-in.",
    "code_refused": "The identity provider refused to exchange the sign-in code.",
    "token_refused": "The identity provider's token was refused.",
    "not_admin": "You are signed in, but not as a Skywarden admin.",
    "cross_site": "Only the console's own page can finish a sign-in.",
}
FRAGMENT_ERRORS = frozenset({"expired", "other_browser", "unavailable", "busy"})  # all that reach the address
# OAuth 2.0 and OpenID Connect error codes (RFC 6749, OpenID Connect Core, RFC 8707): the only
# part of a provider's error the server repeats, and only when it is one of these.
KNOWN_PROVIDER_ERRORS = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "unsupported_response_type",
        "invalid_scope",
        "invalid_target",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
        "interaction_required",
        "login_required",
        "account_selection_required",
        "consent_required",
        "invalid_request_uri",
        "invalid_request_object",
        "request_not_supported",
        "request_uri_not_supported",
        "registration_not_supported",
    }
)


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _text(value: str, limit: int = 200) -> str:
    """Text from a token or provider made safe to encode: no lone surrogates, bounded length."""
    return value[:limit].encode("utf-8", "replace").decode("utf-8")


def _naming(code: str, provider_error: object) -> Refusal:
    """A refusal that repeats the provider's error code, if it is a known one (never its free text)."""
    detail = SIGN_IN_ERRORS[code]
    if isinstance(provider_error, str) and provider_error in KNOWN_PROVIDER_ERRORS:
        detail = f"{detail[:-1]} ({provider_error})."
    return refusal(code, detail)


def _to_console(**fragment: str) -> web.Response:
    return web.Response(status=302, headers={"Location": CONSOLE_PATH + "#" + urlencode(fragment), **NO_STORE})


def _back_with(code: str) -> web.Response:
    """The browser back at the console with one of the codes the page knows."""
    assert code in FRAGMENT_ERRORS
    return _to_console(error=code)


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    detail: str
    kind: ErrorKind = BAD_REQUEST

    def error(self, headers: dict[str, str] | None = None) -> ApiError:
        headers = dict(headers or {})
        if self.kind is IDENTITY_UNAVAILABLE:
            headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
        audit = {"console_sign_in": self.code}
        return ApiError(self.kind, self.detail, extra={"code": self.code}, headers=headers, audit=audit)


def refusal(code: str, detail: str | None = None, kind: ErrorKind = BAD_REQUEST) -> Refusal:
    return Refusal(code, detail or SIGN_IN_ERRORS[code], kind)


class SignInFailed(Exception):
    def __init__(self, outcome: Refusal) -> None:
        super().__init__(outcome.code)
        self.refusal = outcome


def _busy(full: Full) -> ApiError:
    where = "on this server" if full.whole_store else "from your address"
    return ApiError(
        RATE_LIMITED,
        f"Too many console sign-ins are in progress {where}; retry after {full.retry_after} seconds.",
        headers={"Retry-After": str(full.retry_after)},
        extra={"code": "busy"},
        audit={"limit": "console_sign_in"},
    )


@dataclass(frozen=True, slots=True)
class Pending:
    verifier: str
    binding: bytes  # the hash of the browser's sign-in cookie


@dataclass(frozen=True, slots=True)
class Outcome:
    binding: bytes
    token: str | None = None
    name: str = ""
    refused: Refusal | None = None


@dataclass
class ConsoleSignIn:
    identity: Identity
    issuer: IssuerKeys  # whose OpenID configuration names the endpoints
    client_id: str
    client_secret: str
    pending: OnceStore[Pending] = field(default_factory=lambda: OnceStore(PENDING_SECONDS, MAX_PER_CLIENT, MAX_TOTAL))
    handles: OnceStore[Outcome] = field(default_factory=lambda: OnceStore(HANDLE_SECONDS, MAX_PER_CLIENT, MAX_TOTAL))

    async def _get_endpoints(self) -> dict[str, str]:
        config = await self.issuer.configuration()
        wanted = ("authorization_endpoint", "token_endpoint")
        if not all(isinstance(config.get(k), str) for k in wanted):
            raise IssuerUnavailable(f"{self.issuer.issuer}: its OpenID configuration names no code-flow endpoints")
        return {k: config[k] for k in wanted}

    @staticmethod
    def _redirect_uri(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{CALLBACK_PATH}"

    async def start(self, request: web.Request) -> web.StreamResponse:
        # Each start holds a pending sign-in for ten minutes: anonymous callers draw on their
        # address's unauthenticated budget, and a full store refuses the newcomer (429) rather
        # than dropping anyone's pending sign-in.
        await request.app[LIMITER].count_unauthenticated(request.remote or "unknown")
        client = client_of(request.remote)
        try:
            self.pending.check_room(client)  # before the provider is asked anything
        except Full as full:
            raise _busy(full) from None
        try:
            endpoints = await self._get_endpoints()
        except IssuerUnavailable:  # the issuer's keys log the outage once
            return _back_with("unavailable")
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        query = {
            "response_type": "code",
            "client_id": self.client_id,
            "redirect_uri": self._redirect_uri(request),
            "scope": "openid profile email",
            "state": state,
            "code_challenge": _challenge(verifier),
            "code_challenge_method": "S256",
            "resource": self.identity.admin_audience,
        }
        cookie, digest = binding.bind(request, PENDING_SECONDS)
        try:
            self.pending.put(state, Pending(verifier, digest), client)
        except Full as full:  # others started while the configuration was read
            raise _busy(full) from None
        location = endpoints["authorization_endpoint"] + "?" + urlencode(query)
        return web.Response(status=302, headers={"Location": location, **cookie, **NO_STORE})

    async def callback(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")[:100]
        found = self.pending.peek(state)
        if found is None:
            return _back_with("expired")
        if not binding.presented_by(request, found.binding):
            # Left in place: the browser that started this sign-in may still finish it.
            log.info("console sign-in callback without the starting browser's cookie; refused")
            return _back_with("other_browser")
        self.pending.take(state)
        try:
            outcome = Outcome(found.binding, *await self._sign_in(request, found.verifier))
        except SignInFailed as failed:
            outcome = Outcome(found.binding, refused=failed.refusal)
        handle = secrets.token_urlsafe(32)
        try:
            self.handles.put(handle, outcome, client_of(request.remote))
        except Full:
            return _back_with("busy")
        return _to_console(signin=handle)

    async def _sign_in(self, request: web.Request, verifier: str) -> tuple[str, str]:
        """The admin's access token and name, or ``SignInFailed``."""
        query = request.query
        if "error" in query:
            log.info(
                "console sign-in: the identity provider answered with an error",
                error=_text(query["error"], 100),
                error_description=_text(query.get("error_description", ""), 300),
            )
            if query["error"] == "access_denied":
                raise SignInFailed(refusal("cancelled"))
            raise SignInFailed(_naming("provider_error", query["error"]))
        code = query.get("code", "")
        if not code or len(code) > 2048:
            raise SignInFailed(refusal("provider_error", "The identity provider sent no sign-in code."))
        token = await self._exchange(request, code, verifier)
        try:
            admin, allowed = await self.identity.admin_token(token)
        except TokenRefused as exc:
            detail = f"The identity provider's token was refused: {exc.description}"
            raise SignInFailed(refusal("token_refused", detail)) from None
        except IssuerUnavailable:
            raise SignInFailed(refusal("unavailable", kind=IDENTITY_UNAVAILABLE)) from None
        if not allowed:
            log.info("console sign-in refused", **admin.identity_fields(), rule=str(self.identity.admin_rule))
            raise SignInFailed(
                refusal(
                    "not_admin",
                    f"You are signed in as {_text(admin.name)}, who is not a Skywarden admin "
                    f"({self.identity.admin_rule} is needed).",
                    ADMIN_RULE_NOT_MET,
                )
            )
        return token, _text(admin.name)

    async def _exchange(self, request: web.Request, code: str, verifier: str) -> str:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._redirect_uri(request),
            "code_verifier": verifier,
            "client_id": self.client_id,
            "resource": self.identity.admin_audience,
        }
        headers = {}
        if self.client_secret:
            basic = base64.b64encode(f"{self.client_id}:{self.client_secret}".encode()).decode()
            headers["Authorization"] = f"Basic {basic}"
        try:
            endpoints = await self._get_endpoints()
            async with self.identity.http().post(
                endpoints["token_endpoint"],
                data=form,
                headers=headers,
                timeout=TIMEOUT,
            ) as resp:
                body = loads_guarded(await resp.content.read(64 * 1024), 16)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError, IssuerUnavailable) as exc:
            log.warning("console sign-in: the token endpoint cannot be reached", error=type(exc).__name__)
            raise SignInFailed(refusal("unavailable", kind=IDENTITY_UNAVAILABLE)) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str):
            error = body.get("error") if isinstance(body, dict) else None
            log.info("console sign-in: the token endpoint refused the code", status=status, error=_text(str(error)))
            raise SignInFailed(_naming("code_refused", error))
        return token

    async def redeem(self, request: web.Request) -> web.Response:
        # A browser says who made the request (Fetch Metadata); only the console's own page may.
        if request.headers.get("Sec-Fetch-Site", "same-origin") != "same-origin":
            raise refusal("cross_site", kind=FORBIDDEN_ORIGIN).error()
        body = await read_json(request)
        handle = body.get("handle") if isinstance(body, dict) else None
        found = self.handles.peek(handle[:100]) if isinstance(handle, str) else None
        if found is None:
            raise refusal("expired").error()
        if not binding.presented_by(request, found.binding):
            log.info("console sign-in handle presented without the starting browser's cookie; refused")
            raise refusal("other_browser").error()
        self.handles.take(handle[:100])
        used = {**binding.cleared(request), **NO_STORE}
        if found.refused is not None:
            raise found.refused.error(used)
        return web.Response(
            body=dumps({"access_token": found.token, "name": found.name}), content_type="application/json", headers=used
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(START_PATH, self.start)
        app.router.add_get(CALLBACK_PATH, self.callback)
        app.router.add_post(REDEEM_PATH, self.redeem)
