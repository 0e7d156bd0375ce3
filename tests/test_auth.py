"""API keys on every route, under every credential state."""

from __future__ import annotations

import asyncio
import hmac
import json
from datetime import timedelta
from pathlib import Path

import pytest

from skywarden.server import keys
from skywarden.server.appkeys import AUTHENTICATOR, KEY_STORE
from skywarden.server.auth.records import utcnow
from tests.support.admin import ADMIN_HEADERS, ADMIN_TOKEN, create_key
from tests.support.logs import SECRETS, drain_logs

FORECAST = {"latitude": 39.7456, "longitude": -97.0892}
TOOL_ROUTES = [("GET", "/api/mcp/tools", None), ("POST", "/api/mcp/tools/get_forecast", FORECAST)]
ADMIN_ROUTES = [("GET", "/api/admin/keys", None), ("POST", "/api/admin/keys", {"name": "x"})]


def tamper_checksum(key: str) -> str:
    last = key[-1]
    return key[:-1] + ("A" if last != "A" else "B")


def unknown_key() -> str:
    return keys.generate_key("live")


async def request(client, method, path, body, headers):
    return await client.anonymous.request(method, path, json=body, headers=headers)


async def assert_uniform_401(resp, www_error: bool):
    assert resp.status == 401
    assert resp.content_type == "application/problem+json"
    challenge = resp.headers["WWW-Authenticate"]
    assert challenge.startswith("Bearer realm=")
    assert ('error="invalid_token"' in challenge) is www_error
    body = await resp.json()
    body.pop("request_id")
    return body


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.mark.parametrize(("method", "path", "body"), TOOL_ROUTES)
async def test_every_bad_credential_gets_the_same_401(client, method, path, body):
    store = client.server.app[KEY_STORE]
    expired = await create_key(client.admin, name="expired")
    await store.update(expired["id"], {"expires_at": utcnow() - timedelta(seconds=1)})
    revoked = await create_key(client.admin, name="revoked")
    assert (await client.admin.delete(f"/api/admin/keys/{revoked['id']}")).status == 204
    disabled = await create_key(client.admin, name="disabled")
    assert (await client.admin.patch(f"/api/admin/keys/{disabled['id']}", json={"disabled": True})).status == 200

    bodies = []
    resp = await request(client, method, path, body, {})
    bodies.append(await assert_uniform_401(resp, www_error=False))
    for presented in (
        "not-a-key",
        "skw_live_short",
        tamper_checksum(client.api_key),
        unknown_key(),
        expired["key"],
        revoked["key"],
        disabled["key"],
        ADMIN_TOKEN,
    ):
        for headers in ({"X-API-Key": presented}, {"Authorization": f"Bearer {presented}"}):
            resp = await request(client, method, path, body, headers)
            bodies.append(await assert_uniform_401(resp, www_error=True))
    assert all(b == bodies[0] for b in bodies[1:]), "401 answers must not say why"


@pytest.mark.parametrize(("method", "path", "body"), TOOL_ROUTES)
async def test_valid_key_in_either_header(client, method, path, body):
    for headers in ({"X-API-Key": client.api_key}, {"Authorization": f"Bearer {client.api_key}"}):
        resp = await request(client, method, path, body, headers)
        assert resp.status == 200


@pytest.fixture
def store_lookups(client, monkeypatch) -> list[str]:
    """Every hash the key store is asked for during the test."""
    store = client.server.app[KEY_STORE]
    calls: list[str] = []
    original = store.find_by_hash

    async def spy(key_hash):
        calls.append(key_hash)
        return await original(key_hash)

    monkeypatch.setattr(store, "find_by_hash", spy)
    return calls


async def test_bad_checksum_is_rejected_without_a_store_lookup(client, store_lookups):
    calls = store_lookups
    resp = await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": tamper_checksum(client.api_key)})
    assert resp.status == 401 and calls == []
    resp = await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": unknown_key()})
    assert resp.status == 401 and len(calls) == 1


