"""Abuse resistance: each defect the red team found, as a class with members it did not list."""

from __future__ import annotations

import asyncio
import json
import tracemalloc

import pytest

from skywarden.server.appkeys import SESSIONS
from skywarden.server.http.paths import PROBE_PATHS
from skywarden.server.keys import generate_key
from skywarden.server.mcp.sessions import MAX_CAPABILITY_NAMES, MAX_NAME, MAX_TEXT, MemorySessionStore
from tests.support.admin import create_key
from tests.support.logs import SECRETS, drain_logs
from tests.support.mcp_helpers import ACCEPT_BOTH, modern_headers, modern_rpc, open_session, post, rpc, session_headers

# -- sessions: bounded in bytes, per key, and no key can starve another ------------------------------

HUGE_CAPABILITIES = {f"cap{i}-" + "x" * 500: {"nested": ["y" * 1000] * 5} for i in range(40)}  # ~220 KB
HUGE_CLIENT_INFO = {"name": "n" * 100_000, "version": "v" * 100_000, "extra": "z" * 100_000}


async def test_a_session_keeps_only_bounded_names():
    store = MemorySessionStore(idle_timeout=60, max_sessions=10)
    session = await store.create("key_a", "2025-11-25", HUGE_CLIENT_INFO, HUGE_CAPABILITIES)
    assert len(session.capability_names) == MAX_CAPABILITY_NAMES
    assert all(len(name) <= MAX_NAME for name in session.capability_names)
    assert len(session.client_name) == len(session.client_version) == MAX_TEXT
    assert not hasattr(session, "__dict__")  # slots: nothing else can hang on it


async def test_the_worst_case_session_costs_under_two_kilobytes():
    store = MemorySessionStore(idle_timeout=60, max_sessions=2000, max_per_key=2000)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for _ in range(1000):
        await store.create("key_a", "2025-11-25", HUGE_CLIENT_INFO, HUGE_CAPABILITIES)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert grown / 1000 < 2048, f"{grown / 1000:.0f} bytes per session"


async def test_one_key_cannot_exhaust_the_sessions_of_another(make_client, make_settings, aiohttp_client):
    client = await make_client(make_settings(max_sessions="4", max_sessions_per_key="3"))
    for _ in range(3):
        await open_session(client)
    resp = await post(client, rpc("initialize", {"protocolVersion": "2025-11-25", "capabilities": HUGE_CAPABILITIES}))
    assert resp.status == 429 and (await resp.json())["error"]["code"] == -32029 and resp.headers["Retry-After"]
    other = await create_key(client.admin)
    other_client = await aiohttp_client(client.server, headers={"X-API-Key": other["key"]})
    for _ in range(2):  # the store is full after the first: the second takes the hog's oldest session
        await open_session(other_client)
    store = client.server.app[SESSIONS]
    assert store.count_for(other["id"]) == 2 and store.count_for(client.key_id) == 2 and len(store) == 4
    resp = await post(other_client, rpc("initialize", {"protocolVersion": "2025-11-25"}))
    assert resp.status == 429  # equal shares of a full store: nobody takes from anybody


# -- batches: every call charged, a batch larger than the setting refused whole ------------------------


async def _batch_session(make_client, make_settings, **settings):
    client = await make_client(make_settings(**settings))
    session = await open_session(client, "2025-03-26")
    return client, session_headers(session, "2025-03-26")


def _calls(n: int) -> list[dict]:
    return [rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "KS"}}) for _ in range(n)]


async def test_every_call_in_a_batch_is_charged(make_client, make_settings, fake_nws):
    client, headers = await _batch_session(make_client, make_settings, rate_limit="5/minute")
    # initialize and initialized spent 2 of 5; a batch of 7 calls costs 7: refused whole
    # (its HTTP request still paid its one unit, as every request does)
    upstream_before = len(fake_nws.requests)
    resp = await post(client, _calls(7), headers)
    body = await resp.json()
    assert resp.status == 429 and body["error"]["code"] == -32029 and body["id"] is None
    assert len(fake_nws.requests) == upstream_before  # nothing ran
    resp = await post(client, _calls(2), headers)  # exactly the budget left
    assert resp.status == 200 and len(await resp.json()) == 2
    assert '"key-minute";r=0;' in resp.headers["RateLimit"]
    assert (await post(client, _calls(1), headers)).status == 429


