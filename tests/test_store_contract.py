"""The key store contract, run against SQLite and PostgreSQL alike (each test on its own
database): same behaviour behind the same interface, and only hashes stored."""

from __future__ import annotations

from datetime import timedelta

import pytest

from skywarden.server.auth.backends import open_store
from skywarden.server.auth.records import (
    USAGE_KEPT_DAYS,
    KeyFilter,
    KeyNotFound,
    KeyRecord,
    usage_cutoff,
    usage_hour,
    utcnow,
)
from tests.support.services import fresh_postgres_database


def record(key_id: str, **fields) -> KeyRecord:
    values = {
        "name": "k",
        "prefix": "skw_live_Abc",
        "environment": "live",
        "scopes": ["*"],
        "created_at": utcnow(),
    }
    values.update(fields)
    return KeyRecord(id=key_id, **values)


@pytest.fixture(params=["sqlite", "postgresql"])
async def store_url(request, tmp_path):
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'keys.db'}"
        return
    async with fresh_postgres_database() as url:
        yield url


@pytest.fixture
async def store(store_url):
    store = open_store(store_url)
    await store.open()
    yield store
    await store.close()


async def test_create_get_and_find_by_hash(store):
    await store.create(record("key_a", scopes=["get_alerts"], metadata={"team": "ops"}), "hash-a")
    got = await store.get("key_a")
    assert got.scopes == ["get_alerts"] and got.metadata == {"team": "ops"} and got.created_at.tzinfo
    match = await store.find_by_hash("hash-a")
    assert match.record.id == "key_a" and match.valid_until is None
    assert await store.find_by_hash("nope") is None and await store.get("nope") is None


async def test_list_filters_status_and_paging(store):
    now = utcnow()
    await store.create(record("key_1", owner="ann", created_at=now), "h1")
    await store.create(record("key_2", owner="bob", created_at=now + timedelta(seconds=1)), "h2")
    await store.create(record("key_3", owner="ann", created_at=now + timedelta(seconds=2)), "h3")
    await store.update("key_2", {"disabled": True})
    await store.revoke("key_3", "gone", now)
    await store.update("key_1", {"expires_at": now + timedelta(days=1)})

    async def ids(**filters):
        return [r.id for r in await store.list(KeyFilter(**filters))]

    assert await ids() == ["key_1", "key_2", "key_3"]
    assert await ids(owner="ann") == ["key_1", "key_3"]
    assert await ids(status="active") == ["key_1"]
    assert await ids(status="disabled") == ["key_2"]
    assert await ids(status="revoked") == ["key_3"]
    assert await ids(limit=1, offset=1) == ["key_2"]


async def test_update_revoke_and_missing_keys(store):
    await store.create(record("key_u"), "hu")
    updated = await store.update("key_u", {"name": "new", "scopes": ["get_forecast"], "rate_limit": "5/minute"})
    assert (updated.name, updated.scopes, updated.rate_limit) == ("new", ["get_forecast"], "5/minute")
    assert updated.updated_at is not None
    first = await store.revoke("key_u", "leaked", utcnow())
    again = await store.revoke("key_u", "other", utcnow())  # idempotent: the first revocation stays
    assert again.revoked_at == first.revoked_at and again.revoked_reason == "leaked"
    with pytest.raises(KeyNotFound):
        await store.update("key_missing", {"name": "x"})
    with pytest.raises(KeyNotFound):
        await store.revoke("key_missing", None, utcnow())
    with pytest.raises(ValueError):
        await store.update("key_u", {"id": "other"})


async def test_rotation_grace_and_second_rotation(store):
    now = utcnow()
    await store.create(record("key_r"), "old")
    await store.rotate("key_r", "new", "skw_live_New", now + timedelta(hours=1), now)
    assert (await store.find_by_hash("old")).valid_until == now + timedelta(hours=1)
    assert (await store.find_by_hash("new")).valid_until is None
    later = now + timedelta(minutes=1)
    await store.rotate("key_r", "newer", "skw_live_Nwr", later + timedelta(hours=1), later)
    assert (await store.find_by_hash("old")).valid_until == later  # the first grace ends now
    assert (await store.find_by_hash("new")).valid_until == later + timedelta(hours=1)
    await store.revoke("key_r", None, later)
    with pytest.raises(KeyNotFound):
        await store.rotate("key_r", "x", "skw_live_X", later, later)


async def test_usage_counts_add_up_and_last_use_only_moves_forward(store):
    now = utcnow()
    await store.create(record("key_use"), "hu")
    await store.record_usage({"key_use": (3, now)})
    await store.record_usage({"key_use": (2, now - timedelta(hours=1))})
    got = await store.get("key_use")
    assert got.use_count == 5 and got.last_used_at == now


async def test_uses_are_kept_per_hour_and_old_hours_are_purged(store):
    now = utcnow()
    hour = usage_hour(now)
    await store.create(record("key_a"), "ha")
    await store.create(record("key_b"), "hb")
    await store.record_usage({"key_a": (3, now), "key_b": (1, now - timedelta(hours=2))})
    await store.record_usage({"key_a": (2, now), "key_gone": (9, now)})  # a deleted key's uses are dropped
    rows = await store.usage_since(now - timedelta(hours=5))
    assert sorted((k, h, c) for k, h, c in rows) == [("key_a", hour, 5), ("key_b", hour - timedelta(hours=2), 1)]
    assert await store.usage_since(now + timedelta(hours=1)) == []
    store._usage_purge.last = None  # the next write may purge
    await store.record_usage({"key_a": (1, now - timedelta(days=USAGE_KEPT_DAYS + 2))})
    assert all(h >= usage_cutoff(now) for _, h, _ in await store.usage_since(now - timedelta(days=60)))


async def test_data_survives_reopening_and_migrations_run_once(store_url):
    first = open_store(store_url)
    await first.open()
    await first.create(record("key_keep"), "hk")
    await first.close()
    second = open_store(store_url)
    await second.open()
    try:
        assert (await second.get("key_keep")).id == "key_keep" and await second.ping()
    finally:
        await second.close()


async def test_ping_is_false_once_closed(store_url):
    store = open_store(store_url)
    await store.open()
    assert await store.ping()
    await store.close()
    assert not await store.ping()


async def test_the_change_feed_names_every_key_changed_since_a_time(store):
    start = utcnow() - timedelta(seconds=1)
    for key_id in ("key_quiet", "key_updated", "key_revoked", "key_rotated"):
        await store.create(record(key_id), "h-" + key_id)
    assert await store.changed_since(start) == []  # creating a key changes no cached one
    await store.update("key_updated", {"name": "renamed"})
    await store.revoke("key_revoked", "leaked", utcnow())
    later = utcnow()
    await store.rotate("key_rotated", "h-new", "skw_live_New", later + timedelta(hours=1), later)
    assert set(await store.changed_since(start)) == {"key_updated", "key_revoked", "key_rotated"}
    assert await store.changed_since(utcnow() + timedelta(seconds=5)) == []
