"""Security headers, CORS, HTTPS, forwarded headers, request limits and rate limits."""

from __future__ import annotations

import asyncio
import ssl

import aiohttp
import pytest
import trustme
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from multidict import CIMultiDict

from skywarden.server.appkeys import AUTHENTICATOR, LIMITER
from skywarden.server.auth.authenticator import AuthFailure
from skywarden.server.keys import generate_key
from skywarden.server.plugins.registry import discover_tools
from skywarden.server.principal import Principal
from tests.support import plugin_samples
from tests.support.admin import ADMIN_HEADERS, ADMIN_TOKEN, create_key
from tests.support.logs import SECRETS
from tests.support.plugin_samples import fake_distribution
from tests.support.server_process import start_server

COMMON = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "X-XSS-Protection": "0",
    "Cross-Origin-Resource-Policy": "same-origin",
}


@pytest.mark.parametrize(
    ("who", "method", "path", "no_store"),
    [
        ("anonymous", "GET", "/api/health", False),
        ("anonymous", "GET", "/api/docs", False),
        ("anonymous", "GET", "/api/docs/openapi.json", False),
        ("client", "GET", "/api/mcp/tools", True),
        ("client", "POST", "/mcp", True),
        ("admin", "GET", "/api/admin/keys", True),
        ("anonymous", "GET", "/api/mcp/tools", True),  # 401
        ("client", "GET", "/api/nope", True),  # 404
        ("admin", "GET", "/metrics", True),
    ],
)
async def test_security_header_matrix(client, who, method, path, no_store):
    http = {"anonymous": client.anonymous, "client": client, "admin": client.admin}[who]
    resp = await http.request(method, path, json={} if method == "POST" else None)
    for name, value in COMMON.items():
        assert resp.headers[name] == value, (path, name)
    assert resp.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors 'none'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["Server"] == "skywarden"  # no version banner
    assert (resp.headers.get("Cache-Control") == "no-store") is no_store
    assert "Strict-Transport-Security" not in resp.headers  # plain HTTP


@pytest.mark.parametrize("trust_forwarded", [False, True])
async def test_security_headers_keep_a_handlers_own_value_and_add_the_rest(trust_forwarded):
    """One block when the handler set none of them; header by header (its values kept) when it
    set some. Only with trusted proxies does a forwarded HTTPS bring HSTS."""
    from aiohttp.test_utils import make_mocked_request

    from skywarden.server.http.security_headers import API_CSP, security_headers_for
    from skywarden.server.request_state import STATE, RequestState

    hook = security_headers_for(trust_forwarded)
    for own in ({}, {"X-Frame-Options": "SAMEORIGIN", "Content-Security-Policy": "default-src 'self'"}):
        request = make_mocked_request("GET", "/api/mcp/tools")
        request[STATE] = RequestState(forwarded_https=True)
        response = web.Response(headers={**own, "Cache-Control": "no-cache, no-transform"})
        await hook(request, response)
        expected = {**COMMON, "Content-Security-Policy": API_CSP, **own}
        assert {name: response.headers[name] for name in expected} == expected
        assert len(response.headers.getall("X-Frame-Options")) == 1
        assert response.headers["Cache-Control"] == "no-store, no-transform"
        assert ("Strict-Transport-Security" in response.headers) is trust_forwarded


@pytest.fixture
async def cors_client(make_client, make_settings):
    return await make_client(make_settings(cors_origins="https://app.example"))


async def test_preflight_for_an_allowed_origin(cors_client, fake_nws):
    resp = await cors_client.anonymous.options(
        "/api/mcp/tools/get_alerts",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-api-key, content-type",
        },
    )
    assert resp.status == 200
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "X-API-KEY" in resp.headers["Access-Control-Allow-Headers"].upper()
    assert "Access-Control-Allow-Credentials" not in resp.headers
    assert fake_nws.requests == []