@pytest.mark.parametrize("secret_length", [0, 1, 32, 63, 64, 65, 200])
def test_key_hashes_are_hmac_sha256_under_the_secret(secret_length):
    """The stored hash and the request path's look-up are RFC 2104 HMAC-SHA256, whatever the
    secret's length (one longer than SHA-256's block is hashed first)."""
    secret = bytes(range(256))[:secret_length]
    hasher = keys.key_hasher(secret)
    for key in (keys.generate_key(), keys.generate_key("test"), "", "x", "ünïcødé-ключ", "k" * 500):
        expected = hmac.digest(secret, key.encode("utf-8"), "sha256").hex()
        assert hasher(key) == keys.hash_key(key, secret) == expected


async def test_verified_key_is_cached(client, store_lookups):
    await client.server.app[AUTHENTICATOR].invalidate(client.key_id)  # start cold: exactly one lookup
    for _ in range(5):
        assert (await client.get("/api/mcp/tools")).status == 200
    assert len(store_lookups) == 1


@pytest.mark.parametrize(("method", "path", "body"), ADMIN_ROUTES)
async def test_api_key_never_opens_admin_routes(client, method, path, body):
    for headers in ({"X-API-Key": client.api_key}, {"Authorization": f"Bearer {client.api_key}"}, {}):
        resp = await request(client, method, path, body, headers)
        assert resp.status == 401
        assert resp.content_type == "application/problem+json"


async def test_admin_token_on_admin_routes_only(client):
    assert (await client.admin.get("/api/admin/keys")).status == 200
    resp = await request(client, "GET", "/api/admin/keys", None, {"Authorization": "Bearer wrong-token-" + "x" * 30})
    assert resp.status == 401 and 'error="invalid_token"' in resp.headers["WWW-Authenticate"]
    resp = await request(client, "GET", "/api/admin/keys", None, {"X-API-Key": ADMIN_TOKEN})
    assert resp.status == 401  # the admin token goes in Authorization only


@pytest.mark.parametrize(
    "query",
    ["api_key=KEY", "apikey=KEY", "token=KEY", "access_token=KEY", "q=KEY", "key=anything"],
)
async def test_key_in_query_string_is_refused(client, query):
    url = "/api/mcp/tools?" + query.replace("KEY", client.api_key)
    resp = await client.anonymous.get(url)
    assert resp.status == 400
    body = await resp.json()
    assert body["type"].endswith("credential-in-url")
    assert client.api_key not in str(body)


async def test_public_routes_need_nothing(client):
    for path in ("/api/health", "/api/health/ready", "/api/docs", "/api/docs/openapi.json"):
        assert (await client.anonymous.get(path)).status == 200, path


async def test_unknown_routes_are_denied_by_default(client):
    assert (await client.anonymous.get("/api/anything")).status == 401
    assert (await client.anonymous.get("/")).status == 401
    assert (await client.get("/api/anything")).status == 404


async def test_scopes_limit_list_and_call(make_client):
    client = await make_client(scopes=["get_alerts"])
    tools = (await (await client.get("/api/mcp/tools")).json())["tools"]
    assert [t["name"] for t in tools] == ["get_alerts"]
    resp = await client.post("/api/mcp/tools/get_forecast", json=FORECAST)
    assert resp.status == 403
    body = await resp.json()
    assert body["type"].endswith("insufficient-scope")
    assert (await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).status == 200


async def test_forbidden_tool_never_runs(make_client, fake_nws):
    client = await make_client(scopes=["get_alerts"])
    await client.post("/api/mcp/tools/get_forecast", json=FORECAST)
    assert fake_nws.requests == []


async def test_revocation_is_effective_on_the_next_request(client):
    assert (await client.get("/api/mcp/tools")).status == 200  # now cached
    assert (await client.admin.delete(f"/api/admin/keys/{client.key_id}")).status == 204
    assert (await client.get("/api/mcp/tools")).status == 401
    assert (await client.admin.delete(f"/api/admin/keys/{client.key_id}")).status == 204  # idempotent


