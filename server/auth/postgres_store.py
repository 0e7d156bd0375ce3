"""Key store on PostgreSQL (asyncpg): for several instances behind a load balancer.

The same behaviour as the SQLite store, behind the same interface: versioned migrations
applied on open (in a transaction, under an advisory lock so two instances starting together
do not race), a connection pool, and one retry of an operation whose connection was lost
(a restarted server, a killed backend). Only key hashes are stored, never a key.
"""

from __future__ import annotations

import builtins
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

import asyncpg

from skywarden.server.auth.open_failures import explain_postgres
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
    StoreUnavailable,
    TooManyUpstreams,
    UpstreamExists,
    usage_cutoff,
    usage_hour,
    utcnow,
)
from skywarden.server.auth.store_urls import display_url

T = TypeVar("T")

MIGRATIONS: list[str] = [
    """
    CREATE TABLE api_keys (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        owner TEXT,
        prefix TEXT NOT NULL,
        environment TEXT NOT NULL,
        scopes JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ,
        expires_at TIMESTAMPTZ,
        last_used_at TIMESTAMPTZ,
        use_count BIGINT NOT NULL DEFAULT 0,
        disabled BOOLEAN NOT NULL DEFAULT FALSE,
        disabled_reason TEXT,
        revoked_at TIMESTAMPTZ,
        revoked_reason TEXT,
        rate_limit TEXT,
        metadata JSONB NOT NULL DEFAULT '{}'
    );
    CREATE TABLE api_key_hashes (
        key_hash TEXT PRIMARY KEY,
        key_id TEXT NOT NULL REFERENCES api_keys(id) ON DELETE CASCADE,
        valid_until TIMESTAMPTZ,
        created_at TIMESTAMPTZ NOT NULL
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
        hour TIMESTAMPTZ NOT NULL,
        count BIGINT NOT NULL,
        PRIMARY KEY (key_id, hour)
    );
    CREATE INDEX api_key_usage_hour ON api_key_usage (hour);
    ALTER TABLE api_keys ADD COLUMN created_by TEXT;
    """,
    # 4: upstream MCP servers added through the admin API or CLI (docs/gateway.md)
    """
    CREATE TABLE upstreams (
        name TEXT PRIMARY KEY,
        spec JSONB NOT NULL,
        created_at TIMESTAMPTZ NOT NULL,
        updated_at TIMESTAMPTZ NOT NULL,
        created_by TEXT
    );
    """,
]

COLUMNS = (
    "id, name, owner, prefix, environment, scopes, created_at, updated_at, expires_at, last_used_at, "
    "use_count, disabled, disabled_reason, revoked_at, revoked_reason, rate_limit, metadata, created_by"
)
MIGRATION_LOCK = 7_262_616_201  # pg_advisory_xact_lock id: one migrator at a time
UPSTREAMS_LOCK = 7_262_616_202  # one upstream added at a time (the bound is counted in the same transaction)
INSERT_KEY = f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 19))})"
POOL_MIN, POOL_MAX = 1, 10
CONNECT_TIMEOUT_SECONDS = 5.0
# The connection went away, or a new one cannot be had now (server restarting or refusing,
# database closed to connections, too many connections, connect timeout).
LOST_CONNECTION = (
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ObjectNotInPrerequisiteStateError,
    asyncpg.exceptions.InternalClientError,  # a connection left in a broken state by a dropped backend
    ConnectionError,
    TimeoutError,
    OSError,
)


def _record(row: asyncpg.Record) -> KeyRecord:
    return KeyRecord(
        id=row["id"],
        name=row["name"],
        owner=row["owner"],
        prefix=row["prefix"],
        environment=row["environment"],
        scopes=json.loads(row["scopes"]),
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        expires_at=row["expires_at"],
        last_used_at=row["last_used_at"],
        use_count=row["use_count"],
        disabled=row["disabled"],
        disabled_reason=row["disabled_reason"],
        revoked_at=row["revoked_at"],
        revoked_reason=row["revoked_reason"],
        rate_limit=row["rate_limit"],
        metadata=json.loads(row["metadata"]),
        created_by=row["created_by"],
    )