async def test_preflight_for_mcp_allows_mcp_headers(cors_client):
    resp = await cors_client.anonymous.options(
        "/mcp",
        headers={
            "Origin": "https://app.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": (
                "mcp-protocol-version, mcp-session-id, mcp-method, mcp-name, authorization"
            ),
        },
    )
    assert resp.status == 200
    allowed = resp.headers["Access-Control-Allow-Headers"].upper()
    for header in ("MCP-PROTOCOL-VERSION", "MCP-SESSION-ID", "MCP-METHOD", "MCP-NAME", "AUTHORIZATION"):
        assert header in allowed


async def test_preflight_for_an_unknown_origin_is_refused(cors_client):
    resp = await cors_client.anonymous.options(
        "/api/mcp/tools", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
    )
    assert resp.status == 403
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_actual_cors_requests(cors_client):
    resp = await cors_client.get("/api/mcp/tools", headers={"Origin": "https://app.example"})
    assert resp.headers["Access-Control-Allow-Origin"] == "https://app.example"
    assert "RATELIMIT" in resp.headers["Access-Control-Expose-Headers"].upper()
    assert "Access-Control-Allow-Credentials" not in resp.headers
    resp = await cors_client.get("/api/mcp/tools", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


async def test_cors_is_denied_by_default(client):
    resp = await client.get("/api/mcp/tools", headers={"Origin": "https://app.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers


@pytest.fixture(scope="module")
def tls_files(tmp_path_factory):
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    folder = tmp_path_factory.mktemp("tls")
    cert.cert_chain_pems[0].write_to_path(folder / "cert.pem")
    cert.private_key_pem.write_to_path(folder / "key.pem")
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    return folder, client_ctx


@pytest.mark.slow
async def test_https_served_directly_with_hsts(tls_files, tmp_path):
    folder, client_ctx = tls_files
    server = await start_server(
        {
            "SKYWARDEN_DATA_DIR": str(tmp_path),
            "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
            "SKYWARDEN_TLS_CERT": str(folder / "cert.pem"),
            "SKYWARDEN_TLS_KEY": str(folder / "key.pem"),
        }
    )
    try:
        url = f"https://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/api/health", ssl=client_ctx) as resp:
                assert resp.status == 200
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
            with pytest.raises(aiohttp.ClientError):
                await http.get(f"http://127.0.0.1:{server.port}/api/health")
    finally:
        await server.stop()


def test_tls_context_refuses_old_protocols(tls_files):
    from skywarden.server.cli.tls import server_ssl_context

    folder, _ = tls_files
    context = server_ssl_context(str(folder / "cert.pem"), str(folder / "key.pem"))
    assert context.minimum_version == ssl.TLSVersion.TLSv1_2


@pytest.mark.slow
def test_tls_settings_must_come_in_pairs(tmp_path):
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", "serve", "--tls-cert", "/nope.pem", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "tls_cert/tls_key" in result.stderr
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "skywarden.server.cli",
            "serve",
            "--tls-cert",
            "/nope.pem",
            "--tls-key",
            "/nope.key",
            "--data-dir",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2 and "cannot load" in result.stderr


async def test_require_https_redirects_get_and_refuses_the_rest(make_server, make_settings, aiohttp_client):
    client = await aiohttp_client(await make_server(make_settings(require_https="true")))
    resp = await client.get("/api/mcp/tools?page=2", allow_redirects=False)
    assert resp.status == 308 and resp.headers["Location"].startswith("https://")
    assert resp.headers["Location"].endswith("/api/mcp/tools?page=2")
    resp = await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    assert resp.status == 403 and (await resp.json())["type"].endswith("https-required")


async def test_forwarded_proto_is_believed_only_from_a_trusted_proxy(make_server, make_settings, aiohttp_client):
    https = {"X-Forwarded-Proto": "https"}
    trusting = await aiohttp_client(
        await make_server(make_settings(require_https="true", trusted_proxies="127.0.0.1/32"))
    )
    resp = await trusting.post("/api/admin/keys", json={"name": "p"}, headers={**ADMIN_HEADERS, **https})
    assert resp.status == 201
    key = (await resp.json())["key"]
    SECRETS.add(key)
    resp = await trusting.get("/api/mcp/tools", headers={**https, "X-API-Key": key}, allow_redirects=False)
    assert resp.status == 200 and "Strict-Transport-Security" in resp.headers
    untrusting = await aiohttp_client(
        await make_server(make_settings(require_https="true", trusted_proxies="10.0.0.0/8"))
    )
    resp = await untrusting.get("/api/mcp/tools", headers=https, allow_redirects=False)
    assert resp.status == 308


async def test_forwarded_for_sets_the_client_ip_only_from_a_trusted_proxy(make_client, make_settings):
    from tests.support.logs import drain_logs

    trusting = await make_client(make_settings(trusted_proxies="127.0.0.1"))
    resp = await trusting.get("/api/mcp/tools", headers={"X-Forwarded-For": "203.0.113.9, 127.0.0.1"})
    events = [e for e in drain_logs() if e.get("request_id") == resp.headers["X-Request-ID"] and e.get("audit")]
    assert events[0]["client_ip"] == "203.0.113.9"
    plain = await make_client()
    resp = await plain.get("/api/mcp/tools", headers={"X-Forwarded-For": "203.0.113.9"})
    events = [e for e in drain_logs() if e.get("request_id") == resp.headers["X-Request-ID"] and e.get("audit")]
    assert events[0]["client_ip"] == "127.0.0.1"


@given(
    zone=st.text(st.characters(codec="ascii", exclude_characters=",\r\n"), min_size=1, max_size=12),
    address=st.sampled_from(["fe80::1", "2001:db8::9", "::1"]),
    before=st.sampled_from(["", "203.0.113.9, "]),
)
def test_a_scoped_ipv6_hop_is_never_a_client_address(zone, address, before):
    """A zone makes any number of distinct addresses of one (fe80::1%a, fe80::1%b, ...): the chain
    is not believed from such a hop on, so the peer stays the client."""
    from skywarden.server.http.proxy import forwarded_client, parse_networks

    class Request:
        remote = "127.0.0.1"
        headers = CIMultiDict({"X-Forwarded-For": f"{before}{address}%{zone}"})

    assert forwarded_client(Request(), parse_networks(["127.0.0.1"]))[0] is None


async def test_scoped_forwarded_addresses_count_as_one_client(make_client, make_settings):
    client = await make_client(make_settings(trusted_proxies="127.0.0.1", auth_failure_limit="2/minute"))
    statuses = []
    for zone in ("eth0", "eth1", "x"):
        resp = await client.anonymous.get(
            "/api/mcp/tools", headers={"X-API-Key": "skw_live_wrong", "X-Forwarded-For": f"fe80::1%{zone}"}
        )
        statuses.append(resp.status)
    assert statuses == [401, 401, 429]


async def test_slow_body_is_cut_off(make_client, make_settings):
    client = await make_client(make_settings(body_timeout="0.3"))
    reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
    writer.write(
        b"POST /api/mcp/tools/get_alerts HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        + f"X-API-Key: {client.api_key}\r\nContent-Length: 100\r\n\r\n".encode()
        + b'{"state":'
    )
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
    assert head.startswith(b"HTTP/1.1 408")
    writer.close()


async def test_rate_limit_exact_count_then_429(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="3/minute"))
    for remaining in (2, 1, 0):
        resp = await client.get("/api/mcp/tools")
        assert resp.status == 200
        assert resp.headers["RateLimit-Policy"] == '"key-minute";q=3;w=60'
        assert resp.headers["RateLimit"].startswith(f'"key-minute";r={remaining};t=')
    resp = await client.get("/api/mcp/tools")
    assert resp.status == 429
    assert int(resp.headers["Retry-After"]) >= 1
    assert resp.headers["RateLimit"].startswith('"key-minute";r=0;t=')
    assert (await resp.json())["type"].endswith("rate-limited")
    from tests.support.mcp_helpers import modern_headers, modern_rpc, post

    message = modern_rpc("tools/list")
    resp = await post(client, message, modern_headers(message))
    assert resp.status == 429 and (await resp.json())["error"]["code"] == -32029


async def test_per_key_override(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="100/minute"))
    slow = await create_key(client.admin, name="slow", rate_limit="1/minute")
    headers = {"X-API-Key": slow["key"]}
    assert (await client.anonymous.get("/api/mcp/tools", headers=headers)).status == 200
    assert (await client.anonymous.get("/api/mcp/tools", headers=headers)).status == 429
    assert (await client.get("/api/mcp/tools")).status == 200  # other keys are not affected