async def test_a_batch_larger_than_the_setting_is_refused_whole(make_client, make_settings, fake_nws):
    client, headers = await _batch_session(make_client, make_settings, max_batch_size="10", rate_limit="")
    upstream_before = len(fake_nws.requests)
    resp = await post(client, [rpc("ping")] * 11, headers)
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == -32600 and "at most 10" in body["error"]["message"]
    resp = await post(client, _calls(10), headers)
    assert resp.status == 200 and len(await resp.json()) == 10
    assert len(fake_nws.requests) > upstream_before


async def test_calls_in_a_batch_count_toward_the_concurrency_cap(make_client, make_settings, tmp_path):
    from skywarden.server.plugins.registry import discover_tools
    from tests.support import plugin_samples
    from tests.support.plugin_samples import fake_distribution

    fake_distribution(tmp_path, "acme-waits", {"waits": "tests.support.plugin_samples:waits"})
    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client = await make_client(
        make_settings(max_concurrent_calls="1", rate_limit=""), registry=discover_tools(paths=[str(tmp_path)])
    )
    headers = session_headers(await open_session(client, "2025-03-26"), "2025-03-26")
    first = asyncio.create_task(client.post("/api/mcp/tools/waits", json={"text": "x"}))
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)
    resp = await post(client, [rpc("tools/call", {"name": "waits", "arguments": {"text": "y"}})] * 2, headers)
    answers = await resp.json()
    assert resp.status == 429 and [a["error"]["code"] for a in answers] == [-32029, -32029]
    first.cancel()
    await asyncio.wait_for(plugin_samples.SIGNALS["cancelled"].wait(), 10)


# -- credentials: ambiguity refused, never resolved --------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [
        [("X-API-Key", "{key}"), ("X-API-Key", "{key}")],
        [("X-API-Key", "{key}"), ("X-API-Key", "skw_live_other")],
        [("Authorization", "Bearer {key}"), ("Authorization", "Bearer {key}")],
        [("X-API-Key", "{key}"), ("Authorization", "Bearer skw_live_other")],
        [("X-API-Key", "{key}"), ("Authorization", "Bearer {key}")],
        [("X-API-Key", ""), ("Authorization", "Bearer {key}")],
        [("X-API-Key", "{key}"), ("Authorization", "Basic eDp5")],
    ],
    ids=["x2 same", "x2 different", "bearer x2", "both different", "both same", "empty beside bearer", "basic"],
)
@pytest.mark.parametrize("path", ["/api/mcp/tools", "/mcp", "/api/admin/keys"])
async def test_ambiguous_credentials_are_refused(client, headers, path):
    from multidict import CIMultiDict

    sent = CIMultiDict((name, value.format(key=client.api_key)) for name, value in headers)
    sent.add("Accept", ACCEPT_BOTH)
    resp = await client.anonymous.get(path, headers=sent)
    assert resp.status == 400, await resp.text()
    if path == "/mcp":
        assert (await resp.json())["error"]["code"] == -32600
    else:
        assert (await resp.json())["type"].endswith("/ambiguous-credentials")


# -- keyless probes: public 404s that count nothing ----------------------------------------------------


async def test_probe_addresses_are_public_404s_that_count_nothing(make_client, make_settings):
    client = await make_client(make_settings(auth_failure_limit="1/minute", unauthenticated_limit="1/minute"))
    for _ in range(5):  # mcp-remote and the Inspector probe these at every start
        for path in sorted(PROBE_PATHS):
            for method in ("GET", "POST"):
                resp = await client.anonymous.request(method, path)
                assert resp.status in (404, 405) and resp.content_type == "application/problem+json", path
                assert "WWW-Authenticate" not in resp.headers
    assert (await client.get("/api/mcp/tools")).status == 200  # the valid key still works
    resp = await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": generate_key()})
    assert resp.status == 401  # and the failure budget is untouched


# -- HTTPS redirects only to a host we vouch for -------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "host", "expected"),
    [
        ({"allowed_hosts": "*"}, "evil.example", None),
        ({"allowed_hosts": "mcp.example.com"}, "mcp.example.com", "https://mcp.example.com/api/mcp/tools"),
        (
            {"allowed_hosts": "*", "public_url": "https://mcp.example.com"},
            "evil.example",
            "https://mcp.example.com/api/mcp/tools",
        ),
        ({}, "localhost", "https://localhost/api/mcp/tools"),
    ],
)
async def test_https_redirect_never_goes_to_an_unvouched_host(
    make_server, make_settings, aiohttp_client, settings, host, expected
):
    client = await aiohttp_client(await make_server(make_settings(require_https="true", **settings)))
    resp = await client.get("/api/mcp/tools", headers={"Host": host}, allow_redirects=False)
    if expected is None:
        assert resp.status == 403 and "Location" not in resp.headers
    else:
        assert resp.status == 308 and resp.headers["Location"] == expected


