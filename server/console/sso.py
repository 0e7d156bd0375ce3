"""Console sign-in with the company identity provider: authorization code + PKCE, done by the
server so that the page talks to its own origin only, and bound to the browser that started it.

1. ``/admin/oidc/start`` (from the console's page or the address bar only: ``Sec-Fetch-Site``)
   sends the browser to the issuer with a fresh ``state`` and PKCE challenge. The server keeps
   nothing: the state, the verifier and the expiry go to the browser in the sealed sign-in
   cookie (``binding``), for ten minutes at most.
2. ``/admin/oidc/callback`` goes on only if the browser presents a sign-in cookie holding the
   same ``state``. Before the code is spent, room is reserved for its handle (``pending``:
   bounded, refuses rather than evicts); then the code is exchanged (with the verifier) for an
   access token for ``admin_oidc_audience``, checked as the admin API will (signature,
   audience, ``admin_oidc_rule``). A token is kept under a one-time handle for sixty seconds; a
   refusal (not an admin, a refused code, the provider's error) takes no room: it is sealed
   into the cookie. Either way the browser goes to ``/admin#signin=<handle>`` with the cookie
   renewed for the handle's lifetime.
3. The page posts the handle to ``/admin/oidc/redeem`` with that cookie (and, from a browser,
   ``Sec-Fetch-Site: same-origin``); the answer is the token (kept in the page's memory, as a
   pasted admin token is) or the refusal, and the cookie is cleared.

The state of a sign-in that got a token is remembered as long as its cookie could be presented
(``spent``), so the same callback with the same cookie never makes a second handle. A sign-in
that cannot go on ends at ``/admin#error=<code>``: only codes from ``FRAGMENT_ERRORS``, which the
page turns into its own sentences; nothing from the request is ever put into the address.
Handles live in the instance that took the callback: behind a load balancer, route
``/admin/oidc/*`` of one browser to one instance (docs/console.md).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import aiohttp
import structlog
from aiohttp import web

from skywarden.server.calls.ratelimit import RateLimited, RateLimits
from skywarden.server.console.binding import SignInCookie
from skywarden.server.console.pending import Full, OnceStore
from skywarden.server.errors import (
    ADMIN_RULE_NOT_MET,
    BAD_REQUEST,
    FORBIDDEN_ORIGIN,
    IDENTITY_UNAVAILABLE,
    RATE_LIMITED,
    ApiError,
    ErrorKind,
)
from skywarden.server.http.body import BodyReader
from skywarden.server.http.client_address import client_of
from skywarden.server.http.paths import CONSOLE_PATH
from skywarden.server.http.response_body import read_response_body
from skywarden.server.http.routes import PUBLIC, add_route
from skywarden.server.identity.jwks import IssuerKeys, IssuerUnavailable
from skywarden.server.identity.service import Identity
from skywarden.server.identity.tokens import TokenRefused
from skywarden.server.jsonutil import dumps, loads_guarded
from skywarden.server.observability.audit import note, note_refusal

log = structlog.get_logger("skywarden.server")
PENDING_SECONDS = 600
HANDLE_SECONDS = 60
MAX_PER_CLIENT = 10  # handles (taken or being made) per client address (IPv6: per /64)
MAX_TOTAL = 10_000
MAX_CODE_CHARS = 2048
MAX_DETAIL_BYTES = 600  # a refusal's text, sealed into the cookie (a browser keeps 4096 bytes a cookie)
TOKEN_ANSWER_BYTES = 64 * 1024
SSO_TIMEOUT_SECONDS = 10
UNAVAILABLE_RETRY_SECONDS = 5
TIMEOUT = aiohttp.ClientTimeout(total=SSO_TIMEOUT_SECONDS)
START_PATH = CONSOLE_PATH + "/oidc/start"
CALLBACK_PATH = CONSOLE_PATH + "/oidc/callback"
REDEEM_PATH = CONSOLE_PATH + "/oidc/redeem"
NO_STORE = {"Cache-Control": "no-store"}
# Who may make the browser send each request (Fetch Metadata); a request without the header
# (another client, an older browser) is let through, and the cookie decides.
START_SITES = frozenset({"same-origin", "none"})  # the console's page, or the address bar and bookmarks
REDEEM_SITES = frozenset({"same-origin"})  # the console's page only
STARTED, FINISHED = "started", "finished"  # what a sign-in cookie holds: before and after the provider

# Every refusal a sign-in can end in, by the code the page knows it by (app.js SIGN_IN_ERRORS
# holds the page's sentence for each; a test keeps the two lists equal).
SIGN_IN_ERRORS: dict[str, str] = {
    "expired": "This sign-in expired or was already used; sign in again.",
    "other_browser": (
        "This sign-in was started in another browser, or this browser did not keep its sign-in cookie; "
        "sign in again here."
    ),
    "unavailable": "The identity provider cannot be reached; try again shortly.",
    "busy": "Too many sign-ins are in progress; try again shortly.",
    "cancelled": "The identity provider did not sign you in; sign in again.",
    "provider_error": "The identity provider refused the sign-in.",
    "code_refused": "The identity provider refused to exchange the sign-in code.",
    "token_refused": "The identity provider's token was refused.",
    "not_admin": "You are signed in, but not as a Skywarden admin.",
    "cross_site": "A sign-in can be started and finished only from the console's own page.",
}
# All that reach the address; the others travel sealed in the cookie, to their browser only.
FRAGMENT_ERRORS = frozenset({"expired", "other_browser", "unavailable", "busy", "cross_site"})
_KINDS: dict[str, ErrorKind] = {
    "not_admin": ADMIN_RULE_NOT_MET,
    "unavailable": IDENTITY_UNAVAILABLE,
    "cross_site": FORBIDDEN_ORIGIN,
}
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


def _to_console(fragment: Mapping[str, str], headers: Mapping[str, str] | None = None) -> web.Response:
    location = CONSOLE_PATH + "#" + urlencode(fragment)
    return web.Response(status=302, headers={"Location": location, **NO_STORE, **(headers or {})})


def back_with(code: str, headers: Mapping[str, str] | None = None) -> web.Response:
    """The browser back at the console with one of the codes the page knows (``FRAGMENT_ERRORS``)."""
    if code not in FRAGMENT_ERRORS:
        raise ValueError(f"{code!r} is not a code the console's page takes from its address")
    return _to_console({"error": code}, headers)


def _refused_back(request: web.Request, code: str, error: ApiError | None = None) -> web.Response:
    """A refused navigation: the browser goes back with ``code``, which the request's audit event
    records (with ``error``'s reason, and its ``Retry-After`` kept, when there is one)."""
    if error is not None:
        note_refusal(request, error)
    note(request, console_sign_in=code)
    retry = error.headers.get("Retry-After") if error is not None else None
    return back_with(code, {"Retry-After": retry} if retry else None)


def _navigating(request: web.Request) -> bool:
    return request.headers.get("Sec-Fetch-Mode") == "navigate"


def _sent_from(request: web.Request, allowed: frozenset[str]) -> bool:
    """Whether a browser says the request comes from a page ``allowed`` to make it (or says nothing)."""
    site = request.headers.get("Sec-Fetch-Site")
    return site is None or site in allowed


def _equal(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode("utf-8", "surrogatepass"), b.encode("utf-8", "surrogatepass"))


@dataclass(frozen=True, slots=True)
class Refusal:
    code: str
    detail: str

    @property
    def kind(self) -> ErrorKind:
        return _KINDS.get(self.code, BAD_REQUEST)

    def error(self, headers: dict[str, str] | None = None) -> ApiError:
        headers = dict(headers or {})
        if self.kind is IDENTITY_UNAVAILABLE:
            headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
        audit = {"console_sign_in": self.code}
        return ApiError(self.kind, self.detail, extra={"code": self.code}, headers=headers, audit=audit)


def refusal(code: str, detail: str | None = None) -> Refusal:
    return Refusal(code, detail or SIGN_IN_ERRORS[code])


class SignInFailed(Exception):
    def __init__(self, outcome: Refusal) -> None:
        super().__init__(outcome.code)
        self.refusal = outcome


def _busy(full: Full) -> ApiError:
    where = "on this server" if full.whole_store else "from your address"
    return ApiError(
        RATE_LIMITED,
        f"Too many console sign-ins are finishing {where}; retry after {full.retry_after} seconds.",
        headers={"Retry-After": str(full.retry_after)},
        extra={"code": "busy"},
        audit={"limit": "console_sign_in"},
    )


@dataclass(frozen=True, slots=True)
class SignedIn:
    token: str
    name: str


def _store(lifetime: int, per_client: int | None = None) -> Callable[[], OnceStore[Any]]:
    return lambda: OnceStore(lifetime, per_client or MAX_TOTAL, MAX_TOTAL)


@dataclass
class ConsoleSignIn:
    identity: Identity
    issuer: IssuerKeys  # whose OpenID configuration names the endpoints
    client_id: str
    client_secret: str
    cookie: SignInCookie
    body_reader: BodyReader
    limits: RateLimits  # a start and a callback count toward their address's unauthenticated budget
    # Handles of tokens, each reserved before its code is spent; taken once.
    handles: OnceStore[SignedIn | None] = field(default_factory=_store(HANDLE_SECONDS, MAX_PER_CLIENT))
    # States that are at the provider or got a token: another callback with one is a replay.
    # Only a completed sign-in keeps one, so no one else's callers can fill it.
    spent: OnceStore[None] = field(default_factory=_store(PENDING_SECONDS))
    clock: Callable[[], float] = time.time  # the sealed expiries: a cookie outlives a process

    async def _get_endpoints(self) -> dict[str, str]:
        config = await self.issuer.configuration()
        wanted = ("authorization_endpoint", "token_endpoint")
        if not all(isinstance(config.get(k), str) for k in wanted):
            raise IssuerUnavailable(f"{self.issuer.issuer}: its OpenID configuration names no code-flow endpoints")
        return {k: config[k] for k in wanted}

    @staticmethod
    def _redirect_uri(request: web.Request) -> str:
        return f"{request.scheme}://{request.host}{CALLBACK_PATH}"

    def _sealed(self, request: web.Request, kind: str, name: str, value: str) -> dict[str, Any] | None:
        """The browser's sign-in cookie of ``kind`` whose ``name`` is ``value``, if it has one."""
        for payload in self.cookie.opened(request):
            held = payload.get(name)
            if payload.get("kind") == kind and isinstance(held, str) and _equal(held, value):
                return payload
        return None

    def _expired(self, payload: dict[str, Any]) -> bool:
        expires = payload.get("expires")
        return not isinstance(expires, (int, float)) or expires <= self.clock()

    async def start(self, request: web.Request) -> web.StreamResponse:
        if not _sent_from(request, START_SITES):  # another site's page: it changes nothing in this browser
            return _refused_back(request, "cross_site", refusal("cross_site").error())
        # Nothing is kept for a start; it counts toward its address's unauthenticated budget
        # because it may make the server ask the issuer.
        try:
            await self.limits.count_unauthenticated(request.remote or "unknown")
        except RateLimited as limited:
            if not _navigating(request):
                raise
            return _refused_back(request, "busy", limited)
        try:
            endpoints = await self._get_endpoints()
        except IssuerUnavailable:  # the issuer's keys log the outage once
            return _refused_back(request, "unavailable")
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
        started = {"kind": STARTED, "state": state, "verifier": verifier, "expires": self.clock() + PENDING_SECONDS}
        cookie = self.cookie.set(request, started, PENDING_SECONDS)
        location = endpoints["authorization_endpoint"] + "?" + urlencode(query)
        return web.Response(status=302, headers={"Location": location, **cookie, **NO_STORE})

    async def callback(self, request: web.Request) -> web.StreamResponse:
        state = request.query.get("state", "")[:100]
        started = self._sealed(request, STARTED, "state", state)
        if started is None:
            if self._sealed(request, FINISHED, "state", state) is not None:
                return _refused_back(request, "expired")  # this browser has been back here already
            log.info("console sign-in callback without the starting browser's cookie; refused")
            return _refused_back(request, "other_browser")
        if self._expired(started) or state in self.spent:
            return _refused_back(request, "expired")
        query = request.query
        code = query.get("code", "")
        if "error" in query or not 0 < len(code) <= MAX_CODE_CHARS:
            return self._finished(request, state, refusal=self._provider_refusal(query))
        try:  # the code exchange asks the provider on an anonymous caller's behalf
            await self.limits.count_unauthenticated(request.remote or "unknown")
        except RateLimited as limited:
            return _refused_back(request, "busy", limited)
        if state in self.spent:  # another callback with this state went ahead meanwhile
            return _refused_back(request, "expired")
        handle, client = secrets.token_urlsafe(32), client_of(request.remote)
        try:  # room first: the code is spent only if its token can be kept
            self.handles.put(handle, None, client)
        except Full as full:
            return _refused_back(request, "busy", _busy(full))
        try:
            self.spent.put(state, None, client)
        except Full as full:
            self.handles.take(handle)
            return _refused_back(request, "busy", _busy(full))
        signed_in = None
        try:
            signed_in = SignedIn(*await self._sign_in(request, code, str(started.get("verifier"))))
        except SignInFailed as failed:
            return self._finished(request, state, refusal=failed.refusal)
        finally:
            if signed_in is None:  # a refusal, or the request ended: the room and the state go back
                self.handles.take(handle)
                self.spent.take(state)  # a replay only spends a spent code again
        if not self.handles.replace(handle, signed_in):
            log.warning("console sign-in: the handle's room lapsed during the code exchange")
            return _refused_back(request, "busy")
        return self._finished(request, state, handle=handle)

    def _finished(
        self, request: web.Request, state: str, handle: str | None = None, refusal: Refusal | None = None
    ) -> web.Response:
        """Back at the console with a handle to redeem; the cookie, renewed for as long as the
        handle lasts, names it (and carries a refusal, which the server does not keep)."""
        handle = handle or secrets.token_urlsafe(32)
        finished: dict[str, Any] = {
            "kind": FINISHED,
            "state": state,
            "handle": handle,
            "expires": self.clock() + HANDLE_SECONDS,
        }
        if refusal is not None:
            detail = _text(refusal.detail, MAX_DETAIL_BYTES).encode()[:MAX_DETAIL_BYTES].decode("utf-8", "ignore")
            finished["refusal"] = [refusal.code, detail]
        return _to_console({"signin": handle}, self.cookie.set(request, finished, HANDLE_SECONDS))

    @staticmethod
    def _provider_refusal(query: Mapping[str, str]) -> Refusal:
        """Why the provider sent the browser back without a code."""
        if "error" not in query:
            return refusal("provider_error", "The identity provider sent no usable sign-in code.")
        log.info(
            "console sign-in: the identity provider answered with an error",
            error=_text(query["error"], 100),
            error_description=_text(query.get("error_description", ""), 300),
        )
        if query["error"] == "access_denied":
            return refusal("cancelled")
        return _naming("provider_error", query["error"])

    async def _sign_in(self, request: web.Request, code: str, verifier: str) -> tuple[str, str]:
        """The admin's access token and name for ``code``, or ``SignInFailed``."""
        token = await self._exchange(request, code, verifier)
        try:
            admin, allowed = await self.identity.admin_token(token)
        except TokenRefused as exc:
            detail = f"The identity provider's token was refused: {exc.description}"
            raise SignInFailed(refusal("token_refused", detail)) from None
        except IssuerUnavailable:
            raise SignInFailed(refusal("unavailable")) from None
        if not allowed:
            log.info("console sign-in refused", **admin.identity_fields(), rule=str(self.identity.admin_rule))
            raise SignInFailed(
                refusal(
                    "not_admin",
                    f"You are signed in as {admin.name}, who is not a Skywarden admin "
                    f"({self.identity.admin_rule} is needed).",
                )
            )
        return token, admin.name  # cleaned with the token's claims (identity/claim_text)

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
                allow_redirects=False,  # a redirect would carry the code and its verifier elsewhere
            ) as resp:
                status = resp.status
                if 300 <= status < 400:
                    log.warning(
                        "console sign-in: the token endpoint answered a redirect, never followed", status=status
                    )
                    raise SignInFailed(refusal("unavailable"))
                body = loads_guarded(await read_response_body(resp, TOKEN_ANSWER_BYTES), 16)
        except (aiohttp.ClientError, TimeoutError, ValueError, IssuerUnavailable) as exc:
            log.warning("console sign-in: the token endpoint cannot be reached", error=type(exc).__name__)
            raise SignInFailed(refusal("unavailable")) from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str):
            error = body.get("error") if isinstance(body, dict) else None
            log.info("console sign-in: the token endpoint refused the code", status=status, error=_text(str(error)))
            raise SignInFailed(_naming("code_refused", error))
        return token

    async def redeem(self, request: web.Request) -> web.Response:
        if not _sent_from(request, REDEEM_SITES):
            raise refusal("cross_site").error()
        body = await self.body_reader.read_json(request)
        handle = body.get("handle") if isinstance(body, dict) else None
        if not isinstance(handle, str):
            raise refusal("expired").error()
        finished = self._sealed(request, FINISHED, "handle", handle[:100])
        if finished is None:
            log.info("console sign-in handle presented without the starting browser's cookie; refused")
            raise refusal("other_browser").error()
        used = {**self.cookie.cleared(request), **NO_STORE}
        if self._expired(finished):
            raise refusal("expired").error(used)
        refused = finished.get("refusal")
        if isinstance(refused, list) and len(refused) == 2:
            raise Refusal(str(refused[0]), str(refused[1])).error(used)
        signed_in = self.handles.take(handle[:100])
        if signed_in is None:  # redeemed already, or its sixty seconds are over
            raise refusal("expired").error(used)
        return web.Response(
            body=dumps({"access_token": signed_in.token, "name": signed_in.name}),
            content_type="application/json",
            headers=used,
        )

    def add_routes(self, app: web.Application) -> None:
        add_route(app, "GET", START_PATH, self.start, rule=PUBLIC, allow_head=True)
        add_route(app, "GET", CALLBACK_PATH, self.callback, rule=PUBLIC, allow_head=True)
        add_route(app, "POST", REDEEM_PATH, self.redeem, rule=PUBLIC)