async def test_failed_auth_flood_is_throttled_per_ip(make_client, make_settings):
    client = await make_client(make_settings(auth_failure_limit="5/minute", trusted_proxies="127.0.0.1"))
    attacker = {"X-Forwarded-For": "198.51.100.7"}
    for _ in range(5):
        resp = await client.anonymous.get("/api/mcp/tools", headers={**attacker, "X-API-Key": generate_key()})
        assert resp.status == 401
    resp = await client.anonymous.get("/api/mcp/tools", headers={**attacker, "X-API-Key": generate_key()})
    assert resp.status == 429 and "Retry-After" in resp.headers
    assert resp.headers["RateLimit-Policy"] == '"auth-minute";q=5;w=60'
    # a valid key is never refused because of other requests from its address
    resp = await client.anonymous.get("/api/mcp/tools", headers={**attacker, "X-API-Key": client.api_key})
    assert resp.status == 200
    other = {"X-Forwarded-For": "192.0.2.55", "X-API-Key": generate_key()}
    assert (await client.anonymous.get("/api/mcp/tools", headers=other)).status == 401


async def test_the_failure_limit_is_exact_under_concurrency(make_client, make_settings):
    client = await make_client(make_settings(auth_failure_limit="20/minute"))
    answers = await asyncio.gather(
        *(client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": generate_key()}) for _ in range(64))
    )
    statuses = sorted(r.status for r in answers)
    assert statuses.count(401) == 20 and statuses.count(429) == 44
    assert (await client.get("/api/mcp/tools")).status == 200


async def test_requests_without_a_credential_have_their_own_limit(make_client, make_settings):
    client = await make_client(make_settings(auth_failure_limit="2/minute", unauthenticated_limit="4/minute"))
    statuses = [(await client.anonymous.get("/api/mcp/tools")).status for _ in range(6)]
    assert statuses == [401, 401, 401, 401, 429, 429]
    # keyless requests fed nothing into the wrong-credential budget
    assert (await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": generate_key()})).status == 401
    assert (await client.get("/api/mcp/tools")).status == 200


async def test_every_window_of_a_multi_window_limit_is_enforced_and_advertised(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="100/minute;3/hour"))
    for remaining in (2, 1, 0):
        resp = await client.get("/api/mcp/tools")
        assert resp.status == 200
        assert resp.headers["RateLimit-Policy"] == '"key-minute";q=100;w=60, "key-hour";q=3;w=3600'
        assert f'"key-hour";r={remaining};' in resp.headers["RateLimit"]
    resp = await client.get("/api/mcp/tools")
    assert resp.status == 429 and resp.headers["RateLimit"].startswith('"key-hour";r=0;')
    # The hour window decides: Retry-After is its reset (windows follow the monotonic clock, so
    # how far into its hour a run falls, and so the number itself, is the machine's uptime's).
    hour_reset = resp.headers["RateLimit"].split(",")[0].split(";t=")[1]
    assert resp.headers["Retry-After"] == hour_reset


async def test_a_refused_request_does_not_spend_the_other_windows(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="2/minute;5/hour"))
    assert [(await client.get("/api/mcp/tools")).status for _ in range(4)] == [200, 200, 429, 429]
    resp = await client.admin.get(f"/api/admin/keys/{client.key_id}")
    assert resp.status == 200
    limits = client.server.app[LIMITER]
    windows = limits.windows_for(Principal("key", client.key_id, "k"))
    now = await limits.counters.take("key", client.key_id, windows, 0)  # a look that takes nothing
    assert [s.remaining for s in now.states] == [0, 3]  # only the two admitted requests were charged