# -- bodies: refused on Content-Length, never read before authentication -------------------------------


async def _raw(server, data: bytes, read_timeout: float = 10) -> bytes:
    reader, writer = await asyncio.open_connection(server.host, server.port)
    writer.write(data)
    await writer.drain()
    try:
        return await asyncio.wait_for(reader.read(), read_timeout)  # until the server closes
    finally:
        writer.close()


@pytest.mark.parametrize(("key", "status"), [("good", 413), ("wrong", 413), (None, 413)])
async def test_an_announced_oversized_body_is_refused_unread(client, key, status):
    header = {"good": f"X-API-Key: {client.api_key}\r\n", "wrong": "X-API-Key: skw_live_x\r\n", None: ""}[key]
    head = (
        f"POST /api/mcp/tools/get_alerts HTTP/1.1\r\nHost: localhost\r\n{header}"
        "Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n"
    ).encode()
    answer = await _raw(client.server, head + b"{" * 1024)  # 1 KB of a promised 100 MB, then wait
    assert answer.startswith(f"HTTP/1.1 {status}".encode()) and b"payload-too-large" in answer


async def test_a_refused_request_with_an_unread_body_closes_instead_of_draining(client):
    head = (
        b"POST /api/mcp/tools/get_alerts HTTP/1.1\r\nHost: localhost\r\nX-API-Key: skw_live_wrong\r\n"
        b"Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    )
    answer = await _raw(client.server, head + b"{")  # the rest never comes; the server must not wait for it
    assert answer.startswith(b"HTTP/1.1 401") and b"Connection: close" in answer


# -- connections: idle and slow headers closed, parser refusals audited and redacted -------------------


async def test_a_silent_connection_is_closed(make_client, make_settings):
    client = await make_client(make_settings(idle_timeout="0.3"))
    assert await _raw(client.server, b"") == b""  # closed by the server, nothing sent
    assert any(e.get("event") == "connection" and e.get("reason") == "idle_timeout" for e in drain_logs())


async def test_trickled_headers_are_cut_off(make_client, make_settings):
    client = await make_client(make_settings(idle_timeout="0.3"))
    reader, writer = await asyncio.open_connection(client.server.host, client.server.port)
    writer.write(b"GET /api/health HTTP/1.1\r\n")
    closed = asyncio.ensure_future(reader.read())
    for _ in range(100):  # one header byte at a time, never finishing the head
        if closed.done():
            break
        writer.write(b"X")
        await asyncio.wait([closed], timeout=0.05)
    assert closed.done() and await closed == b""
    writer.close()
    assert any(e.get("event") == "connection" and e.get("reason") == "slow_headers" for e in drain_logs())


async def test_an_idle_keep_alive_connection_is_closed_after_its_answer(make_client, make_settings):
    client = await make_client(make_settings(idle_timeout="0.3"))
    answer = await _raw(client.server, b"GET /api/health HTTP/1.1\r\nHost: localhost\r\n\r\n")
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'"}')  # then closed while idle


@pytest.mark.parametrize(
    "bad",
    [
        b"X-Junk: a\x00b\r\n",
        b"X-Big: " + b"y" * 20000 + b"\r\n",
        b"Bad Header Line\r\n",
        b"Content-Length: -5\r\n",
        b"Content-Length: 1\r\nContent-Length: 2\r\n",
    ],
    ids=["nul", "oversized", "no colon", "negative length", "two lengths"],
)
async def test_a_parser_refusal_is_problem_json_audited_and_never_logs_the_key(client, bad):
    key = client.api_key
    glued = f"id{key}"
    request = f"GET /api/mcp/tools HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {key}\r\nX-Trace: {glued}\r\n".encode()
    answer = await _raw(client.server, request + bad + b"\r\n")
    assert answer.startswith((b"HTTP/1.1 4", b"HTTP/1.0 4")) and b"application/problem+json" in answer
    events = [e for e in drain_logs() if e.get("event") == "connection" and e.get("reason", "").startswith("http_")]
    assert events and events[-1]["outcome"] in ("error", "denied")
    assert not [line for line in map(json.dumps, drain_logs()) if key in line]


def test_redaction_finds_a_key_glued_to_other_characters():
    from skywarden.server.observability.redaction import redact_text

    key = generate_key()
    SECRETS.add(key)
    for text in (f"x{key}", f"id{key}y", f"{key}{key}", f"key={key}."):
        assert key not in redact_text(text)


# -- a client that goes away is not a server error -----------------------------------------------------


