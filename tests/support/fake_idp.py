"""An OpenID issuer on loopback in the test's own process: discovery and JWKS, nothing else.

For the tests that need an issuer to misbehave on cue (stop, come back, answer 500 or junk) or
to sign claims no real provider would issue; tests/support/oidc_provider.py is the real one (Node).
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections import Counter
from typing import Any

from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from skywarden.server.appkeys import IDENTITY
from tests.support.clock import Clock
from tests.support.logs import SECRETS
from tests.support.server_process import free_port

CONFIGURATION_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/jwks"
ADMIN_AUDIENCE = "urn:skywarden:admin"
ADMIN_ROLE = "Skywarden.Admin"


PIECE_PAUSE_SECONDS = 0.05  # long enough for the reader to take the first piece alone; nothing is timed


class FakeIssuer:
    """``mode``: "ok"; "error" (HTTP 500); "junk" (not JSON); "no keys" (a JWKS without a usable
    key); "pieces" (valid documents, each sent in two writes with a pause between them).
    ``jwks_mode``, when set, applies to the JWKS instead of ``mode``. ``extra_keys`` are
    published beside the signing keys, or alone with ``jwks_mode`` "only extra keys".
    ``stop()`` closes the port (connection refused) and ``start()`` opens it again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.kid = "fake-1"
        self.private = ec.generate_private_key(ec.SECP256R1())
        self.retired: list[tuple[str, ec.EllipticCurvePrivateKey]] = []  # still published
        self.mode = "ok"
        self.jwks_mode: str | None = None
        self.extra_keys: list[Any] = []
        self.requests: Counter[str] = Counter()
        self._runner: web.AppRunner | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _answer(self, request: web.Request, document: dict, mode: str) -> web.StreamResponse:
        if mode == "error":
            return web.Response(status=500, text="down for maintenance")
        if mode == "junk":
            return web.Response(text="<html>not JSON</html>", content_type="text/html")
        if mode == "pieces":
            body = json.dumps(document).encode()
            resp = web.StreamResponse(headers={"Content-Type": "application/json"})  # chunked: no length
            await resp.prepare(request)
            await resp.write(body[: len(body) // 2])
            await asyncio.sleep(PIECE_PAUSE_SECONDS)
            await resp.write(body[len(body) // 2 :])
            await resp.write_eof()
            return resp
        return web.json_response(document)

    async def _configuration(self, request: web.Request) -> web.StreamResponse:
        self.requests["configuration"] += 1
        return await self._answer(
            request,
            {
                "issuer": self.issuer,
                "jwks_uri": self.issuer + JWKS_PATH,
                "authorization_endpoint": self.issuer + "/authorize",
                "token_endpoint": self.issuer + "/token",
            },
            self.mode,
        )

    async def _jwks(self, request: web.Request) -> web.StreamResponse:
        self.requests["jwks"] += 1
        mode = self.jwks_mode or self.mode
        if mode == "no keys":
            return web.json_response({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": self.kid}]})
        published = [(self.kid, self.private), *self.retired]
        keys = [
            {**ECAlgorithm.to_jwk(key.public_key(), as_dict=True), "kid": kid, "use": "sig"} for kid, key in published
        ]
        if mode == "only extra keys":
            keys, mode = [], "ok"
        return await self._answer(request, {"keys": [*self.extra_keys, *keys]}, mode)

    def rotate(self) -> None:
        """Sign with a new key from now on; the old one stays published."""
        self.retired.insert(0, (self.kid, self.private))
        self.kid = f"fake-{len(self.retired) + 1}"
        self.private = ec.generate_private_key(ec.SECP256R1())

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get(CONFIGURATION_PATH, self._configuration)
        app.router.add_get(JWKS_PATH, self._jwks)
        self._runner = web.AppRunner(app, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def mint(self, claims: dict[str, Any], *, headers: dict[str, Any] | None = None) -> str:
        """A token signed with the current key: ``claims`` over valid defaults (None removes one)."""
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": "someone", "iat": now, "exp": now + 300, **claims}
        payload = {k: v for k, v in payload.items() if v is not None}
        header = {"alg": "ES256", "typ": "JWT", "kid": self.kid, **(headers or {})}
        # Signed by hand, as written: PyJWT's encode refuses some of what the tests send.
        signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
        signature = ECAlgorithm(ECAlgorithm.SHA256).sign(signing_input.encode(), self.private)
        token = f"{signing_input}.{_b64(signature)}"
        SECRETS.add(token)
        return token


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def server_trusting(make_server, make_settings, issuer: FakeIssuer, **overrides):
    """A Skywarden on loopback trusting ``issuer`` for admin sign-in (``ADMIN_AUDIENCE``) and as a
    resource server (``server.resource``), its issuer clock (``server.clock``) moved by hand."""
    port = free_port()
    values = {
        "oidc_issuers": issuer.issuer,
        "admin_oidc_audience": ADMIN_AUDIENCE,
        "oauth_resource_url": f"http://127.0.0.1:{port}/mcp",
        **overrides,
    }
    server = await make_server(make_settings(**values), port=port)
    server.resource = values["oauth_resource_url"]
    server.clock = Clock()
    for keys in server.app[IDENTITY].verifier.issuers.values():
        keys.clock = server.clock
    return server