def _row(record: KeyRecord) -> tuple[Any, ...]:
    return (
        record.id,
        record.name,
        record.owner,
        record.prefix,
        record.environment,
        json.dumps(record.scopes),
        record.created_at,
        record.updated_at,
        record.expires_at,
        record.last_used_at,
        record.use_count,
        record.disabled,
        record.disabled_reason,
        record.revoked_at,
        record.revoked_reason,
        record.rate_limit,
        json.dumps(record.metadata),
        record.created_by,
    )


def _column_value(name: str, value: Any) -> Any:
    return json.dumps(value) if name in ("scopes", "metadata") else value


class PostgresKeyStore:
    NEWEST_VERSION = len(MIGRATIONS)

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.location = display_url(dsn)
        self._usage_purge = PurgeSchedule()
        self._pool: asyncpg.Pool | None = None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("key store is not open")
        return self._pool

    async def open(self, migrate: bool = True) -> None:
        self._pool = await asyncpg.create_pool(
            self.dsn, min_size=POOL_MIN, max_size=POOL_MAX, timeout=CONNECT_TIMEOUT_SECONDS
        )
        if migrate:
            await self._migrate()

    def explain_open_failure(self, exc: Exception) -> str:
        return explain_postgres(self.dsn, exc, CONNECT_TIMEOUT_SECONDS)

    async def _migrate(self) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
            await conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
            current = await conn.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version")
            if current > len(MIGRATIONS):
                raise SchemaTooNew(f"schema version {current} is newer than this Skywarden's ({len(MIGRATIONS)})")
            for version in range(current + 1, len(MIGRATIONS) + 1):
                await conn.execute(MIGRATIONS[version - 1])
                await conn.execute("INSERT INTO schema_version VALUES ($1)", version)

    async def schema_version(self) -> int:
        if not await self.pool.fetchval("SELECT to_regclass('schema_version') IS NOT NULL"):
            return 0
        return await self._retry(lambda: self.pool.fetchval("SELECT COALESCE(MAX(version), 0) FROM schema_version"))

    async def export_keys(self) -> list[tuple[KeyRecord, list[StoredHash]]]:
        records = [
            _record(row) for row in await self.pool.fetch(f"SELECT {COLUMNS} FROM api_keys ORDER BY created_at, id")
        ]
        hashes: dict[str, list[StoredHash]] = {}
        for row in await self.pool.fetch("SELECT key_id, key_hash, valid_until, created_at FROM api_key_hashes"):
            hashes.setdefault(row["key_id"], []).append(
                StoredHash(row["key_hash"], row["valid_until"], row["created_at"])
            )
        return [(record, hashes.get(record.id, [])) for record in records]

    async def import_key(self, record: KeyRecord, hashes: list[StoredHash]) -> None:
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(INSERT_KEY, *_row(record))
            await conn.executemany(
                "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES ($1, $2, $3, $4)",
                [(h.key_hash, record.id, h.valid_until, h.created_at) for h in hashes],
            )

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def _retry(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``; once more on a fresh connection if the first one was lost. Only for
        reads and idempotent writes."""
        try:
            return await operation()
        except LOST_CONNECTION:
            pass
        try:
            await self.pool.expire_connections()
            return await operation()
        except LOST_CONNECTION:
            raise StoreUnavailable() from None

    async def _once(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a write that must not be repeated blindly; a lost connection is a 503."""
        try:
            return await operation()
        except LOST_CONNECTION:
            with contextlib.suppress(*LOST_CONNECTION):
                await self.pool.expire_connections()
            raise StoreUnavailable() from None

    async def ping(self) -> bool:
        try:
            answer: int = await self._retry(lambda: self.pool.fetchval("SELECT 1"))
            return answer == 1
        except Exception:
            return False

    async def create(self, record: KeyRecord, key_hash: str) -> None:
        async def run() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO api_keys ({COLUMNS}) VALUES ({', '.join(f'${i}' for i in range(1, 19))})",
                    *_row(record),
                )
                await conn.execute(
                    "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES ($1, $2, NULL, $3)",
                    key_hash,
                    record.id,
                    record.created_at,
                )

        await self._once(run)  # not retried: an insert whose answer was lost may have committed

    async def get(self, key_id: str) -> KeyRecord | None:
        row = await self._retry(lambda: self.pool.fetchrow(f"SELECT {COLUMNS} FROM api_keys WHERE id = $1", key_id))
        return _record(row) if row else None

    async def find_by_hash(self, key_hash: str) -> HashMatch | None:
        columns = ", ".join(f"k.{c.strip()}" for c in COLUMNS.split(","))
        row = await self._retry(
            lambda: self.pool.fetchrow(
                f"SELECT {columns}, h.valid_until FROM api_key_hashes h JOIN api_keys k ON k.id = h.key_id "
                "WHERE h.key_hash = $1",
                key_hash,
            )
        )
        return HashMatch(record=_record(row), valid_until=row["valid_until"]) if row else None

    async def changed_since(self, since: datetime) -> list[str]:
        rows = await self._retry(
            lambda: self.pool.fetch(
                "SELECT id FROM api_keys WHERE updated_at >= $1 ORDER BY updated_at LIMIT $2", since, CHANGES_AT_MOST
            )
        )
        return [row["id"] for row in rows]

    async def list(self, filters: KeyFilter) -> list[KeyRecord]:
        where: list[str] = []
        params: list[Any] = []

        def param(value: Any) -> str:
            params.append(value)
            return f"${len(params)}"

        for column in ("name", "owner", "environment"):
            value = getattr(filters, column)
            if value is not None:
                where.append(f"{column} = {param(value)}")
        if filters.status == "revoked":
            where.append("revoked_at IS NOT NULL")
        elif filters.status == "disabled":
            where.append("revoked_at IS NULL AND disabled")
        elif filters.status == "expired":
            where.append(
                f"revoked_at IS NULL AND NOT disabled AND expires_at IS NOT NULL AND expires_at <= {param(utcnow())}"
            )
        elif filters.status == "active":
            where.append(
                f"revoked_at IS NULL AND NOT disabled AND (expires_at IS NULL OR expires_at > {param(utcnow())})"
            )
        sql = f"SELECT {COLUMNS} FROM api_keys"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY created_at, id LIMIT {param(filters.limit)} OFFSET {param(filters.offset)}"
        rows = await self._retry(lambda: self.pool.fetch(sql, *params))
        return [_record(row) for row in rows]

    async def update(self, key_id: str, changes: dict[str, Any]) -> KeyRecord:
        unknown = set(changes) - UPDATABLE
        if unknown:
            raise ValueError(f"cannot update {sorted(unknown)}")
        if changes:
            names = list(changes)
            assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=1))
            values = [_column_value(name, changes[name]) for name in names]
            n = len(names)
            status = await self._retry(
                lambda: self.pool.execute(
                    f"UPDATE api_keys SET {assignments}, updated_at = ${n + 1} WHERE id = ${n + 2}",
                    *values,
                    utcnow(),
                    key_id,
                )
            )
            if status.endswith(" 0"):
                raise KeyNotFound(key_id)
        record = await self.get(key_id)
        if record is None:
            raise KeyNotFound(key_id)
        return record

    async def revoke(self, key_id: str, reason: str | None, when: datetime) -> KeyRecord:
        await self._retry(
            lambda: self.pool.execute(
                "UPDATE api_keys SET revoked_at = $1, revoked_reason = $2, updated_at = $1 "
                "WHERE id = $3 AND revoked_at IS NULL",
                when,
                reason,
                key_id,
            )
        )
        record = await self.get(key_id)
        if record is None:
            raise KeyNotFound(key_id)
        return record

    async def rotate(
        self, key_id: str, new_hash: str, new_prefix: str, old_valid_until: datetime, when: datetime
    ) -> KeyRecord:
        async def run() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                status = await conn.execute(
                    "UPDATE api_keys SET prefix = $1, updated_at = $2 WHERE id = $3 AND revoked_at IS NULL",
                    new_prefix,
                    when,
                    key_id,
                )
                if status.endswith(" 0"):
                    raise KeyNotFound(key_id)
                # Earlier rotated-out hashes end now at the latest; the current one gets the grace period.
                await conn.execute(
                    "UPDATE api_key_hashes SET valid_until = $1 WHERE key_id = $2 AND valid_until IS NOT NULL "
                    "AND valid_until > $1",
                    when,
                    key_id,
                )
                await conn.execute(
                    "UPDATE api_key_hashes SET valid_until = $1 WHERE key_id = $2 AND valid_until IS NULL",
                    old_valid_until,
                    key_id,
                )
                await conn.execute(
                    "INSERT INTO api_key_hashes (key_hash, key_id, valid_until, created_at) VALUES ($1, $2, NULL, $3)",
                    new_hash,
                    key_id,
                    when,
                )

        await self._once(run)  # not retried: a rotation whose answer was lost may have committed
        record = await self.get(key_id)
        if record is None:
            raise KeyNotFound(key_id)
        return record

    async def record_usage(self, usage: dict[str, tuple[int, datetime]]) -> None:
        if not usage:
            return
        rows = [(count, last, key_id) for key_id, (count, last) in usage.items()]
        hours = [(key_id, usage_hour(last), count) for key_id, (count, last) in usage.items()]
        purge = self._usage_purge.due(utcnow())

        async def write() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "UPDATE api_keys SET use_count = use_count + $1, "
                    "last_used_at = GREATEST(COALESCE(last_used_at, $2), $2) WHERE id = $3",
                    rows,
                )
                await conn.executemany(
                    "INSERT INTO api_key_usage (key_id, hour, count) SELECT $1, $2, $3 WHERE EXISTS "
                    "(SELECT 1 FROM api_keys WHERE id = $1) "
                    "ON CONFLICT (key_id, hour) DO UPDATE SET count = api_key_usage.count + excluded.count",
                    hours,
                )
                if purge:
                    await conn.execute("DELETE FROM api_key_usage WHERE hour < $1", usage_cutoff(utcnow()))

        # not retried: increments; the authenticator keeps unflushed counts for the next flush
        await self._once(write)

    async def usage_since(self, since: datetime) -> builtins.list[tuple[str, datetime, int]]:
        rows = await self._retry(
            lambda: self.pool.fetch(
                "SELECT key_id, hour, count FROM api_key_usage WHERE hour >= $1 ORDER BY hour", usage_hour(since)
            )
        )
        return [(row["key_id"], row["hour"], row["count"]) for row in rows]

    async def list_upstreams(self) -> builtins.list[StoredUpstream]:
        rows = await self._retry(
            lambda: self.pool.fetch(
                "SELECT name, spec, created_at, updated_at, created_by FROM upstreams ORDER BY name"
            )
        )
        return [
            StoredUpstream(r["name"], json.loads(r["spec"]), r["created_at"], r["updated_at"], r["created_by"])
            for r in rows
        ]

    async def add_upstream(self, upstream: StoredUpstream, at_most: int) -> None:
        async def run() -> None:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute("SELECT pg_advisory_xact_lock($1)", UPSTREAMS_LOCK)  # one add at a time
                if await conn.fetchval("SELECT COUNT(*) FROM upstreams") >= at_most:
                    raise TooManyUpstreams()
                try:
                    await conn.execute(
                        "INSERT INTO upstreams (name, spec, created_at, updated_at, created_by) "
                        "VALUES ($1, $2::jsonb, $3, $4, $5)",
                        upstream.name,
                        json.dumps(upstream.spec),
                        upstream.created_at,
                        upstream.updated_at,
                        upstream.created_by,
                    )
                except asyncpg.exceptions.UniqueViolationError:
                    raise UpstreamExists(upstream.name) from None

        await self._once(run)

    async def replace_upstream(self, name: str, spec: dict[str, Any], when: datetime) -> bool:
        status = await self._once(
            lambda: self.pool.execute(
                "UPDATE upstreams SET spec = $1::jsonb, updated_at = $2 WHERE name = $3", json.dumps(spec), when, name
            )
        )
        return bool(status.endswith(" 1"))

    async def remove_upstream(self, name: str) -> bool:
        status = await self._once(lambda: self.pool.execute("DELETE FROM upstreams WHERE name = $1", name))
        return bool(status.endswith(" 1"))