async def test_disable_and_enable(client):
    await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"disabled": True, "disabled_reason": "audit"})
    assert (await client.get("/api/mcp/tools")).status == 401
    await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"disabled": False})
    assert (await client.get("/api/mcp/tools")).status == 200


async def test_expiry_is_checked_on_cached_keys(client):
    authenticator = client.server.app[AUTHENTICATOR]
    future = utcnow() + timedelta(hours=1)
    resp = await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"expires_at": future.isoformat()})
    assert resp.status == 200
    assert (await client.get("/api/mcp/tools")).status == 200
    authenticator.now = lambda: future + timedelta(seconds=1)
    assert (await client.get("/api/mcp/tools")).status == 401


async def test_rotation_grace_works_and_ends(client):
    old = client.api_key
    resp = await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 3600})
    assert resp.status == 200
    rotated = await resp.json()
    new = rotated["key"]
    SECRETS.add(new)
    assert new != old and rotated["id"] == client.key_id and rotated["prefix"] == keys.display_prefix(new)
    for key in (old, new):
        assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": key})).status == 200
    authenticator = client.server.app[AUTHENTICATOR]
    authenticator.now = lambda: utcnow() + timedelta(seconds=3601)
    assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": old})).status == 401
    assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": new})).status == 200


async def test_rotation_without_grace_ends_the_old_key_at_once(client):
    old = client.api_key
    assert (await client.get("/api/mcp/tools")).status == 200
    resp = await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 0})
    new = (await resp.json())["key"]
    SECRETS.add(new)
    assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": old})).status == 401
    assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": new})).status == 200


async def test_second_rotation_ends_the_first_grace(client):
    first = client.api_key
    r1 = await (await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 3600})).json()
    await client.admin.post(f"/api/admin/keys/{client.key_id}/rotate", json={"grace_seconds": 0})
    for key in (first, r1["key"]):
        assert (await request(client, "GET", "/api/mcp/tools", None, {"X-API-Key": key})).status == 401


async def test_keys_survive_a_restart_and_the_database_holds_no_key(make_settings, aiohttp_client, tmp_path):
    from skywarden.server.app import create_app

    settings = make_settings()
    admin = await aiohttp_client(create_app(settings), headers=ADMIN_HEADERS)
    created = [await create_key(admin, name=f"k{i}") for i in range(3)]
    await admin.close()

    client = await aiohttp_client(create_app(settings))
    for key in created:
        assert (await client.get("/api/mcp/tools", headers={"X-API-Key": key["key"]})).status == 200
    await client.close()

    data_dir = Path(settings.data_dir)
    files = [p for p in data_dir.iterdir() if p.is_file()]
    assert any(p.name == "skywarden.db" for p in files)
    for path in files:
        content = path.read_bytes()
        for key in created:
            assert key["key"].encode() not in content, path
            assert key["key"][len(key["prefix"]) :].encode() not in content, path
        assert ADMIN_TOKEN.encode() not in content


async def test_database_and_secret_files_are_private(make_settings, aiohttp_client):
    from skywarden.server.app import create_app

    settings = make_settings()
    await aiohttp_client(create_app(settings))
    data_dir = Path(settings.data_dir)
    assert (data_dir / "server-secret").stat().st_mode & 0o077 == 0
    assert (data_dir / "skywarden.db").stat().st_mode & 0o077 == 0


async def test_many_creations_and_revocations_at_once_lose_nothing(client):
    created = await asyncio.gather(*(create_key(client.admin, name=f"bulk-{i}") for i in range(40)))
    assert len({k["id"] for k in created}) == 40
    revoke = created[::2]
    statuses = await asyncio.gather(
        *(client.admin.delete(f"/api/admin/keys/{k['id']}", json={"reason": "bulk"}) for k in revoke),
        *(create_key(client.admin, name=f"more-{i}") for i in range(20)),
    )
    assert all(getattr(s, "status", 204) == 204 for s in statuses[: len(revoke)])
    listing = (await (await client.admin.get("/api/admin/keys?limit=1000")).json())["keys"]
    by_id = {k["id"]: k for k in listing}
    assert len([k for k in listing if k["name"].startswith(("bulk-", "more-"))]) == 60
    for k in created:
        expected = "revoked" if k in revoke else "active"
        assert by_id[k["id"]]["status"] == expected
        assert by_id[k["id"]]["revoked_reason"] == ("bulk" if k in revoke else None)


