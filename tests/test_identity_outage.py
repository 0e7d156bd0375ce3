"""The identity provider down, then back: a loopback issuer (tests/support/fake_idp.py) that stops,
answers 500 or junk, or publishes no usable key, and a clock the test moves.

While an issuer's keys cannot be read, a token of that issuer gets 503 identity-unavailable at
every door (never a 401, never counted as a wrong credential), the issuer is asked at most once
per ``oidc_jwks_cooldown``, and the first request after the cooldown once it is back succeeds."""

from __future__ import annotations

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.support.admin import ADMIN_HEADERS
from tests.support.fake_idp import ADMIN_AUDIENCE, ADMIN_ROLE, FakeIssuer, server_trusting
from tests.support.logs import drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc

COOLDOWN = 30  # oidc_jwks_cooldown's default
WRONG_KEY = "skw_live_" + "A" * 50


@pytest.fixture
async def srv(make_server, make_settings, issuer):
    return await server_trusting(
        make_server, make_settings, issuer, auth_failure_limit="3/minute", console_oidc_client_id="console"
    )


async def fail(issuer: FakeIssuer, how: str) -> None:
    if how == "stopped":
        await issuer.stop()
    else:
        issuer.mode = how


async def recover(issuer: FakeIssuer, how: str) -> None:
    if how == "stopped":
        await issuer.start()
    issuer.mode = "ok"


def reason_of(resp) -> str | None:
    rid = resp.headers["X-Request-ID"]
    found = [e for e in drain_logs() if e.get("audit") and e.get("request_id") == rid and e["event"] == "request"]
    return found[0].get("reason")


async def every_door(client, srv, issuer) -> list:
    """A valid tool token at REST and /mcp, a valid admin token at the admin API."""
    tools = {"Authorization": f"Bearer {issuer.mint({'aud': srv.resource, 'scope': 'tools'})}"}
    admin = {"Authorization": f"Bearer {issuer.mint({'aud': ADMIN_AUDIENCE, 'roles': [ADMIN_ROLE]})}"}
    message = modern_rpc("tools/list")
    return [
        await client.get("/api/mcp/tools", headers=tools),
        await client.post("/mcp", json=message, headers={**modern_headers(message), **tools}),
        await client.get("/api/admin/keys", headers=admin),
    ]


async def assert_unavailable(answers: list, retry_after: int) -> None:
    for resp in answers:
        assert resp.status == 503, await resp.text()
        assert resp.headers["Retry-After"] == str(retry_after)
        assert reason_of(resp) == "identity_unavailable"
    rest, mcp, admin = answers
    for problem in (rest, admin):
        assert problem.content_type == "application/problem+json"
        assert (await problem.json())["type"].endswith("/identity-unavailable")
    body = await mcp.json()
    assert body["jsonrpc"] == "2.0" and "identity provider" in body["error"]["message"]


@pytest.mark.parametrize("how", ["stopped", "error", "junk", "no keys"])
async def test_while_the_issuer_is_down_every_token_gets_503_until_the_first_request_after_it_is_back(
    srv, issuer, aiohttp_client, how
):
    client = await aiohttp_client(srv)
    await fail(issuer, how)
    for _ in range(3):  # more than auth_failure_limit in all: none of them counts
        await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)
    made_up = issuer.mint({"aud": srv.resource}, headers={"kid": "made-up"})
    resp = await client.get("/api/mcp/tools", headers={"Authorization": f"Bearer {made_up}"})
    assert resp.status == 503  # whether this key exists cannot be known while the keys cannot be read
    assert issuer.requests["configuration"] == (0 if how == "stopped" else 1)  # one fetch per cooldown

    srv.clock.now += COOLDOWN - 1
    await assert_unavailable(await every_door(client, srv, issuer), 1)
    await recover(issuer, how)
    await assert_unavailable(await every_door(client, srv, issuer), 1)  # not asked again within the cooldown
    srv.clock.now += 1
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]
    assert issuer.requests["configuration"] == (1 if how == "stopped" else 2)

    resp = await client.get("/api/mcp/tools", headers={"Authorization": f"Bearer {made_up}"})
    assert resp.status == 401 and reason_of(resp) == "token_key"  # the issuer answers again: a real 401
    wrong = [(await client.get("/api/mcp/tools", headers={"X-API-Key": WRONG_KEY})).status for _ in range(3)]
    assert wrong == [401, 401, 429]  # the 503s counted nothing: one failure was made above, the limit is 3


async def test_keys_read_before_an_outage_keep_working_and_a_rotated_key_waits_for_the_issuer(
    srv, issuer, aiohttp_client
):
    client = await aiohttp_client(srv)
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]
    await issuer.stop()
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]  # known key: no fetch

    issuer.rotate()  # a token signed with a key Skywarden has not seen: it must ask the issuer, which is down
    srv.clock.now += COOLDOWN
    await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)
    await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)  # not a 401 the second time
    await issuer.start()
    srv.clock.now += COOLDOWN
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]


