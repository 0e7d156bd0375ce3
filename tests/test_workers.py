"""``skywarden serve --workers 2``: one port, two processes, and the state they must share."""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.deployment import Deployment, shared_state_checks
from tests.support.server_process import start_server
from tests.support.services import fresh_postgres_database, redis_prefix

pytestmark = pytest.mark.slow  # subprocesses: run by CI and ./scripts/test, not -m 'not slow'

SECRET = "worker-test-server-secret-0123456789abcdef"


def _secrets(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "admin").write_text(ADMIN_TOKEN)
    return {
        "SKYWARDEN_DATA_DIR": str(tmp_path / "data"),
        "SKYWARDEN_SECRET_FILE": str(tmp_path / "secret"),
        "SKYWARDEN_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
        "SKYWARDEN_RATE_LIMIT": "",
    }


def _instances(server) -> set[str]:
    return {e["instance"] for e in server.lines if e.get("event") == "request" and e.get("path") != "/api/health/ready"}


async def _both_workers_answered(server) -> None:
    """Each worker writes its log lines in batches: wait for a line from each, not for a moment."""

    async def seen() -> None:
        while len(_instances(server)) < 2:
            await server.wait_for_next_event("request")

    await asyncio.wait_for(seen(), 15)


async def test_workers_on_postgresql_and_redis_share_keys_limits_sessions_usage_and_revocation(tmp_path):
    async with fresh_postgres_database() as database_url, redis_prefix() as (redis_url, prefix):
        env = {
            **_secrets(tmp_path),
            "SKYWARDEN_DATABASE_URL": database_url,
            "SKYWARDEN_REDIS_URL": redis_url,
            "SKYWARDEN_REDIS_KEY_PREFIX": prefix,
        }
        server = await start_server(env, "--workers", "2")
        try:
            started = await server.wait_for_event("skywarden started")
            assert (started["workers"], started["store"], started["shared_state"]) == (2, "postgresql", "redis")
            await shared_state_checks(Deployment(server.url))
            await _both_workers_answered(server)
        finally:
            assert await server.stop() == 0


async def test_workers_on_sqlite_say_so_and_still_revoke_at_once(tmp_path):
    server = await start_server(_secrets(tmp_path), "--workers", "2")
    try:
        started = await server.wait_for_event("skywarden started")
        assert (started["store"], started["shared_state"]) == ("sqlite", "in-process")
        assert "per_worker" in started
        deployment = Deployment(server.url)
        key = await deployment.create_key()
        assert await deployment.statuses(key["key"], 12) == [200] * 12
        await deployment.revoke(key["id"])
        assert await deployment.statuses(key["key"], 12) == [401] * 12  # no worker had it cached
        await _both_workers_answered(server)
    finally:
        assert await server.stop() == 0


async def test_a_worker_that_dies_is_replaced(tmp_path):
    server = await start_server(_secrets(tmp_path), "--workers", "2")
    try:
        worker = await server.wait_for_event("worker started")  # a worker may log after the server answers
        os.kill(int(worker["instance"].rsplit(":", 1)[1].split("/")[0]), signal.SIGKILL)
        died = await server.wait_for_event("worker died; starting a new one")
        assert died["exit_code"] == -signal.SIGKILL
        await server.wait_for_event_count("worker started", 3)
        deployment = Deployment(server.url)
        status, _, _ = await deployment.request("GET", "/api/health/ready")
        assert status == 200
    finally:
        assert await server.stop() == 0


async def test_a_bad_certificate_stops_the_server_before_any_worker_starts(tmp_path):
    env = {**_secrets(tmp_path), "SKYWARDEN_TLS_CERT": str(tmp_path / "missing.pem"), "SKYWARDEN_TLS_KEY": "x"}
    with pytest.raises(RuntimeError, match="invalid setting tls_cert/tls_key"):
        await start_server(env, "--workers", "2")
