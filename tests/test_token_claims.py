"""What a verified token says, end to end: signed tokens whose claims no provider should issue
(lone surrogates, controls, NUL, overlong or mistyped values, scopes that only look right),
at both tool doors and the admin API, signed by a loopback issuer (tests/support/fake_idp.py).

A token is either refused with a 401 that names the claim, or served; whatever it carried, the
audit log, the store and later requests keep working (docs/identity.md, "Claims")."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skywarden.server.appkeys import KEY_STORE
from tests.support.admin import ADMIN_HEADERS, create_key
from tests.support.fake_idp import ADMIN_AUDIENCE, ADMIN_ROLE, server_trusting
from tests.support.logs import drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc
from tests.support.services import fresh_postgres_database

FORECAST = {"latitude": 39.7456, "longitude": -97.0892}
PLAIN = ("\x00", "\x1b", "\ud800", "\udfff", "\u2028", "\u202e", "\x85", "\u200b", "\ufeff", "\U000e0041", "\u3164")


@pytest.fixture
async def srv(make_server, make_settings, issuer):
    return await server_trusting(
        make_server,
        make_settings,
        issuer,
        oauth_scope_map='{"weather": ["get_forecast"]}',
        auth_failure_limit="",
        rate_limit="",
    )


def audit_events(resp) -> list[dict]:
    rid = resp.headers["X-Request-ID"]
    return [e for e in drain_logs() if e.get("request_id") == rid]


def request_event(resp) -> dict:
    found = [e for e in audit_events(resp) if e.get("audit") and e["event"] == "request"]
    assert len(found) == 1, found
    return found[0]


def written(value) -> None:
    """Written to the log as JSON and readable back: no lone surrogate, control or bidi override."""
    text = json.dumps(value, ensure_ascii=False)
    text.encode("utf-8")
    assert not any(bad in text for bad in PLAIN), text


async def call_both_doors(client, token: str, tool: str = "get_forecast") -> tuple:
    headers = {"Authorization": f"Bearer {token}"}
    arguments = FORECAST if tool == "get_forecast" else {"state": "KS"}
    rest = await client.post(f"/api/mcp/tools/{tool}", json=arguments, headers=headers)
    message = modern_rpc("tools/call", {"name": tool, "arguments": arguments})
    mcp = await client.post("/mcp", json=message, headers={**modern_headers(message), **headers})
    return rest, mcp


UNUSABLE = {
    "surrogate in sub": {"sub": "user\ud800"},
    "low surrogate in sub": {"sub": "\udc00user"},
    "NUL in sub": {"sub": "user\x00"},
    "terminal escape in sub": {"sub": "\x1b]0;owned\x07"},
    "line separator in sub": {"sub": "a\u2028b"},
    "bidi override in sub": {"sub": "\u202enimda"},
    "sub of 256 characters": {"sub": "s" * 256},
    "numeric sub": {"sub": 12345},
    "list sub": {"sub": ["a"]},
    "blank sub": {"sub": "   "},
    "zero-width space in sub": {"sub": "admin\u200b"},
    "sub of fillers": {"sub": "\u3164\u115f\u2800"},
    "sub of tag characters": {"sub": "\U000e0061\U000e0064"},
    "sub of variation selectors": {"sub": "\ufe0f\ufe0e"},
    "scope as a list": {"scope": ["tools"]},
    "invisible scope": {"scope": "tools \u2060"},
    "zero-width space in a scope": {"scope": "tool:get_forecast\u200b"},
    "numeric scope": {"scope": 7},
    "object scope": {"scope": {"tools": True}},
    "scp list with a number": {"scp": ["tools", 1]},
    "surrogate in scope": {"scope": "tools \udc00"},
    "tab between scopes": {"scope": "tools\ttool:get_forecast"},
    "NUL in an scp entry": {"scp": ["tools\x00"]},
    "trailing space in scope": {"scope": "tools "},
    "empty scp entry": {"scp": ["tools", ""]},
}


@pytest.mark.slow  # end to end at every door; the claim rules themselves are fast in test_identity_units
async def test_a_token_with_an_unusable_subject_or_scope_claim_is_a_401_at_every_door(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    for case, claims in UNUSABLE.items():
        scoped = claims if "scope" in claims or "scp" in claims else {"scope": "tools", **claims}
        tool_token = issuer.mint({"aud": srv.resource, **scoped})
        for resp in await call_both_doors(client, tool_token):
            assert resp.status == 401, (case, await resp.text())
            challenge = resp.headers["WWW-Authenticate"]
            assert 'error="invalid_token"' in challenge and " claim " in challenge, case
            assert request_event(resp)["reason"] == "token_claims", case
        assert (await resp.json())["error"]["code"] < 0  # /mcp answers in JSON-RPC

        admin_token = issuer.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE], **claims})
        resp = await client.post(
            "/api/admin/keys", json={"name": "x"}, headers={"Authorization": f"Bearer {admin_token}"}
        )
        body = await resp.json()
        assert resp.status == 401 and " claim " in body["detail"], case
        assert resp.content_type == "application/problem+json"


@pytest.mark.slow  # end to end at every door; the claim rules themselves are fast in test_identity_units
async def test_hostile_strings_in_the_issuer_or_the_header_are_refused_by_their_check(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    assert (await call_both_doors(client, issuer.mint({"aud": srv.resource, "scope": "tools"})))[0].status == 200
    for claims, headers, reason in [
        ({"iss": issuer.issuer + "\ud800"}, {}, "token_issuer"),
        ({"iss": ["\x00"]}, {}, "token_issuer"),
        ({}, {"kid": "fake-1\udfff"}, "token_key"),
        ({}, {"kid": "\x1b[2J"}, "token_key"),
        ({}, {"alg": ["ES256"]}, "token_algorithm"),
        ({"aud": ["urn:\ud800"]}, {}, "token_audience"),
        ({"jti": {"x": "\ud800"}}, {}, "token_claims"),
    ]:
        token = issuer.mint({"aud": srv.resource, "scope": "tools", **claims}, headers=headers)
        for resp in await call_both_doors(client, token):
            assert resp.status == 401, (claims, headers, await resp.text())
            event = request_event(resp)
            assert event["reason"] == reason, (claims, headers)
            written(event)


HARMLESS = {
    "surrogates in display claims": {
        "name": "Eve \ud800",
        "email": "eve\udfff@example.test",
        "preferred_username": "\udbff",
    },
    "controls in display claims": {"name": "\x1b[2J\x00Eve", "email": "eve\r\n@example.test"},
    "bidi override in name": {"name": "Eve\u202egnp.exe", "email": "\u2066eve@example.test"},
    "invisible characters in display claims": {"name": "\u200bEve\U000e0041\u00ad", "email": "\ufeffeve@example.test"},
    "a name that shows nothing": {"name": "\u3164\u200b", "preferred_username": "\ufe0f", "email": "\u2800"},
    "a very long name": {"name": "E" * 3000, "email": "e" * 1000 + "@example.test"},
    "no strings where strings go": {"name": {"first": "Eve"}, "email": ["eve@example.test"], "preferred_username": 12},
    "surrogates in claims never shown": {
        "client_id": "c\udfff",
        "azp": "\x00",
        "jti": "\ud800",
        "act": {"sub": "\ud800", "nested": [{"x": "\x1b"}]},
        "realm_access": {"roles": ["\udc00"]},
        "roles": [ADMIN_ROLE, "\ud800", {"x": "\x00"}],
    },
    "a surrogate in aud beside ours": {"aud+": "urn:\ud800"},
    "an exp past every clock": {"exp": 10**400},
}


def _with_audience(claims: dict, audience: str) -> dict:
    claims = dict(claims)
    extra = claims.pop("aud+", None)
    claims["aud"] = [audience, extra] if extra else audience
    return claims


@pytest.mark.slow  # end to end at every door; the claim rules themselves are fast in test_identity_units
async def test_claims_that_are_only_shown_are_cleaned_and_every_door_keeps_working(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    admin = await aiohttp_client(srv, headers=ADMIN_HEADERS)
    for case, claims in HARMLESS.items():
        token = issuer.mint({"scope": "tools", **_with_audience(claims, srv.resource)})
        for resp in await call_both_doors(client, token):
            assert resp.status == 200, (case, await resp.text())
            event = request_event(resp)
            assert event["principal"] == "subject" and event["subject"] == "someone", case
            written(event)
            if case == "a name that shows nothing":
                assert event["subject_name"] == "someone" and "email" not in event

        admin_token = issuer.mint({"roles": [ADMIN_ROLE], **_with_audience(claims, ADMIN_AUDIENCE)})
        signed_in = {"Authorization": f"Bearer {admin_token}"}
        resp = await client.post("/api/admin/keys", json={"name": case}, headers=signed_in)
        assert resp.status == 201, (case, await resp.text())
        created = await resp.json()
        written(created["created_by"])
        action = next(e for e in audit_events(resp) if e.get("event") == "admin action")
        assert action["actor_subject"] == "someone", case
        written(action)
        shown = await admin.get(f"/api/admin/keys/{created['id']}")
        assert shown.status == 200 and (await shown.json())["created_by"] == created["created_by"]
        assert (
            await client.patch(f"/api/admin/keys/{created['id']}", json={"name": "y"}, headers=signed_in)
        ).status == 200
    listed = await admin.get("/api/admin/keys")
    assert listed.status == 200 and len((await listed.json())["keys"]) == len(HARMLESS)


async def test_a_refused_admin_with_a_hostile_name_is_recorded_and_the_denials_still_read(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    token = issuer.mint({"aud": ADMIN_AUDIENCE, "roles": ["Reader"], "name": "\ud800\x00\u202e", "email": "\udfff"})
    resp = await client.get("/api/admin/keys", headers={"Authorization": f"Bearer {token}"})
    assert resp.status == 403
    written(request_event(resp))
    denials = await client.get("/api/admin/denials", headers=ADMIN_HEADERS)
    assert denials.status == 200 and any(d.get("subject") == "someone" for d in (await denials.json())["denials"])


async def test_an_admin_signed_in_with_hostile_display_claims_writes_to_postgresql(
    make_server, make_settings, aiohttp_client, issuer
):
    async with fresh_postgres_database() as url:
        srv = await server_trusting(make_server, make_settings, issuer, database_url=url, secret="s" * 40)
        client = await aiohttp_client(srv)
        token = issuer.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE], "email": "a\x00\ud800@example.test"})
        resp = await client.post("/api/admin/keys", json={"name": "pg"}, headers={"Authorization": f"Bearer {token}"})
        assert resp.status == 201, await resp.text()
        stored = await srv.app[KEY_STORE].get((await resp.json())["id"])
        assert stored.created_by == "a\ufffd\ufffd@example.test"


JSON_TEXT = st.text(
    st.one_of(st.sampled_from(["a", " ", "é", *PLAIN]), st.characters(exclude_categories=[])), max_size=12
)
ANY_CLAIM = st.recursive(
    st.one_of(JSON_TEXT, st.integers(-(2**70), 2**70), st.booleans(), st.none(), st.floats(allow_nan=False)),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(JSON_TEXT, inner, max_size=3)),
    max_leaves=8,
)


@pytest.mark.slow  # end to end at every door; the claim rules themselves are fast in test_identity_units
@settings(
    max_examples=40,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    claims=st.dictionaries(
        st.sampled_from(["sub", "name", "preferred_username", "email", "scope", "scp", "roles", "client_id", "x"]),
        st.one_of(JSON_TEXT, ANY_CLAIM),
        max_size=5,
    ),
    door=st.sampled_from(["rest", "mcp", "admin"]),
)
async def test_any_claims_in_a_signed_token_get_a_clear_answer_never_a_500(srv, issuer, aiohttp_client, claims, door):
    client = await aiohttp_client(srv)
    if door == "admin":
        token = issuer.mint({"aud": ADMIN_AUDIENCE, "roles": [ADMIN_ROLE], **claims})
        resp = await client.post("/api/admin/keys", json={"name": "p"}, headers={"Authorization": f"Bearer {token}"})
        statuses = {201, 401, 403}
    else:
        token = issuer.mint({"aud": srv.resource, **claims})
        rest, mcp = await call_both_doors(client, token)
        resp = rest if door == "rest" else mcp
        statuses = {200, 401, 403}
    assert resp.status in statuses, await resp.text()
    written(request_event(resp))


# --- scopes exactly as written -----------------------------------------------------------------

NOT_A_GRANT = [
    "tool:*",
    "tool:",
    "tool:get_*",
    "tool:*cast",
    "*",
    "TOOLS",
    "Tools",
    "tool:GET_FORECAST",
    "tool:get_forecast,get_alerts",
    "tool:get_forecast;get_alerts",
    "tools\u00a0",
    "tооls",  # Cyrillic o
    "ｔｏｏｌｓ",  # fullwidth
    "tool:Weather",
    "tool:weather*",
    "weather*",
    "Weather",
    "tool:tools",
    "tool::get_forecast",
]


async def test_only_the_documented_scopes_grant_tools_at_both_doors(srv, issuer, aiohttp_client):
    client = await aiohttp_client(srv)
    for scope in NOT_A_GRANT:
        token = issuer.mint({"aud": srv.resource, "scope": f"openid {scope}"})
        for resp in await call_both_doors(client, token):
            assert resp.status == 403, (scope, await resp.text())
            assert 'error="insufficient_scope"' in resp.headers["WWW-Authenticate"]
        listed = await client.get("/api/mcp/tools", headers={"Authorization": f"Bearer {token}"})
        assert (await listed.json())["tools"] == [], scope
    for scope, tool, status in [
        ("tools", "get_alerts", 200),
        ("tool:get_forecast", "get_forecast", 200),
        ("tool:get_forecast", "get_alerts", 403),
        ("tool:weather", "get_forecast", 200),  # the scope name both weather tools declare
        ("tool:weather", "get_alerts", 200),
        ("weather", "get_forecast", 200),  # mapped by this server's oauth_scope_map to get_forecast alone
        ("weather", "get_alerts", 403),
    ]:  # scope: a string (RFC 9068); scp: a string (Entra ID) or a list (Okta)
        for claim in ({"scope": f"openid {scope}"}, {"scp": f"{scope} email"}, {"scp": ["openid", scope]}):
            token = issuer.mint({"aud": srv.resource, **claim})
            assert {r.status for r in await call_both_doors(client, token, tool)} == {status}, (claim, tool)
        listed = issuer.mint({"aud": srv.resource, "scope": [scope]})
        for resp in await call_both_doors(client, listed, tool):  # a list is not what RFC 9068 writes
            assert resp.status == 401 and request_event(resp)["reason"] == "token_claims", scope


async def test_a_scope_map_naming_a_tool_that_does_not_exist_is_warned_about_at_start_up(
    make_server, make_settings, aiohttp_client, issuer
):
    gone = f"gone_{issuer.port}"  # this test's own line among the session's logs
    scope_map = {"weather": ["get_forecast", "get_forcast"], "old": [gone], "all": ["*"], "fine": ["get_alerts"]}
    srv = await server_trusting(make_server, make_settings, issuer, oauth_scope_map=json.dumps(scope_map))
    client = await aiohttp_client(srv)
    lines = [e for e in drain_logs() if e.get("event", "").startswith("oauth_scope_map names") and gone in str(e)]
    assert len(lines) == 1 and lines[0]["unknown"] == {"weather": ["get_forcast"], "old": [gone]}
    token = issuer.mint({"aud": srv.resource, "scope": "old weather"})
    assert {r.status for r in await call_both_doors(client, token)} == {200}  # the names that exist still grant


NOT_A_KEY_SCOPE = ["get_*", "GET_FORECAST", " get_forecast", "get_forecast ", "**", "tools", "tool:get_forecast", "all"]


async def test_a_key_scope_is_a_tool_name_or_star_exactly(make_client):
    client = await make_client(scopes=["get_alerts"])
    for scope in NOT_A_KEY_SCOPE:
        resp = await client.admin.post("/api/admin/keys", json={"name": "k", "scopes": [scope]})
        assert resp.status == 422, scope
    store = client.server.app[KEY_STORE]
    for scope in NOT_A_KEY_SCOPE:  # as a store written by another tool or release could hold them
        key = await create_key(client.admin, scopes=["get_alerts"])
        await store.update(key["id"], {"scopes": [scope]})
        keyed = {"X-API-Key": key["key"]}
        resp = await client.anonymous.post("/api/mcp/tools/get_forecast", json=FORECAST, headers=keyed)
        assert resp.status == 403, scope
        assert (await (await client.anonymous.get("/api/mcp/tools", headers=keyed)).json())["tools"] == []
