"""A real OpenID provider for the identity tests: npm ``oidc-provider`` on loopback.

The test holds the provider's signing keys (it hands them to the provider as its JWKS), so it
can also mint the tokens a provider never would (expired, wrong audience, signed with ``none``
or with HS256 and the public key) and see the server refuse them.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

from tests.support.node_tools import ensure_tools, node_binary, node_env
from tests.support.server_process import free_port

SCRIPT = Path(__file__).resolve().parent.parent / "oidc" / "provider.mjs"
ADMIN_AUDIENCE = "urn:skywarden:admin"
ADMIN_ROLE = "Skywarden.Admin"
START_TIMEOUT = 30


@dataclass
class _KeyPool:
    """RSA keys for ``SigningKey.new``: a 2048-bit key takes about 50 ms to make, so each is made
    once per test process; within one test every key is a different one (``next_test``)."""

    made: list[rsa.RSAPrivateKey] = field(default_factory=list)
    taken: int = 0

    def take(self) -> rsa.RSAPrivateKey:
        if self.taken == len(self.made):
            self.made.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
        self.taken += 1
        return self.made[self.taken - 1]

    def next_test(self) -> None:
        self.taken = 0


KEY_POOL = _KeyPool()


@dataclass
class SigningKey:
    kid: str
    private: rsa.RSAPrivateKey

    @classmethod
    def new(cls) -> SigningKey:
        """A key no other key of this test shares (the conftest starts each test with ``KEY_POOL.next_test``)."""
        return cls("k-" + secrets.token_hex(4), KEY_POOL.take())

    def private_jwk(self) -> dict:
        jwk = json.loads(RSAAlgorithm.to_jwk(self.private))
        return {**jwk, "kid": self.kid, "use": "sig", "alg": "RS256"}

    def public_pem(self) -> bytes:
        from cryptography.hazmat.primitives import serialization

        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


@dataclass
class Client:
    client_id: str
    client_secret: str
    scope: str
    roles: list[str] | None = None
    extra: dict = field(default_factory=dict)  # more client metadata (redirect_uris, grant_types, ...)


@dataclass
class OpenIDProvider:
    workdir: Path
    resources: dict[str, str]
    clients: list[Client]
    port: int = field(default_factory=free_port)
    keys: list[SigningKey] = field(default_factory=lambda: [SigningKey.new()])
    users: dict[str, list[str]] = field(default_factory=dict)  # dev-login accounts and their roles
    _proc: asyncio.subprocess.Process | None = None

    @property
    def issuer(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        prefix = ensure_tools()
        config = self.workdir / f"oidc-{secrets.token_hex(3)}.json"
        config.write_text(
            json.dumps(
                {
                    "port": self.port,
                    "jwks": {"keys": [k.private_jwk() for k in self.keys]},
                    "clients": [
                        {
                            "client_id": c.client_id,
                            **({"client_secret": c.client_secret} if c.client_secret else {}),
                            "scope": c.scope,
                            "roles": c.roles,
                            **c.extra,
                        }
                        for c in self.clients
                    ],
                    "resources": self.resources,
                    "users": self.users,
                }
            )
        )
        self._proc = await asyncio.create_subprocess_exec(
            node_binary(prefix),
            str(SCRIPT),
            str(config),
            str(prefix / "node_modules" / "oidc-provider" / "lib" / "index.js"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=node_env(prefix),
            cwd=str(prefix),
        )
        lines = []
        while True:
            line = await asyncio.wait_for(self._proc.stdout.readline(), START_TIMEOUT)
            if not line:
                raise AssertionError("oidc-provider exited before listening:\n" + "".join(lines))
            lines.append(line.decode(errors="replace"))
            if line.startswith(b"listening "):
                return

    async def stop(self) -> None:
        if self._proc is not None and self._proc.returncode is None:
            self._proc.terminate()
            await self._proc.wait()
        self._proc = None

    async def rotate(self) -> SigningKey:
        """A new signing key first, the old one still published; the provider restarts on its port."""
        new = SigningKey.new()
        self.keys = [new, *self.keys]
        await self.stop()
        await self.start()
        return new

    async def token(self, client: Client, resource: str, scope: str | None = None) -> str:
        form = {"grant_type": "client_credentials", "resource": resource}
        if scope is not None:
            form["scope"] = scope
        basic = base64.b64encode(f"{client.client_id}:{client.client_secret}".encode()).decode()
        async with aiohttp.ClientSession() as session:
            async with session.post(
                f"{self.issuer}/token", data=form, headers={"Authorization": f"Basic {basic}"}
            ) as resp:
                body = await resp.json()
                assert resp.status == 200, body
                return body["access_token"]

    async def jwks_requests(self) -> int:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{self.issuer}/test/jwks-requests") as resp:
                return (await resp.json())["count"]

    def mint(self, claims: dict, *, key: SigningKey | None = None, headers: dict | None = None) -> str:
        """A token signed with one of the provider's keys (or ``key``), claims as given over defaults."""
        key = key or self.keys[0]
        now = int(time.time())
        payload = {"iss": self.issuer, "sub": "minted", "iat": now, "exp": now + 300, "jti": secrets.token_hex(8)}
        payload.update(claims)
        payload = {k: v for k, v in payload.items() if v is not None}
        return jwt.encode(payload, key.private, algorithm="RS256", headers={"kid": key.kid, **(headers or {})})