async def test_usage_is_tracked_without_a_write_per_request(client, monkeypatch):
    store = client.server.app[KEY_STORE]
    writes = []
    original = store.record_usage

    async def spy(usage):
        writes.append(dict(usage))
        return await original(usage)

    monkeypatch.setattr(store, "record_usage", spy)
    for _ in range(5):
        assert (await client.get("/api/mcp/tools")).status == 200
    assert writes == []
    shown = await (await client.admin.get(f"/api/admin/keys/{client.key_id}")).json()
    assert shown["use_count"] == 5 and shown["last_used_at"] is not None
    assert len(writes) == 1


async def test_a_flush_waits_for_the_flush_already_under_way():
    """An admin read flushes first; if the periodic flush had just taken the counts, the read
    must wait until they are written, or it would show too few uses."""
    import asyncio

    from skywarden.server.auth.authenticator import Authenticator
    from skywarden.server.auth.records import utcnow

    class SlowStore:
        def __init__(self) -> None:
            self.entered, self.release, self.written = asyncio.Event(), asyncio.Event(), {}

        async def record_usage(self, usage):
            self.entered.set()
            await self.release.wait()
            self.written.update({key: count for key, (count, _) in usage.items()})

    store = SlowStore()
    authenticator = Authenticator(store, b"s" * 32)
    authenticator._usage = {"key_a": (3, utcnow())}
    periodic = asyncio.create_task(authenticator.flush_usage())
    await store.entered.wait()
    before_read = asyncio.create_task(authenticator.flush_usage())
    for _ in range(5):
        await asyncio.sleep(0)  # let it run as far as it can
    assert not before_read.done()
    store.release.set()
    await before_read
    assert store.written == {"key_a": 3} and periodic.done()


async def test_usage_is_written_in_chunks_and_what_failed_is_kept():
    from skywarden.server.auth import authenticator as module
    from skywarden.server.auth.authenticator import Authenticator
    from skywarden.server.auth.records import utcnow

    class FailsSecondWrite:
        def __init__(self) -> None:
            self.writes: list[dict] = []

        async def record_usage(self, usage):
            if self.writes:
                raise OSError("connection lost")
            self.writes.append(dict(usage))

    store = FailsSecondWrite()
    authenticator = Authenticator(store, b"s" * 32)
    now = utcnow()
    total = module.USAGE_FLUSH_CHUNK + 5
    authenticator._usage = {f"key_{i}": (1, now) for i in range(total)}
    with pytest.raises(OSError):
        await authenticator.flush_usage()
    assert len(store.writes[0]) == module.USAGE_FLUSH_CHUNK
    assert len(authenticator._usage) == 5  # not lost: written by the next flush


async def test_a_key_revoked_behind_the_servers_back_is_refused_after_the_change_feed_is_read(client, store_lookups):
    """Another writer (the CLI, an instance without Redis) revokes in the store directly: the
    next read of the change feed drops just that key from the cache."""
    from skywarden.server.appkeys import KEY_STORE
    from skywarden.server.auth.records import utcnow

    other = await create_key(client.admin)
    other_headers = {"X-API-Key": other["key"]}
    for headers in (None, other_headers):
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200  # both cached
    store_lookups.clear()
    await client.server.app[KEY_STORE].revoke(client.key_id, "behind its back", utcnow())
    assert (await client.get("/api/mcp/tools")).status == 200  # still cached: nobody said
    dropped = await client.server.app[AUTHENTICATOR].follow_changes()
    assert dropped == 1
    assert (await client.get("/api/mcp/tools")).status == 401
    assert (await client.get("/api/mcp/tools", headers=other_headers)).status == 200
    assert len(store_lookups) == 1  # only the changed key went back to the store


