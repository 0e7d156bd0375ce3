"""Rate limits in Redis, shared by every instance: one budget across instances, and the
documented behaviour when Redis goes away and comes back (readiness red, then green)."""

from __future__ import annotations

import asyncio
import shutil
import signal

import pytest

from skywarden.server.app import create_app
from skywarden.server.appkeys import SETTINGS
from skywarden.server.keys import generate_key
from tests.support.admin import ADMIN_HEADERS, ADMIN_TOKEN, create_key
from tests.support.logs import SECRETS
from tests.support.mcp_helpers import open_session, post, rpc, session_headers
from tests.support.server_process import free_port
from tests.support.services import redis_prefix

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


class OwnRedis:
    """A redis-server of the test's own on a free port, to kill, freeze, thaw and start again."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.proc = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            stdout=asyncio.subprocess.PIPE,
        )
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:  # until it says it accepts connections
            if b"Ready to accept connections" in line:
                return
        raise AssertionError("redis-server did not start")

    async def kill(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGCONT)  # a frozen server dies too
            self.proc.kill()
            await self.proc.wait()

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)


@pytest.fixture
async def own_redis():
    redis = OwnRedis()
    await redis.start()
    yield redis
    await redis.kill()


@pytest.mark.slow  # starts (or waits out) a Redis server of its own
@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_redis_going_away_and_coming_back(own_redis, make_settings, aiohttp_client, mode):
    clients, headers = await _instances(
        make_settings,
        aiohttp_client,
        1,
        redis_url=own_redis.url,
        rate_limit_when_unavailable=mode,
        rate_limit="100/minute",
    )
    client = clients[0]
    assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    keyed = await aiohttp_client(client.server, headers=headers)
    session = await open_session(keyed)
    await own_redis.kill()
    if mode == "open":  # a session lives only in Redis: without it, a clear 503, nothing crashes
        resp = await post(keyed, rpc("tools/list", id=3), session_headers(session, "2025-11-25"))
        answer = await resp.json()
        assert resp.status == 503 and resp.headers["Retry-After"] and answer["id"] == 3
        assert "session store" in answer["error"]["message"]
    resp = await client.get("/api/mcp/tools", headers=headers)
    if mode == "open":
        assert resp.status == 200  # keys still verify from the store; the limit is skipped
    else:
        assert resp.status == 503 and (await resp.json())["type"].endswith("/limiter-unavailable")
        assert resp.headers["Retry-After"]
    ready = await client.get("/api/health/ready")
    assert ready.status == 503 and (await ready.json())["checks"]["rate_limiter"] == "unreachable"
    await own_redis.start()
    assert (await client.get("/api/health/ready")).status == 200  # recovered, no restart
    assert (await client.get("/api/mcp/tools", headers=headers)).status == 200


@pytest.mark.slow
@pytest.mark.parametrize("outage", ["killed, then restarted empty", "stopped, then continued"])
async def test_redis_coming_back_adds_no_budget_to_an_address(
    own_redis, make_settings, aiohttp_client, monkeypatch, outage
):
    """An address spends one budget of wrong credentials however Redis comes and goes: what it
    spent before and during the outage still counts when Redis answers again, whether Redis comes
    back empty (restarted) or with the count it had (it was frozen and the client timed out)."""
    from skywarden.server.shared import redis_connection

    monkeypatch.setattr(redis_connection, "REDIS_TIMEOUT_SECONDS", 0.3)  # a frozen Redis times out quickly
    clients, _ = await _instances(
        make_settings,
        aiohttp_client,
        1,
        redis_url=own_redis.url,
        auth_failure_limit="3/day",  # no window ends during the test
        trusted_proxies="127.0.0.1",
    )
    client = clients[0]
    wrong = {"X-API-Key": generate_key(), "X-Forwarded-For": "198.51.100.9"}

    async def statuses(count: int) -> list[int]:
        return [(await client.get("/api/mcp/tools", headers=wrong)).status for _ in range(count)]

    assert await statuses(2) == [401, 401]
    if outage.startswith("killed"):
        await own_redis.kill()
    else:
        own_redis.freeze()
    assert (await client.get("/api/health/ready")).status == 503  # Redis is really away
    assert await statuses(2) == [401, 429]  # the third, counted here; then the budget is spent
    if outage.startswith("killed"):
        await own_redis.start()
    else:
        own_redis.thaw()
    assert (await client.get("/api/health/ready")).status == 200
    assert await statuses(3) == [429, 429, 429]
    other = {**wrong, "X-Forwarded-For": "198.51.100.10"}  # another address keeps its own budget
    assert (await client.get("/api/mcp/tools", headers=other)).status == 401


def _jwt_shaped() -> dict[str, str]:
    return {"Authorization": "Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl"}


# Every way a request can be refused a credential, each with the budget it draws on: (name,
# method, path, headers, limit). Each comes from its own address (X-Forwarded-For through a
# trusted proxy), so each starts with a full budget.
REFUSALS = [
    ("wrong key, REST", "GET", "/api/mcp/tools", lambda: {"X-API-Key": generate_key()}, "auth"),
    ("wrong key as Bearer, /mcp", "POST", "/mcp", lambda: {"Authorization": f"Bearer {generate_key()}"}, "auth"),
    ("malformed key", "GET", "/api/mcp/tools", lambda: {"X-API-Key": "not-a-key"}, "auth"),
    ("admin token as a key", "GET", "/api/mcp/tools", lambda: {"X-API-Key": ADMIN_TOKEN}, "auth"),
    ("token where none is accepted", "GET", "/api/mcp/tools", _jwt_shaped, "auth"),
    ("wrong admin token", "GET", "/api/admin/keys", lambda: {"Authorization": "Bearer wrong-admin-token"}, "auth"),
    ("wrong metrics token", "GET", "/metrics", lambda: {"Authorization": "Bearer wrong-metrics-token"}, "auth"),
    ("no credential, REST", "GET", "/api/mcp/tools", dict, "anonymous"),
    ("no credential, /mcp", "POST", "/mcp", dict, "anonymous"),
    ("no credential, admin", "GET", "/api/admin/usage", dict, "anonymous"),
    ("console sign-in start", "GET", "/admin/oidc/start", dict, "anonymous"),
]
BUDGET = {"auth": 3, "anonymous": 2}


@pytest.mark.slow  # starts (or waits out) a Redis server of its own
@pytest.mark.parametrize("mode", ["open", "closed"])
async def test_refusal_limits_hold_in_the_process_while_redis_is_away(own_redis, make_settings, aiohttp_client, mode):
    """Brute-force protection never fails open: with Redis gone, every per-IP refusal limit is
    counted in the process, whatever ``rate_limit_when_unavailable`` says about per-key limits."""
    clients, headers = await _instances(
        make_settings,
        aiohttp_client,
        1,
        redis_url=own_redis.url,
        rate_limit_when_unavailable=mode,
        auth_failure_limit=f"{BUDGET['auth']}/minute",
        unauthenticated_limit=f"{BUDGET['anonymous']}/minute",
        trusted_proxies="127.0.0.1",
        oidc_issuers=f"http://127.0.0.1:{free_port()}",
        admin_oidc_audience="urn:skywarden:admin",
        console_oidc_client_id="console",
    )
    client = clients[0]
    await own_redis.kill()
    assert (await client.get("/api/health/ready")).status == 503  # Redis is really away
    for number, (name, method, path, make_headers, limit) in enumerate(REFUSALS):
        address = {"X-Forwarded-For": f"198.51.100.{number + 1}"}
        answers = []
        for _ in range(BUDGET[limit] + 2):
            resp = await client.request(
                method, path, headers={**address, **make_headers()}, json={}, allow_redirects=False
            )
            answers.append(resp)
        statuses = [r.status for r in answers]
        assert 429 not in statuses[: BUDGET[limit]], (name, statuses)
        assert statuses[BUDGET[limit] :] == [429, 429], (name, statuses)
        assert answers[-1].headers["Retry-After"] and f'"{limit}-minute"' in answers[-1].headers["RateLimit"]
    # A valid key from a spent address still passes, or meets the per-key setting (closed: 503).
    spent = {"X-Forwarded-For": "198.51.100.1", **headers}
    resp = await client.get("/api/mcp/tools", headers=spent)
    assert resp.status == (200 if mode == "open" else 503)
    denials = await client.get("/api/admin/denials", headers=ADMIN_HEADERS)  # kept in Redis: a clear 503
    assert denials.status == 503 and (await denials.json())["type"].endswith("/denials-unavailable")
    assert denials.headers["Retry-After"]


async def test_a_refused_request_spends_no_window_in_redis(shared_redis):
    from limits import parse_many

    from skywarden.server.calls.redis_counters import RedisCounters
    from skywarden.server.shared.redis_connection import redis_client

    url, prefix = shared_redis
    client = redis_client(url)
    try:
        counters = RedisCounters(client, prefix)
        windows = tuple(parse_many("2/minute;5/hour"))
        outcomes = [await counters.take("key", "k1", windows, 1) for _ in range(4)]
        assert [o.refused for o in outcomes] == [None, None, windows[0], windows[0]]
        assert [s.remaining for s in outcomes[-1].states] == [0, 3]  # the hour kept what the minute refused
        assert outcomes[-1].states[0].reset_seconds >= 1
        over = await counters.take("key", "k2", windows, 3)  # a cost larger than a window: refused whole
        assert over.refused is windows[0] and [s.remaining for s in over.states] == [2, 5]
    finally:
        await client.aclose()


async def test_a_key_changed_through_one_instance_is_refused_by_every_instance_at_once(
    shared_redis, make_settings, aiohttp_client
):
    url, prefix = shared_redis
    clients, headers = await _instances(make_settings, aiohttp_client, 3, redis_url=url, redis_key_prefix=prefix)
    for client in clients:  # every instance has the key cached now
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    admin = await aiohttp_client(clients[0].server, headers=ADMIN_HEADERS)
    key_id = (await (await admin.get("/api/admin/keys")).json())["keys"][0]["id"]
    resp = await admin.patch(f"/api/admin/keys/{key_id}", json={"scopes": ["get_alerts"]})
    assert resp.status == 200
    for client in clients:
        denied = await client.post("/api/mcp/tools/get_forecast", json={"latitude": 1, "longitude": 1}, headers=headers)
        assert denied.status == 403
    assert (await admin.delete(f"/api/admin/keys/{key_id}")).status == 204
    for client in clients:
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 401


async def test_usage_read_through_one_instance_counts_every_instance(shared_redis, make_settings, aiohttp_client):
    url, prefix = shared_redis
    clients, headers = await _instances(make_settings, aiohttp_client, 3, redis_url=url, redis_key_prefix=prefix)
    for i in range(7):
        assert (await clients[i % 3].get("/api/mcp/tools", headers=headers)).status == 200
    admin = await aiohttp_client(clients[2].server, headers=ADMIN_HEADERS)
    keys = (await (await admin.get("/api/admin/keys")).json())["keys"]
    assert keys[0]["use_count"] == 7


async def test_a_session_opened_through_one_instance_continues_through_another_and_after_a_restart(
    shared_redis, make_settings, aiohttp_client
):
    url, prefix = shared_redis
    clients, headers = await _instances(make_settings, aiohttp_client, 2, redis_url=url, redis_key_prefix=prefix)
    keyed = [await aiohttp_client(c.server, headers=headers) for c in clients]
    session = await open_session(keyed[0])
    listed = await post(keyed[1], rpc("tools/list"), session_headers(session, "2025-11-25"))
    assert listed.status == 200 and "tools" in (await listed.json())["result"]
    await clients[0].server.close()  # the instance that opened it goes away; a new one takes its place
    restarted = await aiohttp_client(create_app(clients[0].server.app[SETTINGS]), headers=headers)
    again = await post(restarted, rpc("tools/list"), session_headers(session, "2025-11-25"))
    assert again.status == 200 and "tools" in (await again.json())["result"]


@pytest.mark.slow  # starts (or waits out) a Redis server of its own
async def test_while_redis_is_away_no_instance_trusts_its_cache(own_redis, make_settings, aiohttp_client):
    """Revocations cannot be heard then: every request is verified with the store, so a key
    revoked through one instance is refused by another at once even without the broadcast."""
    clients, headers = await _instances(make_settings, aiohttp_client, 2, redis_url=own_redis.url, rate_limit="")
    for client in clients:
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    await own_redis.kill()
    assert (await clients[1].get("/api/health/ready")).status == 503  # it knows it is not listening
    admin = await aiohttp_client(clients[0].server, headers=ADMIN_HEADERS)
    listed = await admin.get("/api/admin/keys")
    assert listed.status == 200
    key_id = (await listed.json())["keys"][0]["id"]
    assert (await admin.delete(f"/api/admin/keys/{key_id}")).status == 204
    assert (await clients[1].get("/api/mcp/tools", headers=headers)).status == 401


@pytest.mark.parametrize(
    "garbage",
    [
        b"not json",
        b"[]",
        b"{}",
        b'{"event": "key-changed"}',
        b'{"event": 1, "argument": [], "origin": 2, "ack": 3}',
        b'{"event": "drop-tables", "argument": "", "origin": "x", "ack": "a"}',
        b'{"event": "key-changed", "argument": "k", "origin": "x", "ack": "a"}',
        "\udcff".encode("utf-8", "surrogatepass"),
    ],
)
async def test_garbage_on_the_broadcast_channel_changes_nothing(shared_redis, make_settings, aiohttp_client, garbage):
    from skywarden.server.shared.redis_connection import redis_client

    url, prefix = shared_redis
    clients, headers = await _instances(make_settings, aiohttp_client, 2, redis_url=url, redis_key_prefix=prefix)
    for client in clients:
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200
    redis = redis_client(url)
    try:
        await redis.publish(f"{prefix}:events", garbage)
        admin = await aiohttp_client(clients[0].server, headers=ADMIN_HEADERS)
        key_id = (await (await admin.get("/api/admin/keys")).json())["keys"][0]["id"]
        # Messages arrive in order: once the revocation is confirmed, the garbage was handled.
        assert (await admin.delete(f"/api/admin/keys/{key_id}")).status == 204
        assert await redis.exists("3", "a") == 0  # nothing written where a message said
    finally:
        await redis.aclose()
    for client in clients:  # still listening, and the revocation reached both
        assert (await client.get("/api/health/ready")).status == 200
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 401


@pytest.mark.slow  # starts (or waits out) a Redis server of its own
async def test_a_redis_unreachable_at_start_is_logged_once_without_its_password(make_settings, aiohttp_client):
    from tests.support.logs import drain_logs

    before = len(drain_logs())
    url = f"redis://:start-pw-never-logged@127.0.0.1:{free_port()}/3"
    client = await aiohttp_client(create_app(make_settings(redis_url=url)))
    assert (await client.get("/api/health/ready")).status == 503
    warnings = [e for e in drain_logs()[before:] if e.get("event", "").startswith("redis unreachable at start")]
    assert len(warnings) == 1 and warnings[0]["level"] == "warning"
    assert warnings[0]["redis_url"] == f"redis://:***@127.0.0.1:{url.rsplit(':', 1)[1]}"
    assert "start-pw-never-logged" not in str(drain_logs())


async def test_a_reachable_redis_at_start_logs_no_warning(shared_redis, make_settings, aiohttp_client):
    from tests.support.logs import drain_logs

    url, prefix = shared_redis
    before = len(drain_logs())
    client = await aiohttp_client(create_app(make_settings(redis_url=url, redis_key_prefix=prefix)))
    assert (await client.get("/api/health/ready")).status == 200
    assert not [e for e in drain_logs()[before:] if e.get("event", "").startswith("redis unreachable")]