@pytest.mark.slow
async def test_limiter_memory_stays_flat_under_100k_bogus_keys(make_client, make_settings):
    client = await make_client(make_settings(auth_failure_limit="1000000/minute"))
    limits = client.server.app[LIMITER]
    authenticator = client.server.app[AUTHENTICATOR]
    for i in range(100_000):
        try:
            await authenticator.authenticate(f"skw_live_{i:050d}")
        except AuthFailure:
            await limits.count_failure("198.51.100.7")
    assert len(authenticator._cache) == 0
    assert len(limits.counters) == 1  # one address, one window: one entry, however many keys it tried


async def test_concurrent_calls_per_key_are_capped(make_client, make_settings, tmp_path):
    fake_distribution(tmp_path, "acme-waits", {"waits": "tests.support.plugin_samples:waits"})
    plugin_samples.SIGNALS.update(started=asyncio.Event(), cancelled=asyncio.Event())
    client = await make_client(make_settings(max_concurrent_calls="1"), registry=discover_tools(paths=[str(tmp_path)]))
    first = asyncio.create_task(client.post("/api/mcp/tools/waits", json={"text": "x"}))
    await asyncio.wait_for(plugin_samples.SIGNALS["started"].wait(), 10)
    resp = await client.post("/api/mcp/tools/waits", json={"text": "y"})
    assert resp.status == 429 and (await resp.json())["type"].endswith("rate-limited")
    first.cancel()
    await asyncio.wait_for(plugin_samples.SIGNALS["cancelled"].wait(), 10)


