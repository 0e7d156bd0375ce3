"""Rate limits in Redis, shared by every instance: one budget across instances, and the
documented behaviour when Redis goes away and comes back (readiness red, then green)."""

from __future__ import annotations

import asyncio
import shutil
import socket

import pytest

from skywarden.server.app import create_app
from tests.conftest import ADMIN_HEADERS, SECRETS, create_key
from tests.services import redis_prefix

SHARED_SECRET = "shared-server-secret-for-every-instance-0123"


@pytest.fixture
async def shared_redis():
    async with redis_prefix() as (url, prefix):
        yield url, prefix


async def _instances(make_settings, aiohttp_client, count: int, **settings):
    """``count`` apps on one key store (one data dir) and the same Redis: instances of one deployment."""
    made = make_settings(secret=SHARED_SECRET, **settings)
    clients = [await aiohttp_client(create_app(made)) for _ in range(count)]
    key = await create_key(await aiohttp_client(clients[0].server, headers=ADMIN_HEADERS))
    SECRETS.add(key["key"])
    return clients, {"X-API-Key": key["key"]}


async def test_a_limit_of_n_admits_exactly_n_across_instances(shared_redis, make_settings, aiohttp_client):
    url, prefix = shared_redis
    clients, headers = await _instances(
        make_settings, aiohttp_client, 3, redis_url=url, redis_key_prefix=prefix, rate_limit="5/minute"
    )
    answers = [await clients[i % 3].get("/api/mcp/tools", headers=headers) for i in range(9)]
    assert [r.status for r in answers] == [200] * 5 + [429] * 4
    assert '"key-minute";r=0;' in answers[4].headers["RateLimit"]


async def test_wrong_credentials_share_one_budget_across_instances(shared_redis, make_settings, aiohttp_client):
    url, prefix = shared_redis
    clients, _ = await _instances(
        make_settings, aiohttp_client, 2, redis_url=url, redis_key_prefix=prefix, auth_failure_limit="4/minute"
    )
    wrong = {"X-API-Key": "skw_live_" + "Z" * 50}
    statuses = [(await clients[i % 2].get("/api/mcp/tools", headers=wrong)).status for i in range(6)]
    assert statuses == [401] * 4 + [429] * 2


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def _start_redis(port: int) -> asyncio.subprocess.Process:
    proc = await asyncio.create_subprocess_exec(
        shutil.which("redis-server") or "redis-server",
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    async for line in proc.stdout:  # until it says it accepts connections
        if b"Ready to accept connections" in line:
            return proc
    raise AssertionError("redis-server did not start")


@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_redis_going_away_and_coming_back(make_settings, aiohttp_client, mode):
    port = _free_port()
    redis = await _start_redis(port)
    try:
        clients, headers = await _instances(
            make_settings,
            aiohttp_client,
            1,
            redis_url=f"redis://127.0.0.1:{port}/0",
            rate_limit_when_unavailable=mode,
            rate_limit="100/minute",
        )
        client = clients[0]
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
        redis.kill()
        await redis.wait()
        resp = await client.get("/api/mcp/tools", headers=headers)
        if mode == "open":
            assert resp.status == 200  # keys still verify from the store; the limit is skipped
        else:
            assert resp.status == 503 and (await resp.json())["type"].endswith("/limiter-unavailable")
            assert resp.headers["Retry-After"]
        ready = await client.get("/api/health/ready")
        assert ready.status == 503 and (await ready.json())["checks"]["rate_limiter"] == "unreachable"
        redis = await _start_redis(port)
        assert (await client.get("/api/health/ready")).status == 200  # recovered, no restart
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    finally:
        if redis.returncode is None:
            redis.kill()
            await redis.wait()
