"""Skywarden on PostgreSQL end to end: the admin API and keys over real HTTP, only hashes in the
database, and a killed database connection recovered from without a restart."""

from __future__ import annotations

import asyncpg
import pytest

from skywarden.server.app import create_app
from tests.conftest import ADMIN_HEADERS, SECRETS, create_key
from tests.services import fresh_postgres_database

TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


@pytest.fixture
async def pg_url():
    async with fresh_postgres_database() as url:
        yield url


async def test_keys_live_in_postgres_and_only_as_hashes(pg_url, make_settings, aiohttp_client):
    settings = make_settings(database_url=pg_url)
    admin = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    key = await create_key(admin, scopes=["get_alerts"])
    gone = await create_key(admin)
    assert (await admin.delete(f"/api/admin/keys/{gone['id']}")).status == 204

    # a second app on the same database: another instance
    other = await aiohttp_client(create_app(settings))
    assert (await other.get("/api/mcp/tools", headers={"X-API-Key": key["key"]})).status == 200
    assert (await other.get("/api/mcp/tools", headers={"X-API-Key": gone["key"]})).status == 401

    conn = await asyncpg.connect(pg_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_keys")
        hashes = await conn.fetch("SELECT * FROM api_key_hashes")
    finally:
        await conn.close()
    dump = repr([dict(r) for r in rows]) + repr([dict(r) for r in hashes])
    for secret in (key["key"], gone["key"]):
        assert secret not in dump
    assert len(hashes) == 2


async def test_a_killed_database_connection_is_recovered_without_a_restart(pg_url, make_settings, aiohttp_client):
    client = await aiohttp_client(create_app(make_settings(database_url=pg_url, key_cache_ttl="0.001")))
    admin = await aiohttp_client(client.server, headers=ADMIN_HEADERS)
    key = await create_key(admin)
    SECRETS.add(key["key"])
    headers = {"X-API-Key": key["key"]}
    assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    database = pg_url.rsplit("/", 1)[1]
    killer = await asyncpg.connect(pg_url.rsplit("/", 1)[0] + "/postgres")
    try:
        killed = await killer.fetchval(TERMINATE, database)
    finally:
        await killer.close()
    assert killed >= 1
    for _ in range(3):  # every request after the kill is served: the store reconnects by itself
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    assert (await client.get("/api/health/ready")).status == 200
    assert (await admin.get("/api/admin/keys")).status == 200


async def _connections(url: str, allowed: bool) -> None:
    database = url.rsplit("/", 1)[1]
    admin = await asyncpg.connect(url.rsplit("/", 1)[0] + "/postgres")
    try:
        await admin.execute(f'ALTER DATABASE "{database}" WITH ALLOW_CONNECTIONS {str(allowed).lower()}')
        if not allowed:
            await admin.fetchval(TERMINATE, database)
    finally:
        await admin.close()


async def test_an_unreachable_database_is_a_503_and_recovery_needs_no_restart(pg_url, make_settings, aiohttp_client):
    client = await aiohttp_client(create_app(make_settings(database_url=pg_url, key_cache_ttl="0.001")))
    admin = await aiohttp_client(client.server, headers=ADMIN_HEADERS)
    key = await create_key(admin)
    SECRETS.add(key["key"])
    headers = {"X-API-Key": key["key"]}
    await _connections(pg_url, allowed=False)
    try:
        resp = await client.get("/api/mcp/tools", headers=headers)
        body = await resp.json()
        assert resp.status == 503 and body["type"].endswith("/store-unavailable") and resp.headers["Retry-After"]
        assert (await client.get("/api/health/ready")).status == 503
        assert (await client.get("/api/health")).status == 200  # alive, not ready
        assert (await admin.get("/api/admin/keys")).status == 503
    finally:
        await _connections(pg_url, allowed=True)
    assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    assert (await client.get("/api/health/ready")).status == 200
