"""Key store on SQLite (aiosqlite): embedded, zero set-up, WAL, versioned schema."""

from __future__ import annotations

import asyncio
import builtins
import json
import os
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiosqlite

from skywarden.server.auth.open_failures import explain_sqlite
from skywarden.server.auth.records import (
    CHANGES_AT_MOST,
    UPDATABLE,
    HashMatch,
    KeyFilter,
    KeyNotFound,
    KeyRecord,
    PurgeSchedule,
    SchemaTooNew,
    StoredHash,
    StoredUpstream,
    TooManyUpstreams,
    UpstreamExists,
    usage_cutoff,
    usage_hour,
    utcnow,
)

MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT,
        prefix TEXT NOT NULL,
        environment TEXT NOT NULL,
        scopes TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT,
        expires_at TEXT,
        last_used_at TEXT,
        use_count INTEGER NOT NULL DEFAULT 0,
        disabled INTEGER NOT NULL DEFAULT 0,
        disabled_reason TEXT,
        revoked_at TEXT,
        revoked_reason TEXT,
        rate_limit TEXT,
        metadata TEXT NOT NULL DEFAULT '{}'
    );
    CREATE TABLE api_key_hashes (
        key_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        valid_until TEXT,
        created_at TEXT NOT NULL
    );
    CREATE INDEX api_key_hashes_key_id ON api_key_hashes (key_id);
    CREATE INDEX api_keys_owner ON api_keys (owner);
    """,
    # 2: the change feed (changed_since) reads keys by the time they last changed
    """
    CREATE INDEX api_keys_updated_at ON api_keys (updated_at);
    """,
    # 3: uses per key and hour, for the admin console's usage charts (kept USAGE_KEPT_DAYS)
    """
    CREATE TABLE api_key_usage (
        key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        hour TEXT NOT NULL,
        count INTEGER NOT NULL,
        PRIMARY KEY (key_id, hour)
    );
    CREATE INDEX api_key_usage_hour ON api_key_usage (hour);
    ALTER TABLE api_keys ADD COLUMN created_by TEXT;
    """,
    # 4: upstream MCP servers added through the admin API or CLI (docs/gateway.md)
    """
    CREATE TABLE upstreams (
        name TEXT PRIMARY KEY,
        spec TEXT NOT NULL,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        created_by TEXT
    );
    """,
]

_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S.%fZ"
_COLUMNS = (
    "id, name, owner, prefix, environment, scopes, created_at, updated_at, expires_at, last_used_at, "
    "use_count, disabled, disabled_reason, revoked_at, revoked_reason, rate_limit, metadata, created_by"
)


def _t(value: datetime | None) -> str | None:
    return value.astimezone(UTC).strftime(_TIME_FORMAT) if value is not None else None


def _dt(value: str | None) -> datetime | None:
    return _when(value) if value else None


def _when(value: str) -> datetime:
    """A time from a NOT NULL column."""
    return datetime.strptime(value, _TIME_FORMAT).replace(tzinfo=UTC)


async def _scalar(cur: aiosqlite.Cursor) -> Any:
    """The first column of a query that always answers one row (an aggregate, ``SELECT 1``)."""
    row = await cur.fetchone()
    assert row is not None, "an aggregate query answers one row"
    return row[0]


def _record(row: Any) -> KeyRecord:
    return KeyRecord(
        id=row[0],
        name=row[1],
        owner=row[2],
        prefix=row[3],
        environment=row[4],
        scopes=json.loads(row[5]),
        created_at=_when(row[6]),
        updated_at=_dt(row[7]),
        expires_at=_dt(row[8]),
        last_used_at=_dt(row[9]),
        use_count=row[10],
        disabled=bool(row[11]),
        disabled_reason=row[12],
        revoked_at=_dt(row[13]),
        revoked_reason=row[14],
        rate_limit=row[15],
        metadata=json.loads(row[16]),
        created_by=row[17],
    )


def _row(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.name,
        record.owner,
        record.prefix,
        record.environment,
        json.dumps(record.scopes),
        _t(record.created_at),
        _t(record.updated_at),
        _t(record.expires_at),
        _t(record.last_used_at),
        record.use_count,
        int(record.disabled),
        record.disabled_reason,
        _t(record.revoked_at),
        record.revoked_reason,
        record.rate_limit,
        json.dumps(record.metadata),
        record.created_by,
    )


def _column_value(name: str, value: Any) -> Any:
    if name in ("scopes", "metadata"):
        return json.dumps(value)
    if name == "expires_at":
        return _t(value)
    if name == "disabled":
        return int(bool(value))
    return value


def _check_openable(path: str) -> None:
    """Open the file once with the stdlib, so that a folder, a file that is not a database or an
    unwritable place fails here: aiosqlite's worker thread outlives a failed connect and would
    report on an event loop that is gone."""
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA schema_version").fetchone()
    finally:
        conn.close()


class SQLiteKeyStore:
    NEWEST_VERSION = len(MIGRATIONS)

    def __init__(self, path: str) -> None:
        self._usage_purge = PurgeSchedule()
        self.path = path
        self.location = path
        self._db: aiosqlite.Connection | None = None
        self._write_lock = asyncio.Lock()

    @property
    def db(self) -> aiosqlite.Connection:
        if self._db is None:
            raise RuntimeError("key store is not open")
        return self._db

    async def open(self, migrate: bool = True) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        created = not os.path.exists(self.path)
        await asyncio.to_thread(_check_openable, self.path)
        self._db = await aiosqlite.connect(self.path)
        if created:
            os.chmod(self.path, 0o600)
        await self.db.execute("PRAGMA journal_mode=WAL")
        await self.db.execute("PRAGMA foreign_keys=ON")
        await self.db.execute("PRAGMA busy_timeout=5000")
        await self.db.execute("PRAGMA synchronous=NORMAL")
        if migrate:
            await self._migrate()

    def explain_open_failure(self, exc: Exception) -> str:
        return explain_sqlite(self.path, exc)

    async def _migrate(self) -> None:
        await self.db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
        async with self.db.execute("SELECT MAX(version) FROM schema_version") as cur:
            current = await _scalar(cur) or 0
        if current > len(MIGRATIONS):
            raise SchemaTooNew(f"schema version {current} is newer than this Skywarden's ({len(MIGRATIONS)})")
        for version in range(current + 1, len(MIGRATIONS) + 1):
            await self.db.executescript(
                "BEGIN;" + MIGRATIONS[version - 1] + f"; INSERT INTO schema_version VALUES ({version}); COMMIT;"
            )

    async def close(self) -> None:
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def ping(self) -> bool:
        try:
            async with self.db.execute("SELECT 1") as cur:
                return int(await _scalar(cur)) == 1
        except Exception:
            return False

    async def create(self, record: KeyRecord, key_hash: str) -> None:
        async with self._write_lock:
            await self.db.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join('?' * 18)})", _row(record))
            await self.db.execute(
                "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES (?, ?, NULL, ?)",
                (key_hash, record.id, _t(record.created_at)),
            )
            await self.db.commit()

    async def get(self, key_id: str) -> KeyRecord | None:
        async with self.db.execute(f"SELECT {_COLUMNS} FROM api_keys WHERE id = ?", (key_id,)) as cur:
            row = await cur.fetchone()
        return _record(row) if row else None

    async def find_by_hash(self, key_hash: str) -> HashMatch | None:
        columns = ", ".join(f"k.{c.strip()}" for c in _COLUMNS.split(","))
        async with self.db.execute(
            f"SELECT {columns}, h.valid_until FROM api_key_hashes h JOIN api_keys k ON k.id = h.key_id "
            "WHERE h.key_hash = ?",
            (key_hash,),
        ) as cur:
            row = await cur.fetchone()
        if row is None:
            return None
        return HashMatch(record=_record(row[:-1]), valid_until=_dt(row[-1]))

    async def changed_since(self, since: datetime) -> list[str]:
        async with self.db.execute(
            "SELECT id FROM api_keys WHERE updated_at >= ? ORDER BY updated_at LIMIT ?", (_t(since), CHANGES_AT_MOST)
        ) as cur:
            return [row[0] for row in await cur.fetchall()]

    async def list(self, filters: KeyFilter) -> list[KeyRecord]:
        where, params = [], []
        for column in ("name", "owner", "environment"):
            value = getattr(filters, column)
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        now = _t(utcnow())
        status_sql = {
            "revoked": "revoked_at IS NOT NULL",
            "disabled": "revoked_at IS NULL AND disabled = 1",
            "expired": "revoked_at IS NULL AND disabled = 0 AND expires_at IS NOT NULL AND expires_at <= ?",
            "active": "revoked_at IS NULL AND disabled = 0 AND (expires_at IS NULL OR expires_at > ?)",
        }
        if filters.status is not None:
            where.append(status_sql[filters.status])
            if filters.status in ("expired", "active"):
                params.append(now)
        sql = f"SELECT {_COLUMNS} FROM api_keys"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY created_at, id LIMIT ? OFFSET ?"
        params += [filters.limit, filters.offset]
        async with self.db.execute(sql, params) as cur:
            return [_record(row) for row in await cur.fetchall()]

    async def update(self, key_id: str, changes: dict[str, Any]) -> KeyRecord:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        async with self._write_lock:
            if changes:
                assignments = ", ".join(f"{name} = ?" for name in changes)
                params = [_column_value(name, value) for name, value in changes.items()]
                cur = await self.db.execute(
                    f"UPDATE api_keys SET {assignments}, updated_at = ? WHERE id = ?",
                    (*params, _t(utcnow()), key_id),
                )
                await self.db.commit()
                if cur.rowcount == 0:
                    raise KeyNotFound(key_id)
        record = await self.get(key_id)
        if record is None:
            raise KeyNotFound(key_id)
        return record

    async def revoke(self, key_id: str, reason: str | None, when: datetime) -> KeyRecord:
        async with self._write_lock:
            await self.db.execute(
                "UPDATE api_keys SET revoked_at = ?, revoked_reason = ?, updated_at = ? "
                "WHERE id = ? AND revoked_at IS NULL",
                (_t(when), reason, _t(when), key_id),
            )
            await self.db.commit()
        record = await self.get(key_id)
        if record is None:
            raise KeyNotFound(key_id)
        return record

    async def rotate(
        self, key_id: str, new_hash: str, new_prefix: str, old_valid_until: datetime, when: datetime
    ) -> KeyRecord:
        async with self._write_lock:
            cur = await self.db.execute(
                "UPDATE api_keys SET prefix = ?, updated_at = ? WHERE id = ? AND revoked_at IS NULL",
                (new_prefix, _t(when), key_id),
            )
            if cur.rowcount == 0:
                await self.db.rollback()
                raise KeyNotFound(key_id)
            # Earlier rotated-out hashes end now at the latest; the current one gets the grace period.
            await self.db.execute(
                "UPDATE api_key_hashes SET valid_until = ? WHERE key_id = ? AND valid_until IS NOT NULL "
                "AND valid_until > ?",
                (_t(when), key_id, _t(when)),
            )
            await self.db.execute(
                "UPDATE api_key_hashes SET valid_until = ? WHERE key_id = ? AND valid_until IS NULL",
                (_t(old_valid_until), key_id),
            )
            await self.db.execute(
                "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES (?, ?, NULL, ?)",
                (new_hash, key_id, _t(when)),
            )
            await self.db.commit()
        record = await self.get(key_id)
        assert record is not None
        return record

    async def record_usage(self, usage: dict[str, tuple[int, datetime]]) -> None:
        if not usage:
            return
        async with self._write_lock:
            await self.db.executemany(
                "UPDATE api_keys SET use_count = use_count + ?, "
                "last_used_at = CASE WHEN last_used_at IS NULL OR last_used_at < ? THEN ? ELSE last_used_at END "
                "WHERE id = ?",
                [(count, _t(last), _t(last), key_id) for key_id, (count, last) in usage.items()],
            )
            await self.db.executemany(
                "INSERT INTO api_key_usage (key_id, hour, count) SELECT ?, ?, ? WHERE EXISTS "
                "(SELECT 1 FROM api_keys WHERE id = ?) "
                "ON CONFLICT (key_id, hour) DO UPDATE SET count = count + excluded.count",
                [(key_id, _t(usage_hour(last)), count, key_id) for key_id, (count, last) in usage.items()],
            )
            if self._usage_purge.due(utcnow()):
                await self.db.execute("DELETE FROM api_key_usage WHERE hour < ?", (_t(usage_cutoff(utcnow())),))
            await self.db.commit()

    async def usage_since(self, since: datetime) -> builtins.list[tuple[str, datetime, int]]:
        async with self.db.execute(
            "SELECT key_id, hour, count FROM api_key_usage WHERE hour >= ? ORDER BY hour", (_t(usage_hour(since)),)
        ) as cur:
            return [(row[0], _when(row[1]), row[2]) for row in await cur.fetchall()]

    async def schema_version(self) -> int:
        async with self.db.execute("SELECT name FROM sqlite_master WHERE name = 'schema_version'") as cur:
            if await cur.fetchone() is None:
                return 0
        async with self.db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_version") as cur:
            return int(await _scalar(cur))

    async def export_keys(self) -> builtins.list[tuple[KeyRecord, builtins.list[StoredHash]]]:
        async with self.db.execute(f"SELECT {_COLUMNS} FROM api_keys ORDER BY created_at, id") as cur:
            records = [_record(row) for row in await cur.fetchall()]
        async with self.db.execute("SELECT key_id, key_hash, valid_until, created_at FROM api_key_hashes") as cur:
            hashes: dict[str, list[StoredHash]] = {}
            for key_id, key_hash, valid_until, created_at in await cur.fetchall():
                hashes.setdefault(key_id, []).append(StoredHash(key_hash, _dt(valid_until), _when(created_at)))
        return [(record, hashes.get(record.id, [])) for record in records]

    async def import_key(self, record: KeyRecord, hashes: builtins.list[StoredHash]) -> None:
        async with self._write_lock:
            await self.db.execute(f"INSERT INTO api_keys ({_COLUMNS}) VALUES ({', '.join('?' * 18)})", _row(record))
            await self.db.executemany(
                "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES (?, ?, ?, ?)",
                [(h.key_hash, record.id, _t(h.valid_until), _t(h.created_at)) for h in hashes],
            )
            await self.db.commit()

    async def list_upstreams(self) -> builtins.list[StoredUpstream]:
        async with self.db.execute(
            "SELECT name, spec, created_at, updated_at, created_by FROM upstreams ORDER BY name"
        ) as cur:
            return [
                StoredUpstream(row[0], json.loads(row[1]), _when(row[2]), _when(row[3]), row[4])
                for row in await cur.fetchall()
            ]

    async def add_upstream(self, upstream: StoredUpstream, at_most: int) -> None:
        async with self._write_lock:
            async with self.db.execute("SELECT COUNT(*) FROM upstreams") as cur:
                if int(await _scalar(cur)) >= at_most:
                    raise TooManyUpstreams()
            try:
                await self.db.execute(
                    "INSERT INTO upstreams (name, spec, created_at, updated_at, created_by) VALUES (?, ?, ?, ?, ?)",
                    (
                        upstream.name,
                        json.dumps(upstream.spec),
                        _t(upstream.created_at),
                        _t(upstream.updated_at),
                        upstream.created_by,
                    ),
                )
            except sqlite3.IntegrityError:
                await self.db.rollback()
                raise UpstreamExists(upstream.name) from None
            await self.db.commit()

    async def replace_upstream(self, name: str, spec: dict[str, Any], when: datetime) -> bool:
        async with self._write_lock:
            cur = await self.db.execute(
                "UPDATE upstreams SET spec = ?, updated_at = ? WHERE name = ?", (json.dumps(spec), _t(when), name)
            )
            await self.db.commit()
            return bool(cur.rowcount)

    async def remove_upstream(self, name: str) -> bool:
        async with self._write_lock:
            cur = await self.db.execute("DELETE FROM upstreams WHERE name = ?", (name,))
            await self.db.commit()
            return bool(cur.rowcount)