async def test_tool_cost_is_charged(make_client, make_settings, tmp_path):
    fake_distribution(tmp_path, "acme-costly", {"costly": "tests.support.plugin_samples:costly"})
    client = await make_client(make_settings(rate_limit="5/minute"), registry=discover_tools(paths=[str(tmp_path)]))
    assert (await client.post("/api/mcp/tools/costly", json={"text": "a"})).status == 200  # 1 + 2 units
    resp = await client.post("/api/mcp/tools/costly", json={"text": "b"})  # 1 more + 2 > 5
    assert resp.status == 429


async def test_admin_and_health_are_not_key_limited(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="1/minute"))
    for _ in range(3):
        assert (await client.anonymous.get("/api/health")).status == 200
        assert (await client.admin.get("/api/admin/keys")).status == 200


def test_secret_set_is_used():
    assert ADMIN_TOKEN in SECRETS and ADMIN_HEADERS


async def test_in_process_counters_forget_identities_whose_windows_passed():
    from limits import parse_many

    from skywarden.server.calls.counters import MemoryCounters

    now = [1000.0]
    counters = MemoryCounters(clock=lambda: now[0])
    counters.SWEEP_EVERY = 10
    minute = tuple(parse_many("5/minute"))
    for i in range(10):
        await counters.take("auth", f"198.51.100.{i}", minute, 1)
    now[0] += 180  # three minutes on: every one of those windows has passed
    for i in range(10):
        await counters.take("auth", f"203.0.113.{i}", minute, 1)
    assert len(counters) == 10  # the sweep dropped the first ten


async def test_in_process_and_redis_counters_agree_window_by_window():
    """The same sequence of charges gives the same answers from both (the Redis side in test_redis)."""
    from limits import parse_many

    from skywarden.server.calls.counters import MemoryCounters

    counters = MemoryCounters(clock=lambda: 1_000_000.0)  # the start of a minute bucket
    windows = tuple(parse_many("2/minute;5/hour"))
    outcomes = [await counters.take("key", "k1", windows, 1) for _ in range(4)]
    assert [o.refused for o in outcomes] == [None, None, windows[0], windows[0]]
    assert [s.remaining for s in outcomes[-1].states] == [0, 3]
    over = await counters.take("key", "k2", windows, 3)
    assert over.refused is windows[0] and [s.remaining for s in over.states] == [2, 5]