# -- a credential in the URL: refused first, on every path -----------------------------------------

EVERY_KIND_OF_PATH = [
    ("GET", "/api/health"),
    ("GET", "/api/health/ready"),
    ("GET", "/api/docs"),
    ("GET", "/api/docs/openapi.json"),
    ("GET", "/admin"),
    ("GET", "/admin/app.js"),
    ("GET", "/.well-known/oauth-protected-resource"),
    ("GET", "/.well-known/openid-configuration/mcp"),
    ("GET", "/favicon.ico"),
    ("GET", "/nothing/here"),
    ("GET", "/api/mcp/tools"),
    ("POST", "/api/mcp/tools/get_alerts"),
    ("POST", "/mcp"),
    ("GET", "/api/admin/keys"),
    ("GET", "/metrics"),
    ("OPTIONS", "/mcp"),
]


def _every_name_the_check_knows() -> list[str]:
    from skywarden.server.auth.authenticate import QUERY_SECRET_NAMES

    spelled = {"apikey": ["api_key", "API-Key", "apiKey"], "xapikey": ["x-api-key", "X_API_KEY"]}
    return [written for name in sorted(QUERY_SECRET_NAMES) for written in spelled.get(name, [name, name.upper()])]


@pytest.mark.parametrize(("method", "path"), EVERY_KIND_OF_PATH)
async def test_a_credential_in_the_url_is_refused_on_every_path(client, method, path):
    """Public paths, the console, probes, unknown paths, CORS preflights: 400 credential-in-url
    (JSON-RPC at /mcp), whatever the name, a key under any name, percent-encoded, in the path."""
    key = client.api_key
    queries = [f"{name}=x" for name in _every_name_the_check_knows()]
    queries += [
        f"q={key}",
        f"state=Bearer%20{key}",
        f"x=prefix{key}suffix",
        f"x={key.replace('_', '%5F')}",
        f"{key}=1",
        "id_token=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",
        "a=1&b=2&Api_Key=3",
    ]
    for query in queries:
        resp = await client.anonymous.request(method, f"{path}?{query}", headers={"Origin": "http://localhost"})
        text = await resp.text()
        assert resp.status == 400, (path, query, text[:200])
        assert key not in text and key not in str(resp.headers)
        if path == "/mcp":
            assert json.loads(text)["error"]["code"] == -32600
        else:
            assert json.loads(text)["type"].endswith("/credential-in-url"), (path, query)
    for in_path in (f"{path.rstrip('/')}/{key}", f"{path.rstrip('/')}/{key.replace('_', '%5F')}"):
        resp = await client.anonymous.request(method, in_path)
        assert resp.status == 400 and key not in await resp.text(), in_path
    events = [e for e in drain_logs() if e.get("event") == "request" and e.get("reason") == "key_in_query"]
    assert events and all("?" not in e["path"] for e in events)


async def test_a_credential_in_the_url_is_refused_before_an_https_redirect(
    client, make_server, make_settings, aiohttp_client
):
    settings = make_settings(require_https="true", public_url="https://mcp.example.com")
    plain = await aiohttp_client(await make_server(settings))
    for path in ("/api/mcp/tools", "/api/docs", "/admin"):
        assert (await plain.get(f"{path}?q=1", allow_redirects=False)).status == 308  # redirected to https
        resp = await plain.get(f"{path}?api_key={client.api_key}", allow_redirects=False)
        assert resp.status == 400 and "Location" not in resp.headers, path


@pytest.mark.parametrize(
    "query",
    [
        "key_id=key_0123",
        "owner=ops&status=active",
        "state=CO",
        "keyword=x",
        "tokens=1",
        "monkey=1",
        "q=skw_live_short",
        "code=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.sig",  # an identity provider's code may look like a JWT
    ],
)
async def test_ordinary_parameters_are_not_credentials(client, query):
    assert (await client.get(f"/api/mcp/tools?{query}")).status == 200
    assert (await client.anonymous.get(f"/api/health?{query}")).status == 200
