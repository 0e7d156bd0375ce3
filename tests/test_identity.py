"""Access tokens from a real OpenID provider (npm oidc-provider): admin sign-in and
resource-server mode, with the official MCP SDK client's OAuth support.

The provider runs on loopback with the test's own signing keys, so the test can also mint the
tokens a provider never issues (expired, for another audience, alg none, HS256 keyed with the
public key) and check that each is refused with its own ``error_description``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from contextlib import asynccontextmanager

import httpx2
import pytest
from mcp import Client as McpClient
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import streamable_http_client

from skywarden.server.appkeys import IDENTITY
from tests.support.admin import ADMIN_TOKEN
from tests.support.clock import Clock
from tests.support.logs import SECRETS, drain_logs
from tests.support.oidc_provider import ADMIN_AUDIENCE, ADMIN_ROLE, Client, OpenIDProvider, SigningKey
from tests.support.server_process import free_port

pytestmark = pytest.mark.slow  # a Node process per test

ADMIN = Client("admin-client", "admin-secret-" + secrets.token_hex(8), "admin", [ADMIN_ROLE])
READER = Client("reader-client", "reader-secret-" + secrets.token_hex(8), "admin", ["Skywarden.Reader"])
AGENT = Client("agent-client", "agent-secret-" + secrets.token_hex(8), "tools tool:get_forecast tool:get_alerts")
FORECASTER = Client("forecaster", "forecaster-secret-" + secrets.token_hex(8), "tool:get_forecast")
OTHER_RESOURCE = "https://other.example.test/mcp"
FORECAST = {"latitude": 39.7456, "longitude": -97.0892}
SECRETS.update({ADMIN.client_secret, READER.client_secret, AGENT.client_secret, FORECASTER.client_secret})


@pytest.fixture
async def provider(tmp_path):
    idp = OpenIDProvider(
        tmp_path,
        resources={
            ADMIN_AUDIENCE: "admin",
            "http://127.0.0.1:*": "tools tool:get_forecast tool:get_alerts",
            OTHER_RESOURCE: "tools tool:get_forecast tool:get_alerts",
        },
        clients=[ADMIN, READER, AGENT, FORECASTER],
    )
    await idp.start()
    yield idp
    await idp.stop()


async def token(provider, client: Client, resource: str, scope: str | None = None) -> str:
    """A token with every scope the client may have unless ``scope`` names fewer."""
    value = await provider.token(client, resource, scope if scope is not None else client.scope)
    SECRETS.add(value)
    return value


@pytest.fixture
async def server(make_server, make_settings, provider):
    """A server trusting the provider for admin sign-in and as a resource server."""

    async def make(resource_server: bool = True, **overrides):
        port = free_port()
        settings = make_settings(
            oidc_issuers=provider.issuer,
            admin_oidc_audience=ADMIN_AUDIENCE,
            oauth_resource_url=f"http://127.0.0.1:{port}/mcp" if resource_server else "",
            **overrides,
        )
        srv = await make_server(settings, port=port)
        srv.resource = settings.oauth_resource_url
        srv.clock = Clock()
        for keys in srv.app[IDENTITY].verifier.issuers.values():
            keys.clock = srv.clock
        return srv

    return make


@pytest.fixture
async def http(aiohttp_client):
    async def make(srv, **headers):
        return await aiohttp_client(srv, headers=headers)

    return make


def audit_event(resp) -> dict:
    rid = resp.headers["X-Request-ID"]
    found = [e for e in drain_logs() if e.get("audit") and e.get("request_id") == rid and e["event"] == "request"]
    assert len(found) == 1, found
    return found[0]


def b64(data: bytes | dict) -> str:
    raw = json.dumps(data).encode() if isinstance(data, dict) else data
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


# --- admin sign-in -------------------------------------------------------------------------------


async def test_an_admin_token_with_the_role_opens_the_admin_api_and_the_audit_names_the_subject(server, http, provider):
    srv = await server(resource_server=False)
    admin = await http(srv, Authorization=f"Bearer {await token(provider, ADMIN, ADMIN_AUDIENCE)}")
    resp = await admin.post("/api/admin/keys", json={"name": "made by sso"})
    assert resp.status == 201, await resp.text()
    created = await resp.json()
    SECRETS.add(created["key"])
    assert created["created_by"] == "admin-client@example.test"
    event = audit_event(resp)
    assert event["principal"] == "admin" and event["subject"] == "admin-client"
    assert event["issuer"] == provider.issuer and event["email"] == "admin-client@example.test"
    action = next(
        e for e in drain_logs() if e.get("event") == "admin action" and e["request_id"] == event["request_id"]
    )
    assert action["action"] == "key.create" and action["actor_subject"] == "admin-client"
    assert action["actor_email"] == "admin-client@example.test" and action["actor_issuer"] == provider.issuer
    assert (await admin.get("/api/admin/keys")).status == 200
    assert (await (await http(srv, Authorization=f"Bearer {ADMIN_TOKEN}")).get("/api/admin/keys")).status == 200


async def test_a_valid_token_without_the_admin_role_gets_403(server, http, provider):
    srv = await server(resource_server=False)
    reader = await http(srv, Authorization=f"Bearer {await token(provider, READER, ADMIN_AUDIENCE)}")
    resp = await reader.get("/api/admin/keys")
    body = await resp.json()
    assert resp.status == 403 and body["type"].endswith("/admin-role-required")
    assert "roles=Skywarden.Admin" in body["detail"]
    event = audit_event(resp)
    assert event["reason"] == "admin_rule" and event["subject"] == "reader-client"


def _admin_claims(provider) -> dict:
    now = int(time.time())
    return {
        "iss": provider.issuer,
        "sub": "x",
        "aud": ADMIN_AUDIENCE,
        "iat": now,
        "exp": now + 300,
        "roles": [ADMIN_ROLE],
    }


def _alg_none(provider) -> str:
    claims = _admin_claims(provider)
    return f"{b64({'alg': 'none', 'typ': 'JWT', 'kid': provider.keys[0].kid})}.{b64(claims)}."


def _hs256_with_public_key(provider) -> str:
    claims = _admin_claims(provider)
    signing_input = f"{b64({'alg': 'HS256', 'typ': 'JWT', 'kid': provider.keys[0].kid})}.{b64(claims)}"
    signature = hmac.new(provider.keys[0].public_pem(), signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64(signature)}"


def _forged_signature(provider) -> str:
    stranger = SigningKey(provider.keys[0].kid, SigningKey.new().private)  # the provider's kid, another key
    return provider.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE]}, key=stranger)


BAD_ADMIN_TOKENS = {
    "wrong audience": (lambda p: p.mint({"aud": "urn:someone:else", "roles": [ADMIN_ROLE]}), "token_audience", "aud"),
    "wrong issuer": (
        lambda p: p.mint({"iss": "https://evil.example.test", "aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE]}),
        "token_issuer",
        "issuer",
    ),
    "expired": (
        lambda p: p.mint({"aud": ADMIN_AUDIENCE, "exp": int(time.time()) - 3600, "roles": [ADMIN_ROLE]}),
        "token_expired",
        "expired",
    ),
    "not yet valid": (
        lambda p: p.mint({"aud": ADMIN_AUDIENCE, "nbf": int(time.time()) + 3600, "roles": [ADMIN_ROLE]}),
        "token_not_yet_valid",
        "not valid yet",
    ),
    "bad signature": (_forged_signature, "token_signature", "signature"),
    "unknown kid": (
        lambda p: p.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE]}, key=SigningKey.new()),
        "token_key",
        "does not publish",
    ),
    "alg none": (_alg_none, "token_algorithm", "algorithm"),
    "HS256 keyed with the public key": (_hs256_with_public_key, "token_algorithm", "algorithm"),
    "oversized": (
        lambda p: p.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE], "pad": "x" * 5560}),  # just over 8,000
        "token_too_large",
        "larger than",
    ),
    "no subject": (
        lambda p: p.mint({"aud": ADMIN_AUDIENCE, "sub": None, "roles": [ADMIN_ROLE]}),
        "token_claims",
        "claim",
    ),
    "not a JWT": (lambda p: "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln", "token_malformed", "well-formed"),
}


@pytest.mark.parametrize("case", list(BAD_ADMIN_TOKENS))
async def test_a_bad_admin_token_is_refused_with_its_reason(server, http, provider, case):
    make, reason, words = BAD_ADMIN_TOKENS[case]
    srv = await server(resource_server=False)
    bad = make(provider)
    SECRETS.add(bad)
    assert len(bad) < 8100  # every token fits in one header line (aiohttp: 8,190 bytes)
    resp = await (await http(srv, Authorization=f"Bearer {bad}")).get("/api/admin/keys")
    assert resp.status == 401
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith('Bearer realm="skywarden", error="invalid_token", error_description="')
    assert words in challenge and words in (await resp.json())["detail"]
    assert audit_event(resp)["reason"] == reason
    assert bad not in challenge and bad not in await resp.text()


async def test_a_rotated_signing_key_verifies_after_one_refetch(server, http, provider):
    srv = await server(resource_server=False)
    first = await http(srv, Authorization=f"Bearer {await token(provider, ADMIN, ADMIN_AUDIENCE)}")
    assert (await first.get("/api/admin/keys")).status == 200
    fetched = await provider.jwks_requests()
    assert fetched == 1
    new_key = await provider.rotate()  # restarted: its counter starts again at 0
    fresh = await token(provider, ADMIN, ADMIN_AUDIENCE)
    assert json.loads(base64.urlsafe_b64decode(fresh.split(".")[0] + "==")).get("kid") == new_key.kid

    resp = await (await http(srv, Authorization=f"Bearer {fresh}")).get("/api/admin/keys")
    assert resp.status == 401 and audit_event(resp)["reason"] == "token_key"  # within the cooldown: no refetch
    assert await provider.jwks_requests() == 0
    srv.clock.now += 31  # past oidc_jwks_cooldown (30 s)
    assert (await (await http(srv, Authorization=f"Bearer {fresh}")).get("/api/admin/keys")).status == 200
    assert await provider.jwks_requests() == 1
    assert (await first.get("/api/admin/keys")).status == 200  # the old key is still published and cached


async def test_a_flood_of_unknown_key_ids_costs_the_provider_one_fetch_per_cooldown(server, http, provider):
    srv = await server(resource_server=False)
    srv.clock.now += 3600
    bogus = [provider.mint({"aud": ADMIN_AUDIENCE}, key=SigningKey.new()) for _ in range(5)]
    SECRETS.update(bogus)
    clients = [await http(srv, Authorization=f"Bearer {t}") for t in bogus]
    for _ in range(4):
        answers = await asyncio.gather(*(c.get("/api/admin/keys") for c in clients))
        assert {a.status for a in answers} == {401}
    assert await provider.jwks_requests() == 1
    srv.clock.now += 31
    await clients[0].get("/api/admin/keys")
    assert await provider.jwks_requests() == 2


async def test_an_unreachable_issuer_is_a_503_not_a_401(make_server, make_settings, aiohttp_client, provider):
    dead = f"http://127.0.0.1:{free_port()}"
    srv = await make_server(make_settings(oidc_issuers=dead, admin_oidc_audience=ADMIN_AUDIENCE))
    minted = provider.mint({"iss": dead, "aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE]})
    SECRETS.add(minted)
    resp = await (await aiohttp_client(srv, headers={"Authorization": f"Bearer {minted}"})).get("/api/admin/keys")
    body = await resp.json()
    assert resp.status == 503 and body["type"].endswith("/identity-unavailable") and resp.headers["Retry-After"]


async def test_a_provider_outage_is_a_503_at_every_door_until_it_is_back(server, http, provider):
    """The real provider stopped while it rotates its key, then restarted: 503 (never 401, never
    counted toward auth_failure_limit) until the first request after the cooldown."""
    srv = await server(auth_failure_limit="2/minute")
    admin = await http(srv, Authorization=f"Bearer {await token(provider, ADMIN, ADMIN_AUDIENCE)}")
    assert (await admin.get("/api/admin/keys")).status == 200
    new_key = SigningKey.new()
    provider.keys = [new_key, *provider.keys]
    await provider.stop()
    srv.clock.now += 31
    admin_token = provider.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE]}, key=new_key)
    tool_token = provider.mint({"aud": srv.resource, "scope": "tools"}, key=new_key)
    SECRETS.update({admin_token, tool_token})
    signed_in, caller = (
        await http(srv, Authorization=f"Bearer {admin_token}"),
        await http(srv, Authorization=f"Bearer {tool_token}"),
    )
    from tests.support.mcp_helpers import modern_headers, modern_rpc

    message = modern_rpc("tools/list")

    async def every_door() -> list[int]:
        return [
            (await signed_in.get("/api/admin/keys")).status,
            (await caller.get("/api/mcp/tools")).status,
            (await caller.post("/mcp", json=message, headers=modern_headers(message))).status,
        ]

    for _ in range(3):
        assert await every_door() == [503, 503, 503]
    await provider.start()
    assert await every_door() == [503, 503, 503]  # asked again only after the cooldown
    srv.clock.now += 30
    assert await every_door() == [200, 200, 200]
    assert await provider.jwks_requests() == 1
    wrong = await http(srv, Authorization="Bearer not-the-admin-token")
    assert [(await wrong.get("/api/admin/keys")).status for _ in range(3)] == [401, 401, 429]


async def test_the_client_cli_signs_in_with_a_token_file(server, provider, tmp_path):
    srv = await server(resource_server=False)
    token_file = tmp_path / "token"
    token_file.write_text(await token(provider, ADMIN, ADMIN_AUDIENCE) + "\n")
    from tests.test_client_cli import run_cli

    code, out, err = await run_cli(
        str(srv.make_url("")).rstrip("/"), "--json", "--token-file", str(token_file), "keys", "list"
    )
    assert code == 0, err
    assert isinstance(json.loads(out), list)
    code, _, err = await run_cli(
        str(srv.make_url("")).rstrip("/"), "--token-file", str(tmp_path / "none"), "keys", "list"
    )
    assert code == 2 and "--token-file" in err and "cannot be read" in err


# --- resource-server mode ------------------------------------------------------------------------


@asynccontextmanager
async def oauth_mcp(srv, client: Client, provider):
    class Memory:
        tokens = None

        async def get_tokens(self):
            return self.tokens

        async def set_tokens(self, tokens):
            self.tokens = tokens
            SECRETS.add(tokens.access_token)

        async def get_client_info(self):
            return None

        async def set_client_info(self, info):
            return None

    auth = ClientCredentialsOAuthProvider(
        server_url=str(srv.make_url("/mcp")),
        storage=Memory(),
        client_id=client.client_id,
        client_secret=client.client_secret,
        scope=client.scope,
        issuer=provider.issuer,
    )
    async with httpx2.AsyncClient(auth=auth) as http_client:
        async with McpClient(streamable_http_client(str(srv.make_url("/mcp")), http_client=http_client)) as mcp:
            yield mcp


async def test_the_sdk_client_discovers_the_issuer_gets_a_token_and_calls_a_tool(server, provider, http):
    srv = await server()
    async with oauth_mcp(srv, AGENT, provider) as mcp:
        names = {t.name for t in (await mcp.list_tools()).tools}
        assert {"get_forecast", "get_alerts"} <= names
        result = await mcp.call_tool("get_forecast", FORECAST)
        assert result.is_error is False and result.structured_content["location"] == "Linn, KS"
    calls = [e for e in drain_logs() if e.get("event") == "request" and e.get("tool") == "get_forecast"]
    assert calls and calls[-1]["principal"] == "subject" and calls[-1]["subject"] == "agent-client"


async def test_protected_resource_metadata_and_the_401_challenge(server, http, provider):
    srv = await server()
    anonymous = await http(srv)
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        resp = await anonymous.get(path)
        assert resp.status == 200
        doc = await resp.json()
        assert doc["resource"] == srv.resource and doc["authorization_servers"] == [provider.issuer]
        assert {"tools", "tool:get_forecast", "tool:get_alerts"} <= set(doc["scopes_supported"])
        assert doc["bearer_methods_supported"] == ["header"]
    for path in ("/.well-known/oauth-authorization-server", "/register"):
        assert (await anonymous.get(path)).status == 404  # the authorization server is the issuer
    resp = await anonymous.post("/mcp", json={})
    metadata = f'resource_metadata="http://127.0.0.1:{srv.port}/.well-known/oauth-protected-resource/mcp"'
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == f"Bearer {metadata}"
    wrong_key = await http(srv, **{"X-API-Key": "sk_live_" + "a" * 40})
    resp = await wrong_key.get("/api/mcp/tools")
    assert resp.status == 401 and resp.headers["WWW-Authenticate"] == f'Bearer {metadata}, error="invalid_token"'


async def test_a_token_for_another_resource_is_refused_at_both_doors(server, http, provider):
    srv = await server()
    other = await http(srv, Authorization=f"Bearer {await token(provider, AGENT, OTHER_RESOURCE)}")
    for resp in (await other.get("/api/mcp/tools"), await other.post("/mcp", json={})):
        assert resp.status == 401
        assert 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
        assert "was not issued for this server" in resp.headers["WWW-Authenticate"]
        assert audit_event(resp)["reason"] == "token_audience"


async def test_a_token_without_the_tools_scope_is_refused_at_both_doors(server, http, provider, make_client):
    srv = await server()
    narrow = await http(srv, Authorization=f"Bearer {await token(provider, FORECASTER, srv.resource)}")
    ok = await narrow.post("/api/mcp/tools/get_forecast", json=FORECAST)
    assert ok.status == 200 and (await ok.json())["isError"] is False
    listed = await narrow.get("/api/mcp/tools")
    assert [t["name"] for t in (await listed.json())["tools"]] == ["get_forecast"]

    resp = await narrow.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    assert resp.status == 403
    challenge = resp.headers["WWW-Authenticate"]
    assert 'error="insufficient_scope"' in challenge and 'scope="tool:get_alerts tool:weather tools"' in challenge
    assert "resource_metadata=" in challenge

    from tests.support.mcp_helpers import modern_headers, modern_rpc

    message = modern_rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "KS"}})
    resp = await narrow.post("/mcp", json=message, headers=modern_headers(message))
    body = await resp.json()
    assert resp.status == 403 and body["error"]["code"] == -32003
    assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]


async def test_api_keys_keep_working_beside_tokens_and_the_two_are_never_confused(server, http, provider):
    srv = await server()
    admin = await http(srv, Authorization=f"Bearer {ADMIN_TOKEN}")
    created = await (await admin.post("/api/admin/keys", json={"name": "script"})).json()
    SECRETS.add(created["key"])
    keyed = await http(srv, **{"X-API-Key": created["key"]})
    assert (await keyed.get("/api/mcp/tools")).status == 200
    agent_token = await token(provider, AGENT, srv.resource)
    in_key_header = await http(srv, **{"X-API-Key": agent_token})
    resp = await in_key_header.get("/api/mcp/tools")
    assert resp.status == 401 and audit_event(resp)["reason"] == "token_in_api_key_header"
    as_admin = await http(srv, Authorization=f"Bearer {agent_token}")
    resp = await as_admin.get("/api/admin/keys")  # a tool token is not an admin token
    assert resp.status == 401 and audit_event(resp)["reason"] == "token_audience"


async def test_each_subject_has_its_own_rate_limit(server, http, provider):
    srv = await server(oauth_rate_limit="2/minute")
    caller = await http(srv, Authorization=f"Bearer {await token(provider, AGENT, srv.resource)}")
    statuses = [(await caller.get("/api/mcp/tools")).status for _ in range(3)]
    assert statuses == [200, 200, 429]
    resp = await caller.get("/api/mcp/tools")
    assert '"subject-' in resp.headers["RateLimit-Policy"]
    other = await http(srv, Authorization=f"Bearer {await token(provider, FORECASTER, srv.resource)}")
    assert (await other.get("/api/mcp/tools")).status == 200


async def test_with_resource_server_mode_off_a_token_gets_a_plain_401_and_discovery_404s(
    make_server, make_settings, aiohttp_client, provider
):
    srv = await make_server(make_settings())
    anonymous = await aiohttp_client(srv)
    for path in ("/.well-known/oauth-protected-resource", "/.well-known/oauth-protected-resource/mcp"):
        assert (await anonymous.get(path)).status == 404
    agent_token = await token(provider, AGENT, OTHER_RESOURCE)
    tokened = await aiohttp_client(srv, headers={"Authorization": f"Bearer {agent_token}"})
    resp = await tokened.get("/api/mcp/tools")
    assert resp.status == 401 and "resource_metadata" not in resp.headers["WWW-Authenticate"]
    assert audit_event(resp)["reason"] == "token_not_accepted"

    async with httpx2.AsyncClient() as http_client:  # the SDK client given no key
        with pytest.raises(Exception) as failure:
            async with McpClient(streamable_http_client(str(srv.make_url("/mcp")), http_client=http_client)):
                pass
    assert "401" in repr(failure.value) or "Unauthorized" in repr(failure.value)


async def test_a_subject_has_one_budget_across_instances_sharing_redis(make_server, make_settings, http, provider):
    from tests.support.services import redis_prefix

    public = f"http://127.0.0.1:{free_port()}/mcp"  # the load balancer's address: one resource, two instances
    async with redis_prefix() as (url, prefix):
        settings = make_settings(
            oidc_issuers=provider.issuer,
            oauth_resource_url=public,
            oauth_rate_limit="3/minute",
            redis_url=url,
            redis_key_prefix=prefix,
        )
        instances = [await make_server(settings) for _ in range(2)]
        bearer = f"Bearer {await token(provider, AGENT, public)}"
        callers = [await http(srv, Authorization=bearer) for srv in instances]
        statuses = [(await callers[i % 2].get("/api/mcp/tools")).status for i in range(5)]
        assert statuses == [200, 200, 200, 429, 429]
        assert await provider.jwks_requests() == 2  # each instance read the keys once and cached them