class _Switchable:
    """Shared counters that can be made unreachable, as Redis is when it goes away."""

    def __init__(self, counters) -> None:
        self.counters = counters
        self.up = True

    async def take(self, scope, identity, windows, cost):
        from skywarden.server.calls.counters import CountersUnavailable

        if not self.up:
            raise CountersUnavailable("ConnectionError")
        return await self.counters.take(scope, identity, windows, cost)

    async def reachable(self) -> bool:
        return self.up


EVENTS = st.lists(
    st.tuples(st.sampled_from(["failure", "anonymous", "key"]), st.integers(0, 2), st.booleans()), max_size=60
)


@settings(max_examples=150, deadline=None)
@given(events=EVENTS, fail_open=st.booleans())
async def test_refusal_limits_never_lapse_whatever_the_shared_counters_do(events, fail_open):
    """Any interleaving of wrong credentials, missing ones and key charges from a few addresses,
    with the shared counters coming and going: a refusal passes only while both its shared count
    (when it answers) and its count in this process are under budget, so an outage adds no budget
    and the shared count is never undercut; per-key limits follow ``fail_open``."""
    from limits import parse_many

    from skywarden.server.calls.counters import MemoryCounters
    from skywarden.server.calls.ratelimit import RateLimited, RateLimits
    from skywarden.server.errors import LIMITER_UNAVAILABLE, ApiError

    clock = lambda: 1_000_000.0  # noqa: E731 - one instant: nothing leaves a window
    shared = _Switchable(MemoryCounters(clock=clock))
    limits = RateLimits(
        default=tuple(parse_many("4/minute")),
        auth_failures=tuple(parse_many("3/minute")),
        unauthenticated=tuple(parse_many("2/minute")),
        counters=shared,
        fail_open=fail_open,
        local=MemoryCounters(clock=clock),
    )
    budget = {"failure": 3, "anonymous": 2, "key": 4}
    shared_spent: dict[tuple[str, str], int] = {}
    local_spent: dict[tuple[str, str], int] = {}
    principal = Principal(kind="key", id="k1", name="k")
    for kind, address, up in events:
        shared.up = up
        ip = f"198.51.100.{address}"
        where = (kind, ip if kind != "key" else "k1")
        try:
            if kind == "failure":
                await limits.count_failure(ip)
            elif kind == "anonymous":
                await limits.count_unauthenticated(ip)
            else:
                await limits.charge(principal)
            outcome = "passed"
        except RateLimited:
            outcome = "limited"
        except ApiError as exc:
            assert exc.kind is LIMITER_UNAVAILABLE
            outcome = "unavailable"
        if kind == "key":
            if not up:
                assert outcome == ("passed" if fail_open else "unavailable")
                continue
            used = shared_spent.get(where, 0)
            assert outcome == ("passed" if used < budget[kind] else "limited")
            shared_spent[where] = used + (outcome == "passed")
            continue
        shared_ok = not up or shared_spent.get(where, 0) < budget[kind]
        local_ok = local_spent.get(where, 0) < budget[kind]
        assert outcome == ("passed" if shared_ok and local_ok else "limited"), (kind, ip, up, shared_spent, local_spent)
        if up and shared_ok:
            shared_spent[where] = shared_spent.get(where, 0) + 1
        if shared_ok and local_ok:
            local_spent[where] = local_spent.get(where, 0) + 1


def test_the_cors_hook_is_asked_only_when_a_request_has_an_origin(make_settings):
    """aiohttp-cors's per-answer hook is wrapped; if a new aiohttp-cors registers it differently,
    this fails (and the CORS tests above say whether CORS still works)."""
    from aiohttp_cors.cors_config import _CorsConfigImpl

    from skywarden.server.app import create_app

    app = create_app(make_settings(cors_origins="https://app.example"))
    hooks = list(app.on_response_prepare)
    assert not [h for h in hooks if getattr(h, "__func__", None) is _CorsConfigImpl._on_response_prepare]
    assert any(h.__qualname__.startswith("_when_origin") for h in hooks)