async def test_a_client_that_disconnects_mid_call_is_audited_as_cancelled(
    make_client, make_settings, tmp_path, monkeypatch
):
    from skywarden.server.observability import logging_setup
    from skywarden.server.plugins.registry import discover_tools
    from tests.support import plugin_samples
    from tests.support.plugin_samples import fake_distribution

    fake_distribution(tmp_path, "acme-waits", {"waits": "tests.support.plugin_samples:waits"})
    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client = await make_client(registry=discover_tools(paths=[str(tmp_path)]))
    _, writer = await asyncio.open_connection(client.server.host, client.server.port)
    body = b'{"text": "x"}'
    writer.write(
        f"POST /api/mcp/tools/waits HTTP/1.1\r\nHost: localhost\r\nX-API-Key: {client.api_key}\r\n"
        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n".encode()
        + body
    )
    audited: list[dict] = []
    written = asyncio.Event()
    real = logging_setup.audit_logger

    class Spy:  # the audit event is written when the handler unwinds: wait for exactly that
        def info(self, event: str, **fields) -> None:
            real().info(event, **fields)
            if fields.get("path") == "/api/mcp/tools/waits":
                audited.append(fields)
                written.set()

    monkeypatch.setattr(logging_setup, "audit_logger", Spy)
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)
    writer.close()
    await asyncio.wait_for(written.wait(), 10)
    assert audited[-1]["status"] == 499 and audited[-1]["outcome"] == "cancelled"


# -- JSON text that is not text ------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["id", "method", "tool name", "argument key", "argument value", "_meta key"])
async def test_lone_surrogates_are_refused_at_the_mcp_door(client, where):
    message = modern_rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "KS"}}, id=7)
    raw = json.dumps(message)
    replace = {
        "id": ('"id": 7', '"id": "\\ud800"'),
        "method": ('"method": "tools/call"', '"method": "tools/\\ud800"'),
        "tool name": ('"name": "get_alerts"', '"name": "get_\\udc00"'),
        "argument key": ('"state": "KS"', '"\\ud800": "KS"'),
        "argument value": ('"state": "KS"', '"state": "\\udbff"'),
        "_meta key": ('"io.modelcontextprotocol/clientInfo"', '"\\ud800"'),
    }[where]
    raw = raw.replace(*replace)
    resp = await client.post("/mcp", data=raw, headers={**modern_headers(message), "Content-Type": "application/json"})
    body = await resp.json()
    assert resp.status == 400 and body["error"]["code"] == -32700 and "surrogate" in body["error"]["message"]


async def test_lone_surrogates_are_refused_at_the_rest_door(client):
    resp = await client.post(
        "/api/mcp/tools/get_alerts", data=b'{"state": "\\ud800"}', headers={"Content-Type": "application/json"}
    )
    assert resp.status == 400 and (await resp.json())["type"].endswith("/invalid-json")


async def test_a_load_balancer_probe_gets_its_200_over_plain_http(make_server, make_settings, aiohttp_client):
    client = await aiohttp_client(await make_server(make_settings(require_https="true")))
    for path in ("/api/health", "/api/health/ready"):
        resp = await client.get(path, allow_redirects=False)
        assert resp.status == 200 and "Strict-Transport-Security" not in resp.headers


async def test_a_cached_key_costs_under_600_bytes():
    """What key_cache_entries x this bounds: the verified-key cache's memory (docs/performance.md).
    About 577 bytes in a fresh interpreter; what ran before in the process moves it by a few."""
    import tracemalloc

    from skywarden.server.auth.authenticator import Authenticator
    from skywarden.server.auth.records import HashMatch, KeyRecord, utcnow
    from skywarden.server.keys import generate_key

    class Store:
        async def find_by_hash(self, key_hash):
            record = KeyRecord(
                id="key_" + key_hash[:20], name="n" * 100, prefix="skw_live_abc", environment="live",
                scopes=["get_forecast", "get_alerts"], created_at=utcnow(), owner="o" * 100,
                metadata={"team": "t" * 1000}, rate_limit="100/minute;1000/day",
            )  # fmt: skip
            return HashMatch(record, None)

    authenticator = Authenticator(Store(), b"s" * 32, max_cached=10_000)
    presented = [generate_key("live") for _ in range(2_000)]
    for key in [generate_key("live") for _ in range(50)]:  # one-off state (logs, parsers) made before measuring
        await authenticator.authenticate(key)
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        for key in presented:
            await authenticator.authenticate(key)
        authenticator._usage.clear()  # use counts are flushed every few seconds, not kept
        grown = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert grown / len(presented) < 600  # metadata, owner and the rest of the record are not kept
