"""Skywarden on PostgreSQL end to end: the admin API and keys over real HTTP, only hashes in the
database, and a killed database connection recovered from without a restart."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from skywarden.server.app import create_app
from tests.support.admin import ADMIN_HEADERS, create_key
from tests.support.logs import SECRETS
from tests.support.services import fresh_postgres_database

SHARED_SECRET = "shared-server-secret-for-every-instance-0123"  # instances on one store share it
TERMINATE = (
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()"
)


@pytest.fixture
async def pg_url():
    async with fresh_postgres_database() as url:
        yield url


async def test_keys_live_in_postgres_and_only_as_hashes(pg_url, make_settings, aiohttp_client):
    settings = make_settings(database_url=pg_url, secret=SHARED_SECRET)
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


async def _uncached_clients(pg_url, make_settings, aiohttp_client):
    """A server on ``pg_url`` whose key cache expires at once (every request reaches the store),
    an admin client for it, and the headers of a fresh key."""
    settings = make_settings(database_url=pg_url, secret=SHARED_SECRET, key_cache_ttl="0.001")
    client = await aiohttp_client(create_app(settings))
    admin = await aiohttp_client(client.server, headers=ADMIN_HEADERS)
    key = await create_key(admin)
    SECRETS.add(key["key"])
    return client, admin, {"X-API-Key": key["key"]}


async def test_a_killed_database_connection_is_recovered_without_a_restart(pg_url, make_settings, aiohttp_client):
    client, admin, headers = await _uncached_clients(pg_url, make_settings, aiohttp_client)
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
    client, admin, headers = await _uncached_clients(pg_url, make_settings, aiohttp_client)
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


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    return subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", *args], capture_output=True, text=True, env=env, timeout=60
    )


@pytest.mark.slow
async def test_db_copy_moves_every_key_so_that_it_keeps_working(pg_url, tmp_path, make_settings, aiohttp_client):
    data = tmp_path / "sqlite-data"
    sqlite_url = f"sqlite:///{data / 'skywarden.db'}"
    source = await aiohttp_client(create_app(make_settings(data_dir=str(data))), headers=ADMIN_HEADERS)
    kept, gone, rotated = [await create_key(source, name=n) for n in ("kept", "gone", "rotated")]
    assert (await source.delete(f"/api/admin/keys/{gone['id']}")).status == 204
    resp = await source.post(f"/api/admin/keys/{rotated['id']}/rotate", json={"grace_seconds": 3600})
    new = (await resp.json())["key"]
    SECRETS.add(new)
    await source.get("/api/mcp/tools", headers={"X-API-Key": kept["key"]})
    await source.get("/api/admin/keys")  # flushes the use count into the store
    upstream = {"name": "remote", "url": "https://mcp.example.com/mcp", "enabled": False}
    upstream["headers"] = {"Authorization": "Bearer copied-upstream-credential-0123"}
    SECRETS.add("copied-upstream-credential-0123")
    assert (await source.post("/api/admin/upstreams", json=upstream)).status == 201

    status = _cli("db", "status", "--data-dir", str(data))
    assert status.returncode == 0 and "schema version 4 of 4 (up to date)" in status.stdout, status.stderr
    copied = _cli("db", "copy", "--from", sqlite_url, "--to", pg_url)
    assert copied.returncode == 0, copied.stderr
    assert "copied 3 keys (1 revoked) with 4 hashes, and 1 upstreams" in copied.stdout
    again = _cli("db", "copy", "--from", sqlite_url, "--to", pg_url)
    assert again.returncode == 2 and "already holds keys" in again.stderr

    secret = str(data / "server-secret")  # the same server secret: the hashes are HMACs with it
    target = await aiohttp_client(create_app(make_settings(database_url=pg_url, secret_file=secret)))
    for key, expected in ((kept["key"], 200), (gone["key"], 401), (rotated["key"], 200), (new, 200)):
        assert (await target.get("/api/mcp/tools", headers={"X-API-Key": key})).status == expected
    listed = await (await target.get("/api/admin/keys", headers=ADMIN_HEADERS)).json()
    by_name = {k["name"]: k for k in listed["keys"]}
    assert by_name["kept"]["use_count"] >= 1 and by_name["gone"]["status"] == "revoked"
    [remote] = (await (await target.get("/api/admin/upstreams", headers=ADMIN_HEADERS)).json())["upstreams"]
    assert remote["state"] == "disabled" and remote["options"]["headers"] == ["Authorization"]  # opened: one secret


@pytest.mark.slow
def test_db_commands_refuse_what_is_not_there(tmp_path):
    result = _cli("db", "status", "--data-dir", str(tmp_path / "none"))
    assert result.returncode == 2 and "no key store" in result.stderr and not (tmp_path / "none").exists()
    result = _cli("db", "copy", "--from", f"sqlite:///{tmp_path}/missing.db", "--to", f"sqlite:///{tmp_path}/t.db")
    assert result.returncode == 2 and "--from: no SQLite store" in result.stderr


@pytest.mark.parametrize(
    ("missing", "names"),
    [({"secret": ""}, "SKYWARDEN_SECRET_FILE"), ({"admin_token": ""}, "SKYWARDEN_ADMIN_TOKEN_FILE")],
)
def test_a_shared_store_needs_shared_secrets(make_settings, tmp_path, missing, names):
    """An instance would otherwise generate its own secret or admin token beside the others'."""
    from skywarden.server.auth.credentials import CredentialError, prepare_credentials

    values = {"secret": "s" * 40, "database_url": "postgresql://postgres@127.0.0.1:5432/x", **missing}
    with pytest.raises(CredentialError) as info:
        prepare_credentials(make_settings(**values))
    assert names in str(info.value)
    assert not (tmp_path / "data" / "server-secret").exists()
