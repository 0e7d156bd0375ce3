"""The real PostgreSQL on this machine, for tests: each test gets its own database, dropped after.

With SKYWARDEN_REQUIRE_SERVICES=1 (CI) a PostgreSQL that cannot be reached fails the test;
otherwise the test is skipped with the reason. Set SKYWARDEN_TEST_POSTGRES to use another
server (default postgresql://postgres@127.0.0.1:5432/postgres).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest

ADMIN_DSN = os.environ.get("SKYWARDEN_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres")
REQUIRED = os.environ.get("SKYWARDEN_REQUIRE_SERVICES") == "1"


def unavailable(what: str, error: BaseException) -> None:
    message = f"{what} is not reachable ({type(error).__name__}: {error})"
    if REQUIRED:
        pytest.fail(message + "; SKYWARDEN_REQUIRE_SERVICES=1 makes this a failure")
    pytest.skip(message)


async def require_postgres() -> None:
    """Skip (or, in CI, fail) unless the test server answers."""
    import asyncpg

    try:
        await (await asyncpg.connect(ADMIN_DSN, timeout=5)).close()
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)


@asynccontextmanager
async def fresh_postgres_database() -> AsyncIterator[str]:
    """A new, empty database for one test; its URL."""
    import asyncpg

    name = "skywarden_test_" + secrets.token_hex(6)
    try:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
    except (OSError, asyncpg.PostgresError) as exc:
        unavailable("PostgreSQL", exc)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base = ADMIN_DSN.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def postgres_url(database: str, role: str = "", password: str = "") -> str:
    """A URL on the test server for ``database``, as ``role`` (default: the admin's) with ``password``."""
    scheme, _, rest = ADMIN_DSN.partition("://")
    userinfo, at, location = rest.rpartition("@")
    host = location.split("/", 1)[0]
    role = role or (userinfo.split(":", 1)[0] if at else "")
    credentials = role + (f":{password}" if password else "")
    return f"{scheme}://{credentials}@{host}/{database}" if credentials else f"{scheme}://{host}/{database}"


@asynccontextmanager
async def postgres_role_without_rights() -> AsyncIterator[str]:
    """A URL for a new login role on a new database it does not own (so it may connect but not
    create tables); both are dropped after."""
    import asyncpg

    role = "skywarden_test_role_" + secrets.token_hex(6)
    async with fresh_postgres_database() as url:
        admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
        try:
            await admin.execute(f"CREATE ROLE \"{role}\" LOGIN PASSWORD 'role-password-1'")
        finally:
            await admin.close()
        try:
            yield postgres_url(url.rsplit("/", 1)[1], role, "role-password-1")
        finally:
            admin = await asyncpg.connect(ADMIN_DSN, timeout=5)
            try:
                await admin.execute(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')
                await admin.execute(f'DROP ROLE IF EXISTS "{role}"')
            finally:
                await admin.close()


REDIS_URL = os.environ.get("SKYWARDEN_TEST_REDIS", "redis://127.0.0.1:6379/0")


@asynccontextmanager
async def redis_prefix() -> AsyncIterator[tuple[str, str]]:
    """(Redis URL, a key prefix of this test's own); every key under the prefix is deleted after."""
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    try:
        await client.ping()
    except (OSError, redis.RedisError) as exc:
        await client.aclose()
        unavailable("Redis", exc)
    prefix = "skywarden-test-" + secrets.token_hex(6)
    try:
        yield REDIS_URL, prefix
    finally:
        keys = [key async for key in client.scan_iter(match=prefix + "*")]
        if keys:
            await client.delete(*keys)
        await client.aclose()
