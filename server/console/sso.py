"""Console sign-in with the company identity provider: authorization code + PKCE, done by the
server so that the page talks to its own origin only.

1. ``/admin/oidc/start`` sends the browser to the issuer with a fresh ``state`` and PKCE
   challenge (the verifier stays here, ten minutes at most).
2. ``/admin/oidc/callback`` exchanges the code (with the verifier) for an access token for
   ``admin_oidc_audience``, checks it as the admin API will (signature, audience,
   ``admin_oidc_rule``) and sends the browser back to ``/admin#signin=<handle>``: a one-time
   handle, good for sixty seconds, never the token.
3. The page posts the handle to ``/admin/oidc/redeem`` and keeps the token in memory, as it
   keeps a pasted admin token.

Pending sign-ins and handles live in this process, bounded; behind a load balancer, route
``/admin/oidc/*`` of one browser to one instance (docs/console.md).
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
from skywarden.server.errors import BAD_REQUEST, ApiError
from skywarden.server.http.body import read_json
from skywarden.server.http.paths import CONSOLE_PATH
from skywarden.server.identity.jwks import IssuerKeys, IssuerUnavailable
from skywarden.server.identity.service import Identity
from skywarden.server.identity.signin import identity_unavailable
from skywarden.server.identity.tokens import TokenRefused
from skywarden.server.jsonutil import dumps, loads_guarded
from skywarden.tools.upstream import TTLCache

log = structlog.get_logger("skywarden.server")
PENDING_SECONDS = 600
HANDLE_SECONDS = 60
MAX_PENDING = 1000
SSO_TIMEOUT_SECONDS = 10
TIMEOUT = aiohttp.ClientTimeout(total=SSO_TIMEOUT_SECONDS)
START_PATH = CONSOLE_PATH + "/oidc/start"
CALLBACK_PATH = CONSOLE_PATH + "/oidc/callback"
REDEEM_PATH = CONSOLE_PATH + "/oidc/redeem"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def _back(error: str) -> web.HTTPFound:
    return web.HTTPFound(CONSOLE_PATH + "#" + urlencode({"error": error[:300]}))


@dataclass
class ConsoleSignIn:
    identity: Identity
    issuer: IssuerKeys  # whose OpenID configuration names the endpoints
    client_id: str
    client_secret: str
    pending: TTLCache = field(default_factory=lambda: TTLCache(MAX_PENDING))  # state -> PKCE verifier
    handles: TTLCache = field(default_factory=lambda: TTLCache(MAX_PENDING))  # handle -> (token, name)

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
        # address's unauthenticated budget, so one address cannot push out everyone else's.
        await request.app[LIMITER].count_unauthenticated(request.remote or "unknown")
        try:
            endpoints = await self._get_endpoints()
        except IssuerUnavailable as exc:
            raise identity_unavailable(exc, "configuration") from None
        state, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        self.pending.put(state, verifier, PENDING_SECONDS)
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
        raise web.HTTPFound(endpoints["authorization_endpoint"] + "?" + urlencode(query))

    async def callback(self, request: web.Request) -> web.StreamResponse:
        verifier = self.pending.take(request.query.get("state", "")[:100])
        if verifier is None:
            raise _back("this sign-in expired or was already used; start again")
        if "error" in request.query:
            raise _back(
                f"the identity provider said: {request.query.get('error_description') or request.query['error']}"
            )
        code = request.query.get("code", "")
        if not code or len(code) > 2048:
            raise _back("the identity provider sent no code")
        token = await self._exchange(request, code, verifier)
        try:
            admin, allowed = await self.identity.admin_token(token)
        except TokenRefused as exc:
            raise _back(f"the identity provider's token was refused: {exc.description}") from None
        except IssuerUnavailable:
            raise _back("the identity provider's keys cannot be read; try again shortly") from None
        if not allowed:
            log.info("console sign-in refused", **admin.identity_fields(), rule=str(self.identity.admin_rule))
            raise _back(
                f"you are signed in as {admin.name}, who is not a Skywarden admin "
                f"({self.identity.admin_rule} is needed)"
            )
        handle = secrets.token_urlsafe(32)
        self.handles.put(handle, (token, admin.name), HANDLE_SECONDS)
        raise web.HTTPFound(CONSOLE_PATH + "#" + urlencode({"signin": handle}))

    async def _exchange(self, request: web.Request, code: str, verifier: str) -> str:
        endpoints = await self._get_endpoints()
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
            async with self.identity.http().post(
                endpoints["token_endpoint"],
                data=form,
                headers=headers,
                timeout=TIMEOUT,
            ) as resp:
                body = loads_guarded(await resp.content.read(64 * 1024), 16)
                status = resp.status
        except (aiohttp.ClientError, TimeoutError, ValueError):
            raise _back("the identity provider's token endpoint cannot be reached") from None
        token = body.get("access_token") if isinstance(body, dict) else None
        if status != 200 or not isinstance(token, str):
            error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            raise _back(f"the identity provider refused the code ({error or status})")
        return token

    async def redeem(self, request: web.Request) -> web.Response:
        body = await read_json(request)
        handle = body.get("handle") if isinstance(body, dict) else None
        found = self.handles.take(handle[:100]) if isinstance(handle, str) else None
        if found is None:
            raise ApiError(BAD_REQUEST, "This sign-in link expired or was already used; sign in again.")
        token, name = found
        return web.Response(
            body=dumps({"access_token": token, "name": name}),
            content_type="application/json",
            headers={"Cache-Control": "no-store"},
        )

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get(START_PATH, self.start)
        app.router.add_get(CALLBACK_PATH, self.callback)
        app.router.add_post(REDEEM_PATH, self.redeem)
