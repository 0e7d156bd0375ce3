"""The handshake-session contract, run against the in-process store and the Redis one alike:
same bounds (per key, in all, fair share when full, idle expiry), same answers. Two Redis
stores on one prefix play two instances of one deployment."""

from __future__ import annotations

import asyncio

import pytest

from skywarden.server.mcp.redis_sessions import RedisSessionStore
from skywarden.server.mcp.sessions import MAX_CAPABILITY_NAMES, MAX_TEXT, MemorySessionStore, TooManySessions
from skywarden.server.shared.redis_connection import redis_client
from tests.support.services import redis_prefix

IDLE = 60.0


class MemoryBackend:
    def __init__(self) -> None:
        self.now = [0.0]

    def store(self, max_sessions: int = 100, max_per_key: int | None = None):
        self._store = MemorySessionStore(IDLE, max_sessions, max_per_key, clock=lambda: self.now[0])
        return self._store

    async def age(self, session_id: str) -> None:
        """Make one session look idle for longer than IDLE (the others stay fresh)."""
        self._store._sessions[session_id].last_seen -= IDLE + 1

    async def close(self) -> None:
        return None


class RedisBackend:
    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis_client(url)
        self.prefix = prefix

    def store(self, max_sessions: int = 100, max_per_key: int | None = None):
        return RedisSessionStore(self.client, self.prefix, IDLE, max_sessions, max_per_key)

    async def age(self, session_id: str) -> None:
        base = f"{self.prefix}:sessions"
        key_id = (await self.client.hget(f"{base}:s:{session_id}", "principal_id")).decode()
        old = (await self.client.time())[0] - IDLE - 1
        await self.client.zadd(f"{base}:k:{key_id}", {session_id: old})
        await self.client.zadd(f"{base}:all", {f"{key_id} {session_id}": old})

    async def close(self) -> None:
        await self.client.aclose()


@pytest.fixture(params=["memory", "redis"])
async def backend(request):
    if request.param == "memory":
        yield MemoryBackend()
        return
    async with redis_prefix() as (url, prefix):
        backend = RedisBackend(url, prefix)
        yield backend
        await backend.close()


async def open_one(store, key_id: str = "key_a", **info):
    return await store.create(key_id, "2025-11-25", info or {"name": "client", "version": "1"}, {"sampling": {}})


async def test_a_session_comes_back_as_it_was_opened(backend):
    store = backend.store()
    opened = await open_one(store)
    found = await store.get(opened.id)
    assert found is not None and found.id == opened.id and found.principal_id == "key_a"
    assert found.protocol_version == "2025-11-25" and found.capability_names == {"sampling"}
    assert (found.client_name, found.client_version, found.initialized) == ("client", "1", False)


async def test_only_bounded_names_are_kept(backend):
    store = backend.store()
    capabilities = {f"capability-{i}-" + "x" * 100: {"huge": "y" * 10_000} for i in range(50)}
    opened = await store.create("key_a", "2025-11-25", {"name": "n" * 10_000, "extra": "z" * 10_000}, capabilities)
    found = await store.get(opened.id)
    assert len(found.capability_names) == MAX_CAPABILITY_NAMES and len(found.client_name) == MAX_TEXT
    assert found.client_version == ""


async def test_initialized_is_kept(backend):
    store = backend.store()
    opened = await open_one(store)
    opened.initialized = True
    await store.save(opened)
    assert (await store.get(opened.id)).initialized is True


async def test_deleting_ends_a_session_once(backend):
    store = backend.store()
    opened = await open_one(store)
    assert await store.delete(opened.id) is True
    assert await store.delete(opened.id) is False
    assert await store.get(opened.id) is None


@pytest.mark.parametrize("session_id", ["", "no-such-session", "x" * 43, "a b", "é" * 43, "k" * 8000])
async def test_an_unknown_or_malformed_id_is_no_session(backend, session_id):
    store = backend.store()
    await open_one(store)
    assert await store.get(session_id) is None
    assert await store.delete(session_id) is False


async def test_a_key_holds_at_most_its_allowance(backend):
    store = backend.store(max_sessions=100, max_per_key=2)
    await open_one(store)
    await open_one(store)
    with pytest.raises(TooManySessions):
        await open_one(store)
    await open_one(store, "key_b")  # another key is not affected


async def test_an_idle_session_expires_and_frees_its_place(backend):
    store = backend.store(max_sessions=100, max_per_key=1)
    first = await open_one(store)
    await backend.age(first.id)
    assert await store.get(first.id) is None
    await open_one(store)  # the expired one no longer counts


async def test_a_full_store_takes_the_place_of_the_largest_holder(backend):
    store = backend.store(max_sessions=3)
    greedy = [await open_one(store, "key_greedy") for _ in range(2)]
    other = await open_one(store, "key_other")
    newcomer = await open_one(store, "key_new")  # full: key_greedy (2) gives up its least recently used
    assert await store.get(greedy[0].id) is None
    assert await store.get(greedy[1].id) is not None and await store.get(other.id) is not None
    assert await store.get(newcomer.id) is not None
    with pytest.raises(TooManySessions):  # now nobody holds more than key_new would: refused
        await open_one(store, "key_new")


async def test_concurrent_opens_never_exceed_the_allowance(backend):
    store = backend.store(max_sessions=100, max_per_key=5)
    outcomes = await asyncio.gather(*(open_one(store) for _ in range(20)), return_exceptions=True)
    assert sum(1 for o in outcomes if not isinstance(o, BaseException)) == 5
    assert all(isinstance(o, TooManySessions) for o in outcomes if isinstance(o, BaseException))


async def test_two_instances_share_sessions_and_allowances():
    async with redis_prefix() as (url, prefix):
        one, two = RedisBackend(url, prefix), RedisBackend(url, prefix)
        try:
            first, second = one.store(max_per_key=2), two.store(max_per_key=2)
            opened = await open_one(first)
            assert (await second.get(opened.id)).principal_id == "key_a"
            await open_one(second)
            with pytest.raises(TooManySessions):
                await open_one(first)
            assert await second.delete(opened.id) and await first.get(opened.id) is None
        finally:
            await one.close()
            await two.close()