async def test_concurrent_requests_during_an_outage_share_one_fetch(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    issuer.mode = "error"
    headers = {"Authorization": f"Bearer {issuer.mint({'aud': srv.resource, 'scope': 'tools'})}"}
    answers = await asyncio.gather(*(client.get("/api/mcp/tools", headers=headers) for _ in range(20)))
    assert {a.status for a in answers} == {503}
    assert issuer.requests == {"configuration": 1}
    lines = [
        e
        for e in drain_logs()
        if e.get("event") == "identity provider unavailable" and e["reason"].startswith(issuer.issuer + ":")
    ]
    assert len(lines) == 1 and "HTTP 500" in lines[0]["reason"]  # logged once per fetch, not per request
    assert lines[0]["issuer"] == issuer.issuer


async def test_console_sign_on_start_says_unavailable_and_asks_once_per_cooldown(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    await issuer.stop()
    issuer.mode = "error"
    await issuer.start()
    for _ in range(5):
        resp = await client.get("/admin/oidc/start", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/admin#error=unavailable"
    assert issuer.requests["configuration"] == 1

    issuer.mode = "ok"
    srv.clock.now += COOLDOWN
    for _ in range(3):
        resp = await client.get("/admin/oidc/start", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith(issuer.issuer + "/authorize?")
    assert issuer.requests["configuration"] == 2  # read once, then kept

    admin = await aiohttp_client(srv, headers=ADMIN_HEADERS)
    assert (await admin.get("/api/admin/keys")).status == 200  # the admin token never depends on the issuer


async def test_an_issuer_that_sends_its_documents_in_pieces_is_read_whole(srv, issuer, aiohttp_client):
    """Chunked answers, each document in two writes with a pause: read to the end, not to the
    first pause (aiohttp's ``content.read(n)`` returns only what has arrived)."""
    client = await aiohttp_client(srv)
    issuer.mode = "pieces"
    resp = await client.get("/admin/oidc/start", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith(issuer.issuer + "/authorize?")
    for _ in range(2):
        assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]
    assert issuer.requests == {"configuration": 1, "jwks": 1}
    issuer.rotate()  # a refetch reads them whole too
    srv.clock.now += COOLDOWN
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]


def _odd_keys() -> list[dict]:
    """Signing keys a JWKS may publish that Skywarden cannot use, each for its own reason."""
    ec_private = ec.generate_private_key(ec.SECP256R1())
    short = rsa.generate_private_key(public_exponent=65537, key_size=1024).public_key()
    return [
        {"kty": "EC", "kid": "odd", "alg": "none"},  # PyJWT raises NotImplementedError
        {"kty": "RSA", "kid": "unknown-alg", "alg": "RS999", "n": "AQAB", "e": "AQAB"},
        {**RSAAlgorithm.to_jwk(short, as_dict=True), "kid": "short"},
        {**ECAlgorithm.to_jwk(ec_private, as_dict=True), "kid": "private"},  # holds "d"
        {"kty": "OKP", "kid": "x25519", "crv": "X25519", "x": "AAAA"},
        {"kty": "EC", "kid": "\u202ewrong-size\x1b", "crv": "P-256", "x": "AAAA", "y": "AAAA"},
        {"kty": "EC", "kid": "enc", "use": "enc", "crv": "P-256"},  # not a signing key: left out without a word
    ]


async def test_keys_skywarden_cannot_use_are_left_out_logged_once_and_the_others_work(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    issuer.extra_keys = _odd_keys()
    for _ in range(2):
        assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]
    issuer.rotate()
    srv.clock.now += COOLDOWN
    assert [r.status for r in await every_door(client, srv, issuer)] == [200, 200, 200]
    assert issuer.requests == {"configuration": 2, "jwks": 2}
    lines = [
        e
        for e in drain_logs()
        if e.get("event") == "identity provider publishes keys Skywarden cannot use" and e["issuer"] == issuer.issuer
    ]
    assert len(lines) == 1  # once, not once per fetch
    assert lines[0]["kids"] == ["odd", "unknown-alg", "short", "private", "x25519", "\ufffdwrong-size\ufffd"]

    odd = issuer.mint({"aud": srv.resource, "scope": "tools"}, headers={"kid": "odd"})
    resp = await client.get("/api/mcp/tools", headers={"Authorization": f"Bearer {odd}"})
    assert resp.status == 401 and reason_of(resp) == "token_key"  # the issuer answers: a real refusal


async def test_a_jwks_of_only_keys_skywarden_cannot_use_is_a_503(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    issuer.extra_keys = _odd_keys()
    issuer.jwks_mode = "only extra keys"
    await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)
    await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)  # not a 401 the second time


async def test_console_sign_on_starts_while_only_the_jwks_cannot_be_read(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    issuer.jwks_mode = "error"
    resp = await client.get("/admin/oidc/start", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith(issuer.issuer + "/authorize?")
    await assert_unavailable(await every_door(client, srv, issuer), COOLDOWN)  # the keys are what is missing
    assert issuer.requests == {"configuration": 1, "jwks": 1}
