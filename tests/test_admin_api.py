"""The admin API: every field validated, key material shown once, never listed."""

from __future__ import annotations

import pytest

from skywarden.server.appkeys import KEY_STORE
from skywarden.server.keys import KEY_REGEX, is_well_formed
from tests.support.admin import create_key


@pytest.fixture
async def admin(make_client):
    return (await make_client()).admin


async def test_create_returns_the_key_once(admin):
    resp = await admin.post(
        "/api/admin/keys",
        json={
            "name": "ci bot",
            "owner": "platform",
            "scopes": ["get_alerts"],
            "environment": "test",
            "expires_at": "2999-01-01T00:00:00Z",
            "rate_limit": "10/minute",
            "metadata": {"ticket": "OPS-1"},
        },
    )
    assert resp.status == 201
    body = await resp.json()
    assert is_well_formed(body["key"]) and body["key"].startswith("skw_test_")
    assert body["key"].startswith(body["prefix"]) and len(body["prefix"]) < len(body["key"]) // 2
    assert body["scopes"] == ["get_alerts"] and body["status"] == "active"
    assert body["expires_at"] == "2999-01-01T00:00:00Z"
    shown = await (await admin.get(f"/api/admin/keys/{body['id']}")).text()
    listed = await (await admin.get("/api/admin/keys")).text()
    for text in (shown, listed):
        assert body["key"] not in text and not KEY_REGEX.search(text)
        assert "hash" not in text


async def test_defaults(admin):
    body = await create_key(admin, name="minimal")
    assert body["scopes"] == ["*"] and body["environment"] == "live"
    assert body["expires_at"] is None and body["rate_limit"] is None and body["metadata"] == {}


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "name"),
        ({"name": ""}, "name"),
        ({"name": "x" * 101}, "name"),
        ({"name": 5}, "name"),
        ({"name": "a", "scopes": []}, "scopes"),
        ({"name": "a", "scopes": "get_alerts"}, "scopes"),
        ({"name": "a", "scopes": ["no_such_tool"]}, "scopes"),
        ({"name": "a", "scopes": [1]}, "scopes.0"),
        ({"name": "a", "environment": "prod"}, "environment"),
        ({"name": "a", "environment": "admin"}, "environment"),
        ({"name": "a", "expires_at": "tomorrow"}, "expires_at"),
        ({"name": "a", "expires_at": "2999-01-01T00:00:00"}, "expires_at"),
        ({"name": "a", "expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
        ({"name": "a", "expires_at": "9999-12-31T23:59:59-05:00"}, "expires_at"),  # past year 9999 in UTC
        ({"name": "a", "expires_at": "9999-12-31T23:59:59+14:00"}, "expires_at"),
        ({"name": "a", "expires_at": "0001-01-01T00:00:00+14:00"}, "expires_at"),
        ({"name": "a", "rate_limit": "lots"}, "rate_limit"),
        ({"name": "a", "metadata": []}, "metadata"),
        ({"name": "a", "metadata": {"big": "x" * 5000}}, "metadata"),
        ({"name": "a", "id": "key_mine"}, "id"),
        ({"name": "a", "key": "skw_live_x"}, "key"),
    ],
)
async def test_create_validation(admin, payload, field):
    resp = await admin.post("/api/admin/keys", json=payload)
    assert resp.status == 422, await resp.text()
    body = await resp.json()
    assert field in [e["field"] for e in body["errors"]]


async def test_create_body_must_be_an_object(admin):
    resp = await admin.post("/api/admin/keys", json=["name"])
    assert resp.status == 422
    resp = await admin.post("/api/admin/keys", data="{", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    resp = await admin.post("/api/admin/keys", data="name=a", headers={"Content-Type": "text/plain"})
    assert resp.status == 415


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({}, "_schema"),
        ({"disabled": "maybe"}, "disabled"),
        ({"scopes": ["nope"]}, "scopes"),
        ({"prefix": "x"}, "prefix"),
        ({"expires_at": "2000-01-01T00:00:00Z"}, "expires_at"),
    ],
)
async def test_update_validation(admin, payload, field):
    key = await create_key(admin)
    resp = await admin.patch(f"/api/admin/keys/{key['id']}", json=payload)
    assert resp.status == 422
    assert field in [e["field"] for e in (await resp.json())["errors"]]


async def test_update_fields(admin):
    key = await create_key(admin)
    resp = await admin.patch(
        f"/api/admin/keys/{key['id']}",
        json={"name": "renamed", "scopes": ["get_forecast"], "rate_limit": "5/second", "expires_at": None},
    )
    body = await resp.json()
    assert (body["name"], body["scopes"], body["rate_limit"]) == ("renamed", ["get_forecast"], "5/second")
    assert body["updated_at"] is not None


