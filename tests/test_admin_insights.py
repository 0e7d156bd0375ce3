"""What the admin console reads: uses per hour or day, and the recent denials (shared through Redis)."""

from __future__ import annotations

import pytest

from skywarden.server import keys
from skywarden.server.app import create_app
from tests.support.admin import ADMIN_HEADERS, create_key
from tests.support.logs import SECRETS
from tests.support.services import redis_prefix


async def test_usage_counts_uses_per_hour_and_names_the_top_keys(client):
    for _ in range(3):
        assert (await client.get("/api/mcp/tools")).status == 200
    other = await create_key(client.admin, name="quiet key")
    resp = await client.get("/api/mcp/tools", headers={"X-API-Key": other["key"]})
    assert resp.status == 200
    day = await (await client.admin.get("/api/admin/usage")).json()
    assert day["window"] == "24h" and day["bucket"] == "hour" and len(day["series"]) == 24
    assert day["total"] == 4 and day["series"][-1]["count"] == 4
    assert [(t["key_id"], t["count"]) for t in day["top"]] == [(client.key_id, 3), (other["id"], 1)]
    month = await (await client.admin.get("/api/admin/usage", params={"window": "30d", "key_id": other["id"]})).json()
    assert month["bucket"] == "day" and len(month["series"]) == 30 and month["total"] == 1


@pytest.mark.parametrize(
    ("query", "field"),
    [({"window": "7d"}, "window"), ({"top": "0"}, "top"), ({"colour": "red"}, "colour"), ({"key_id": ""}, "key_id")],
)
async def test_malformed_usage_queries_are_named(client, query, field):
    resp = await client.admin.get("/api/admin/usage", params=query)
    body = await resp.json()
    assert resp.status == 422 and [e["field"] for e in body["errors"]] == [field]


async def test_recent_denials_name_the_reason_and_the_key_newest_first(make_client):
    client = await make_client(scopes=["get_alerts"])
    wrong = keys.generate_key("live")
    SECRETS.add(wrong)
    assert (await client.get("/api/mcp/tools", headers={"X-API-Key": wrong})).status == 401
    assert (await client.get("/api/mcp/tools", headers={"X-API-Key": "not-a-key"})).status == 401
    assert (await client.post("/api/mcp/tools/get_forecast", json={"latitude": 1, "longitude": 2})).status == 403
    anonymous = await client.get("/api/mcp/tools", headers={"X-API-Key": ""})
    assert anonymous.status == 401
    resp = await client.admin.get("/api/admin/denials")
    found = (await resp.json())["denials"]
    assert [d["status"] for d in found[:4]] == [401, 403, 401, 401]
    scope, malformed, unknown = found[1], found[2], found[3]
    assert scope["key_id"] == client.key_id and scope["reason"] == "scope"
    assert "key_prefix" not in malformed and malformed["reason"] == "malformed"
    assert unknown["key_prefix"] == keys.display_prefix(wrong) and unknown["reason"] == "unknown"
    assert all(wrong not in str(d) for d in found) and all(d["client_ip"] == "127.0.0.1" for d in found)
    assert len((await (await client.admin.get("/api/admin/denials", params={"limit": "2"})).json())["denials"]) == 2
    for bad in ({"limit": "0"}, {"limit": "501"}, {"limit": "x"}, {"since": "1"}):
        assert (await client.admin.get("/api/admin/denials", params=bad)).status == 422
    assert (await client.get("/api/admin/denials")).status == 401  # an API key is not an admin credential


async def test_denials_are_shared_by_instances_on_one_redis(make_settings, aiohttp_client):
    async with redis_prefix() as (url, prefix):
        settings = make_settings(redis_url=url, redis_key_prefix=prefix, secret="s" * 43)
        first, second = [await aiohttp_client(create_app(settings)) for _ in range(2)]
        wrong = keys.generate_key("live")
        SECRETS.add(wrong)
        assert (await first.get("/api/mcp/tools", headers={"X-API-Key": wrong})).status == 401
        resp = await second.get("/api/admin/denials", headers=ADMIN_HEADERS)
        found = (await resp.json())["denials"]
        assert found[0]["key_prefix"] == keys.display_prefix(wrong)


async def test_a_key_says_who_created_it(client, tmp_path):
    shown = await (await client.admin.get(f"/api/admin/keys/{client.key_id}")).json()
    assert shown["created_by"] == "admin"