async def test_unknown_ids_are_404(admin):
    for method, path in (
        ("GET", "/api/admin/keys/key_nope"),
        ("PATCH", "/api/admin/keys/key_nope"),
        ("DELETE", "/api/admin/keys/key_nope"),
        ("POST", "/api/admin/keys/key_nope/rotate"),
        ("GET", "/api/admin/keys/" + "x" * 200),
    ):
        resp = await admin.request(method, path, json={"name": "x"} if method == "PATCH" else None)
        assert resp.status == 404, (method, path)
        assert resp.content_type == "application/problem+json"


async def test_rotate_validation_and_revoked_conflict(admin):
    key = await create_key(admin)
    resp = await admin.post(f"/api/admin/keys/{key['id']}/rotate", json={"grace_seconds": -1})
    assert resp.status == 422
    resp = await admin.post(f"/api/admin/keys/{key['id']}/rotate", json={"grace_seconds": 10**9})
    assert resp.status == 422
    await admin.delete(f"/api/admin/keys/{key['id']}")
    assert (await admin.post(f"/api/admin/keys/{key['id']}/rotate")).status == 409
    assert (await admin.patch(f"/api/admin/keys/{key['id']}", json={"name": "z"})).status == 409


async def test_list_filters(admin):
    a = await create_key(admin, name="alpha", owner="team-a", environment="test")
    b = await create_key(admin, name="beta", owner="team-b")
    await admin.delete(f"/api/admin/keys/{b['id']}")

    async def ids(query):
        resp = await admin.get("/api/admin/keys?" + query)
        assert resp.status == 200
        return {k["id"] for k in (await resp.json())["keys"]}

    assert await ids("owner=team-a") == {a["id"]}
    assert await ids("status=revoked") == {b["id"]}
    assert a["id"] in await ids("status=active") and b["id"] not in await ids("status=active")
    assert await ids("environment=test") == {a["id"]}
    assert len(await ids("limit=1")) == 1


@pytest.mark.parametrize(
    "query",
    [
        "status=weird",
        "limit=0",
        "limit=x",
        "offset=-1",
        "offset=9223372036854775808",  # beyond every store's integers
        "offset=99999999999999999999999",
        "limit=1e3",
        "colour=red",
        "environment=prod",
    ],
)
async def test_list_query_validation(admin, query):
    resp = await admin.get("/api/admin/keys?" + query)
    assert resp.status == 422


async def test_revoke_reason_is_kept(admin):
    key = await create_key(admin)
    assert (await admin.delete(f"/api/admin/keys/{key['id']}", json={"reason": "leaked"})).status == 204
    body = await (await admin.get(f"/api/admin/keys/{key['id']}")).json()
    assert body["status"] == "revoked" and body["revoked_reason"] == "leaked" and body["revoked_at"]
    resp = await admin.delete(f"/api/admin/keys/{key['id']}", json={"reason": 5})
    assert resp.status == 422


@pytest.mark.parametrize(
    "raw",
    [
        b'{"name": "\\ud800"}',
        b'{"name": "a", "owner": "\\udfff"}',
        b'{"name": "a", "metadata": {"\\ud800": 1}}',
        b'{"name": "a", "metadata": {"k": ["\\udbff"]}}',
    ],
)
async def test_a_create_that_is_refused_stores_nothing(admin, raw):
    before = (await (await admin.get("/api/admin/keys")).json())["keys"]
    resp = await admin.post("/api/admin/keys", data=raw, headers={"Content-Type": "application/json"})
    assert resp.status == 400 and resp.content_type == "application/problem+json"
    assert "surrogate" in (await resp.json())["detail"]
    listing = await admin.get("/api/admin/keys")
    assert listing.status == 200 and (await listing.json())["keys"] == before


async def test_a_stored_record_that_is_not_text_never_breaks_a_read(make_client):
    """Records written before the door refused lone surrogates still list (escaped, not a 500)."""
    client = await make_client()
    admin = client.admin
    key = await create_key(admin)
    await client.server.app[KEY_STORE].update(key["id"], {"metadata": {"note": "\ud800"}})
    resp = await admin.get("/api/admin/keys/" + key["id"])
    assert resp.status == 200 and (await resp.json())["metadata"] == {"note": "\ud800"}
    assert (await admin.get("/api/admin/keys")).status == 200
