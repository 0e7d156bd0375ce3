"""``context.http``: each plugin's view of the one upstream pool. Any method, headers (``Secret``
values sent, never logged), bodies, query, timeouts; every answer's status returned; one place
refuses a malformed request; the SSRF guard on every call; answers cached apart per plugin and
per headers. Against real loopback HTTP servers."""

from __future__ import annotations

import asyncio
import ipaddress
import math
import socket
from collections.abc import Awaitable
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver, ResolveResult
from hypothesis import given
from hypothesis import strategies as st

from skywarden.server.plugins.http_client import FreshnessTracker, PluginHttp, Upstream
from skywarden.server.plugins.registry import ToolRegistry, register_tool
from skywarden.server.plugins.runtime import build_runtimes
from skywarden.server.plugins.ssrf import AddressPolicy, BlockedAddress, GuardedResolver, is_public
from skywarden.server.settings import SettingsError, load_settings
from skywarden.server.testing import Answer, fake_upstream, running_app
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolResult, text_content
from skywarden.tools.http import UpstreamError
from skywarden.tools.settings import Secret
from tests.support.logs import SECRETS, drain_logs
from tests.support.plugin_samples import echo

API_KEY = "acme-api-key-7f3a9c1e5b2d4086"
SECRETS.add(API_KEY)
CAP = 4096


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    peer: int


@dataclass
class Server:
    url: str
    port: int
    seen: list[Seen] = field(default_factory=list)
    release: asyncio.Event = field(default_factory=asyncio.Event)


@pytest.fixture
async def server(aiohttp_server) -> Server:
    """A loopback upstream that echoes what it was sent, and answers in every other way asked."""
    found = Server("", 0)

    async def record(request: web.Request) -> None:
        peer = request.transport.get_extra_info("peername") if request.transport else None
        found.seen.append(
            Seen(request.method, request.path_qs, dict(request.headers), await request.read(), peer[1] if peer else 0)
        )

    async def echo_request(request: web.Request) -> web.Response:
        await record(request)
        seen = found.seen[-1]
        answer = {"method": seen.method, "path": seen.path, "body": seen.body.decode("latin-1")}
        return web.json_response(answer, headers={"Cache-Control": "max-age=60", "X-Echo": "yes"})

    async def status(request: web.Request) -> web.Response:
        await record(request)
        code = int(request.match_info["code"])
        if code == 204:
            return web.Response(status=204)
        headers = {"Location": "/echo"} if 300 <= code < 400 else {}
        return web.json_response({"title": f"status {code}"}, status=code, headers=headers)

    async def hang(request: web.Request) -> web.Response:
        await record(request)
        await found.release.wait()
        return web.json_response({})

    async def big(request: web.Request) -> web.StreamResponse:
        await record(request)
        if request.query.get("chunked"):
            response = web.StreamResponse(headers={"Content-Type": "application/json"})
            response.enable_chunked_encoding()
            await response.prepare(request)
            for _ in range(CAP // 1024 + 2):
                await response.write(b" " * 1024)
            await response.write_eof()
            return response
        return web.json_response({"x": "a" * CAP})

    async def text(request: web.Request) -> web.Response:
        await record(request)
        return web.Response(text="plain words", headers={"Cache-Control": "max-age=60"})

    async def cookie(request: web.Request) -> web.Response:
        await record(request)
        answer = web.json_response({})
        answer.set_cookie("who", request.query.get("who", ""), path="/")
        return answer

    app = web.Application()
    app.router.add_get("/cookie", cookie)
    app.router.add_route("*", "/echo", echo_request)
    app.router.add_route("*", "/echo/{tail:.*}", echo_request)
    app.router.add_route("*", "/status/{code}", status)
    app.router.add_get("/hang", hang)
    app.router.add_get("/big", big)
    app.router.add_get("/text", text)
    test_server = await aiohttp_server(app, host="127.0.0.1")
    found.url = str(test_server.make_url("")).rstrip("/")
    found.port = test_server.port
    yield found
    found.release.set()


@pytest.fixture
async def pool():
    up = Upstream("pool-agent", 5, CAP, TTLCache(64))
    await up.open()
    yield up
    await up.close()


def acme(pool: Upstream, server: Server, name: str = "acme", user_agent: str = "acme/1.0") -> PluginHttp:
    """A plugin whose operator configured the test server (its base URL setting)."""
    return pool.for_plugin(name, user_agent=user_agent, service="The Acme API", trusted_origins=[server.url + "/v1"])


# --- request(): methods, headers, bodies, query, statuses ------------------------------------


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "purge"])
async def test_request_sends_any_method(pool, server, method):
    answer = await acme(pool, server).request(method, server.url + "/echo")
    assert answer.status == 200 and server.seen[-1].method == method.upper()
    assert answer.body == b"" if method == "HEAD" else answer.json()["method"] == method.upper()


async def test_headers_go_out_with_secrets_revealed_and_the_plugins_user_agent(pool, server):
    headers = {"X-Api-Key": Secret(API_KEY), "Accept": "application/vnd.acme+json", "X-Trace": "t-1"}
    answer = await acme(pool, server).request("GET", server.url + "/echo", headers=headers)
    sent = server.seen[-1].headers
    assert sent["X-Api-Key"] == API_KEY and sent["Accept"] == "application/vnd.acme+json"
    assert sent["X-Trace"] == "t-1" and sent["User-Agent"] == "acme/1.0"
    assert answer.headers["X-Echo"] == "yes" and answer.headers["x-echo"] == "yes"  # any case
    assert answer.url == server.url + "/echo"


async def test_a_cookie_an_answer_sets_goes_with_no_later_request(pool, server):
    """The pool serves every caller of every plugin: a cookie set in one call's answer (by a
    name, as a jar would keep it) would go with the next caller's requests. None is kept; a
    Cookie header the plugin sends itself still goes."""
    named = server.url.replace("127.0.0.1", "localhost")
    plugin = pool.for_plugin("acme", user_agent="acme/1.0", service="The Acme API", trusted_origins=[named])
    await plugin.request("GET", named + "/cookie?who=first-caller")
    await plugin.request("GET", named + "/echo")
    await plugin.request("GET", named + "/echo", headers={"Cookie": "mine=1"})
    assert [seen.headers.get("Cookie") for seen in server.seen] == [None, None, "mine=1"]


async def test_a_plugin_may_set_its_user_agent_per_request(pool, server):
    await acme(pool, server).request("GET", server.url + "/echo", headers={"user-agent": "acme-batch/2"})
    assert server.seen[-1].headers["User-Agent"] == "acme-batch/2"


async def test_each_plugin_sends_its_own_user_agent_and_an_empty_one_is_the_pools(pool, server):
    await acme(pool, server, "first", "first/1").get_json(server.url + "/echo")
    await acme(pool, server, "second", "second/2").get_json(server.url + "/echo")
    await acme(pool, server, "third", "").get_json(server.url + "/echo")
    assert [seen.headers["User-Agent"] for seen in server.seen] == ["first/1", "second/2", "pool-agent"]


@pytest.mark.parametrize(
    ("body", "content_type", "sent"),
    [
        ({"json": {"name": "thing", "size": 3}}, "application/json", b'{"name":"thing","size":3}'),
        ({"json": [1, "two", None]}, "application/json", b'[1,"two",null]'),
        ({"data": "caf\u00e9"}, "text/plain; charset=utf-8", "caf\u00e9".encode()),
        ({"data": b"\x00\xff raw"}, "application/octet-stream", b"\x00\xff raw"),
        ({"data": b"<x/>", "headers": {"Content-Type": "application/xml"}}, "application/xml", b"<x/>"),
    ],
)
async def test_a_json_or_raw_body_is_sent_with_its_content_type(pool, server, body, content_type, sent):
    await acme(pool, server).request("POST", server.url + "/echo", **body)
    assert server.seen[-1].body == sent and server.seen[-1].headers["Content-Type"] == content_type


async def test_query_parameters_join_the_urls_own_and_may_be_secret(pool, server):
    answer = await acme(pool, server).request(
        "GET", server.url + "/echo?a=1", params={"q": "two words", "appid": Secret(API_KEY)}
    )
    assert answer.json()["path"] == f"/echo?a=1&q=two+words&appid={API_KEY}"
    assert answer.url == server.url + "/echo?a=1"  # as given: the secret stays out of it


@pytest.mark.parametrize("code", [201, 204, 302, 400, 404, 429, 500, 503])
async def test_every_status_is_returned_and_redirects_are_not_followed(pool, server, code):
    answer = await acme(pool, server).request("DELETE", f"{server.url}/status/{code}")
    assert answer.status == code and len(server.seen) == 1
    if code == 302:
        assert answer.headers["Location"] == "/echo"
    if code >= 400:
        assert answer.json() == {"title": f"status {code}"}


async def test_an_answer_that_is_not_json_says_so_when_read_as_json(pool, server):
    answer = await acme(pool, server).request("GET", server.url + "/text")
    assert answer.text() == "plain words"
    with pytest.raises(UpstreamError, match="not valid JSON") as caught:
        answer.json()
    assert caught.value.cause == "not_json"


async def test_request_is_never_cached_and_a_result_made_with_it_is_never_kept(pool, server):
    http = acme(pool, server)
    with FreshnessTracker() as freshness:
        for _ in range(2):
            await http.request("GET", server.url + "/echo")
    assert len(server.seen) == 2 and freshness.until == -math.inf and len(pool.cache) == 0


async def test_metrics_observe_every_request_with_its_label_and_outcome(server):
    observed = []
    up = Upstream("pool-agent", 5, CAP, TTLCache(8), observer=lambda label, _, failed: observed.append((label, failed)))
    await up.open()
    try:
        http = acme(up, server)
        await http.request("GET", server.url + "/echo")
        await http.request("GET", server.url + "/status/500", label="acme_status")
        await http.request("GET", server.url + "/status/404", service="Acme Search")
        with pytest.raises(UpstreamError):
            await http.request("GET", server.url + "/big")
        await http.get_json(server.url + "/echo")
    finally:
        await up.close()
    assert observed == [
        ("the_acme_api", False),
        ("acme_status", True),
        ("acme_search", False),
        ("the_acme_api", True),
        ("the_acme_api", False),
    ]


# --- timeouts, size cap, transport failures --------------------------------------------------


async def test_a_request_timeout_shortens_the_servers(pool, server):
    with pytest.raises(UpstreamError, match=r"The Acme API did not answer within 0\.2 seconds") as caught:
        await acme(pool, server).request("GET", server.url + "/hang", timeout=0.2)
    assert caught.value.cause == "TimeoutError"


async def test_a_request_timeout_never_lengthens_the_servers(server):
    up = Upstream("pool-agent", 0.2, CAP, TTLCache(8))
    await up.open()
    try:
        with pytest.raises(UpstreamError, match=r"within 0\.2 seconds") as caught:
            await acme(up, server).request("GET", server.url + "/hang", timeout=3600)
    finally:
        await up.close()
    assert caught.value.cause == "TimeoutError"


@pytest.mark.parametrize("path", ["/big", "/big?chunked=1"])
async def test_an_answer_over_the_size_cap_is_refused_by_both_methods(pool, server, path):
    http = acme(pool, server)
    with pytest.raises(UpstreamError, match=f"larger than {CAP} bytes") as caught:
        await http.request("GET", server.url + path)
    assert caught.value.cause == "too_large"
    with pytest.raises(UpstreamError, match=f"larger than {CAP} bytes"):
        await http.get_json(server.url + path)


async def test_a_head_answer_announcing_a_large_body_is_no_answer_over_the_cap(pool, server):
    answer = await acme(pool, server).request("HEAD", server.url + "/big")
    assert answer.status == 200 and answer.body == b"" and int(answer.headers["Content-Length"]) > CAP


async def test_an_upstream_that_is_down_is_a_transport_error(pool, server):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    http = pool.for_plugin("acme", user_agent="", service="The Acme API", trusted_origins=[f"http://127.0.0.1:{port}"])
    with pytest.raises(UpstreamError, match="The Acme API could not be reached") as caught:
        await http.request("POST", f"http://127.0.0.1:{port}/x", json={"a": 1})
    assert caught.value.cause == "ClientConnectorError" and caught.value.url == f"http://127.0.0.1:{port}/x"


async def test_a_pool_that_is_not_open_says_so(server):
    up = Upstream("pool-agent", 5, CAP, TTLCache(8))
    http = acme(up, server)
    for call in (lambda: http.request("GET", server.url + "/echo"), lambda: http.get_json(server.url + "/echo")):
        with pytest.raises(UpstreamError, match="the server is not started") as caught:
            await call()
        assert caught.value.cause == "not_started"


# --- malformed requests: one place refuses each, before anything is sent ----------------------

MALFORMED = {
    "a method with a space": ({"method": "GE T"}, "must be an HTTP method name"),
    "an empty method": ({"method": ""}, "must be an HTTP method name"),
    "a method with a line break": ({"method": "GET\r\nX-Injected: 1"}, "must be an HTTP method name"),
    "a method that is not text": ({"method": 5}, "must be an HTTP method name"),
    "CONNECT": ({"method": "connect"}, "CONNECT is not a method this client sends"),
    "CR LF in a header value": ({"headers": {"X-A": "1\r\nX-Injected: 2"}}, "line break or control character"),
    "LF in a Secret value": ({"headers": {"X-Api-Key": Secret(API_KEY + "\n")}}, "line break or control"),
    "NUL in a header value": ({"headers": {"X-A": "a\x00b"}}, "line break or control character"),
    "a header name with a colon": ({"headers": {"X-A: b": "c"}}, "is not a valid header name"),
    "a header name with a line break": ({"headers": {"X-A\r\nX-B": "c"}}, "is not a valid header name"),
    "an empty header name": ({"headers": {"": "c"}}, "is not a valid header name"),
    "a header value that is not text": ({"headers": {"X-Count": 5}}, "must be text or a Secret"),
    "headers that are not a mapping": ({"headers": [("X-A", "1")]}, "must be a mapping"),
    "a header given twice": ({"headers": {"X-A": "1", "x-a": "2"}}, "is given twice"),
    "Host": ({"headers": {"Host": "internal.example"}}, "is set by the client itself"),
    "Content-Length": ({"headers": {"Content-Length": "0"}, "data": b"GET /admin HTTP/1.1\r\n\r\n"}, "set by the"),
    "Transfer-Encoding": ({"headers": {"transfer-encoding": "chunked"}}, "is set by the client itself"),
    "JSON and data": ({"json": {"a": 1}, "data": b"x"}, "a JSON body or raw data, not both"),
    "JSON that cannot be encoded": ({"json": {"when": object()}}, "the JSON body cannot be encoded"),
    "NaN in JSON": ({"json": {"x": float("nan")}}, "the JSON body cannot be encoded"),
    "data that is neither bytes nor text": ({"data": 5}, "raw data must be bytes or text"),
    "a query value that is not text": ({"params": {"n": 5}}, "must be text"),
    "a zero timeout": ({"timeout": 0}, "positive number of seconds"),
    "a negative timeout": ({"timeout": -1}, "positive number of seconds"),
    "an infinite timeout": ({"timeout": math.inf}, "positive number of seconds"),
    "a timeout as text": ({"timeout": "5"}, "positive number of seconds"),
    "a timeout of True": ({"timeout": True}, "positive number of seconds"),
    "an ftp URL": ({"url": "ftp://127.0.0.1/x"}, "only http:// and https:// URLs"),
    "a file URL": ({"url": "file:///etc/passwd"}, "only http:// and https:// URLs"),
    "a relative URL": ({"url": "/echo"}, "only http:// and https:// URLs"),
    "a URL without a host": ({"url": "http:///echo"}, "only http:// and https:// URLs"),
    "a URL that is not text": ({"url": b"http://127.0.0.1/"}, "the URL must be text"),
    "a port out of range": ({"url": "http://127.0.0.1:99999/"}, "the URL does not parse"),
    "credentials in the URL": ({"url": "http://user:pw@127.0.0.1/echo"}, "carries credentials"),
    "a user name in the URL": ({"url": "http://trusted@127.0.0.1/echo"}, "carries credentials"),
}  # fmt: skip


@pytest.mark.parametrize("name", list(MALFORMED))
async def test_a_malformed_request_is_refused_clearly_and_nothing_is_sent(pool, server, name):
    given, says = MALFORMED[name]
    arguments = {"method": "POST", "url": server.url + "/echo", **given}
    with pytest.raises(UpstreamError) as caught:
        await acme(pool, server).request(arguments.pop("method"), arguments.pop("url"), **arguments)
    error = caught.value
    assert error.cause == "invalid_request" and says in str(error)
    assert str(error).startswith("The Acme API: the request was not sent: ")
    assert API_KEY not in str(error) and server.seen == []


@pytest.mark.parametrize(
    ("url", "headers", "says"),
    [
        ("{url}/echo", {"X-A": "1\r\n2"}, "line break or control character"),
        ("{url}/echo", {"Content-Length": "5"}, "set by the client itself"),
        ("gopher://127.0.0.1/", None, "only http:// and https:// URLs"),
        ("http://k:{key}@127.0.0.1/", None, "carries credentials"),
    ],
)
async def test_get_json_refuses_the_same_malformed_requests(pool, server, url, headers, says):
    with pytest.raises(UpstreamError, match=says) as caught:
        await acme(pool, server).get_json(url.format(url=server.url, key=API_KEY), headers=headers)
    assert caught.value.cause == "invalid_request" and server.seen == []
    assert API_KEY not in str(caught.value) and API_KEY not in str(caught.value.url)


# --- the cache of get_json --------------------------------------------------------------------


async def test_answers_are_cached_apart_for_each_plugin(pool, server):
    first, second = acme(pool, server, "first", "first/1"), acme(pool, server, "second", "second/2")
    for http in (first, second, first, second):
        assert (await http.get_json(server.url + "/echo"))["method"] == "GET"
    assert [seen.headers["User-Agent"] for seen in server.seen] == ["first/1", "second/2"]


async def test_answers_are_cached_apart_for_each_set_of_headers_whose_values_are_never_kept(pool, server):
    http = acme(pool, server)
    key, other = {"X-Api-Key": Secret(API_KEY)}, {"X-Api-Key": Secret("another-key")}
    await http.get_json(server.url + "/echo", headers=key)
    await http.get_json(server.url + "/echo", headers={"x-api-key": Secret(API_KEY)})  # same, any case
    await http.get_json(server.url + "/echo", headers=other)
    await http.get_json(server.url + "/echo")
    await http.get_json(server.url + "/echo", accept="application/geo+json", headers=key)
    assert [seen.headers.get("X-Api-Key") for seen in server.seen] == [API_KEY, "another-key", None, API_KEY]
    assert len(server.seen) == 4 and len(pool.cache) == 4
    kept = repr(list(pool.cache._data))
    assert API_KEY not in kept and "another-key" not in kept


async def test_a_plugins_derived_shape_is_its_own(pool, server):
    def method(document):
        return document["method"]

    first, second = acme(pool, server, "first"), acme(pool, server, "second")
    assert await first.get_json(server.url + "/echo", derive=method) == "GET"
    assert await first.get_json(server.url + "/echo", derive=method) == "GET"
    assert await second.get_json(server.url + "/echo", derive=method) == "GET"
    assert len(server.seen) == 2 and pool.cache.hits == 1


# --- the SSRF guard ---------------------------------------------------------------------------

FORBIDDEN = [
    "127.0.0.1", "127.255.255.254", "10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254", "169.254.0.1",
    "0.0.0.0", "0.1.2.3", "100.64.0.1", "192.0.0.8", "192.0.2.1", "198.18.0.1", "198.51.100.1", "203.0.113.1",
    "224.0.0.1", "239.255.255.250", "240.0.0.1", "255.255.255.255",
    "::1", "::", "fe80::1", "fe80::1%eth0", "fc00::1", "fd12:3456::1", "fec0::1", "ff02::1", "ff0e::1", "2001:db8::1",
    "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0:0", "::127.0.0.1", "::ffff:0.0.0.0",
    "64:ff9b::127.0.0.1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::1", "2002:7f00:1::1", "2002:a9fe:a9fe::1",
    "2001:0:4136:e378:8000:63bf:3fff:fdd2", "100::1", "3fff::1", "5f00::1", "192.88.99.1",
]  # fmt: skip
PUBLIC = ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::8.8.8.8", "2002:808:808::1"]


@pytest.mark.parametrize("address", FORBIDDEN)
def test_addresses_that_are_not_public_are_refused(address):
    assert not is_public(ipaddress.ip_address(address)) and not AddressPolicy().allows(address)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_pass_in_every_form(address):
    assert is_public(ipaddress.ip_address(address)) and AddressPolicy().allows(address)


def test_allowed_networks_open_their_addresses_in_every_form():
    policy = AddressPolicy(tuple(ipaddress.ip_network(n) for n in ("10.0.0.0/8", "fd00::/8")))
    assert policy.allows("10.1.2.3") and policy.allows("::ffff:10.1.2.3") and policy.allows("fd00::5")
    assert not policy.allows("192.168.1.1") and not policy.allows("::1") and not policy.allows("localhost")


async def refused(call: Awaitable[object]) -> None:
    with pytest.raises(UpstreamError, match=r"is not allowed \(private or local network\)") as caught:
        await call
    assert caught.value.cause == "blocked_address"


def _literal(address: str) -> str:
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize("address", [a for a in FORBIDDEN if "%" not in a])
async def test_a_forbidden_literal_address_is_refused_before_connecting(pool, server, address):
    http = pool.for_plugin("acme", user_agent="", service="The Acme API")
    url = f"http://{_literal(address)}:{server.port}/latest/meta-data?token={API_KEY}"
    for call in (lambda: http.get_json(url), lambda: http.request("POST", url, json={})):
        with pytest.raises(UpstreamError, match="is not allowed \\(private or local network\\)") as caught:
            await call()
        error = caught.value
        assert error.cause == "blocked_address" and str(error).startswith("The Acme API: the address of ")
        assert error.url.startswith("http://") and error.url.endswith(f":{server.port}/latest/meta-data")
        assert API_KEY not in str(error) and API_KEY not in (error.url or "")
    assert server.seen == []


async def test_a_name_that_resolves_to_loopback_is_refused(pool, server):
    http = acme(pool, server)
    url = f"http://localhost:{server.port}/echo"
    with pytest.raises(UpstreamError, match="the address of localhost is not allowed") as caught:
        await http.get_json(url)
    assert caught.value.cause == "blocked_address" and caught.value.url == url
    with pytest.raises(UpstreamError, match="the address of localhost is not allowed"):
        await http.request("PUT", url, data=b"x")
    assert server.seen == []


async def test_the_operators_origin_is_trusted_and_nothing_else_on_that_host(pool, server):
    http = pool.for_plugin(
        "acme", user_agent="", service="The Acme API", trusted_origins=[f"http://localhost:{server.port}/v1", 42, "x"]
    )
    assert (await http.request("GET", f"http://localhost:{server.port}/echo")).status == 200
    await refused(http.request("GET", f"http://127.0.0.1:{server.port}/echo"))
    await refused(http.request("GET", f"http://localhost:{server.port + 1}/echo"))
    await refused(http.request("GET", f"https://localhost:{server.port}/echo"))
    assert len(server.seen) == 1


async def test_a_connection_to_a_trusted_origin_is_no_way_in_for_another_plugin(pool, server):
    """One pool carries only what its plugins' operators configured; another plugin's request
    to that origin goes through the guarded pool, whatever connection the first left open."""
    for host in ("localhost", "127.0.0.1"):
        origin = f"http://{host}:{server.port}"
        trusting = pool.for_plugin("trusting", user_agent="", service="Trusting", trusted_origins=[origin])
        other = pool.for_plugin("other", user_agent="", service="Other")
        server.seen.clear()
        await trusting.request("GET", origin + "/echo")
        await refused(other.request("GET", origin + "/echo"))
        await refused(other.get_json(origin + "/echo/x"))
        await trusting.request("GET", origin + "/echo")
        assert [seen.headers["User-Agent"] for seen in server.seen] == ["pool-agent", "pool-agent"]
        assert server.seen[0].peer == server.seen[1].peer  # the connection stayed open all along


async def test_allowed_networks_let_every_plugin_reach_their_addresses(server):
    up = Upstream("pool-agent", 5, CAP, TTLCache(8), allowed_networks=("127.0.0.0/8", "::1"))
    await up.open()
    try:
        http = up.for_plugin("other", user_agent="", service="Other")
        assert (await http.request("GET", f"http://127.0.0.1:{server.port}/echo")).status == 200
        assert (await http.get_json(f"http://localhost:{server.port}/echo"))["method"] == "GET"
        await refused(http.request("GET", f"http://169.254.169.254:{server.port}/echo"))
    finally:
        await up.close()
    assert len(server.seen) == 2


class MappedResolver(AbstractResolver):
    """A name service of fixed answers (the seam under the guard)."""

    def __init__(self, names: dict[str, list[str]]) -> None:
        self.names = names
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        self.asked.append(host)
        if host not in self.names:
            raise OSError(f"{host} is not known")
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in self.names[host]
        ]

    async def close(self) -> None:
        return None


NAMES = {"api.acme.test": ["127.0.0.1"], "mixed.acme.test": ["93.184.216.34", "10.0.0.7", "::ffff:127.0.0.1"]}


async def test_the_addresses_connected_to_are_the_ones_checked(server):
    """A name checked in the resolver cannot point elsewhere when connected to (DNS rebinding)."""
    resolver = MappedResolver(NAMES)
    for allowed, reached in (((), False), (("127.0.0.1",), True)):
        up = Upstream("pool-agent", 5, CAP, TTLCache(8), allowed_networks=allowed, resolver=lambda: resolver)
        await up.open()
        try:
            call = up.for_plugin("other", user_agent="", service="Other").request(
                "GET", f"http://api.acme.test:{server.port}/echo"
            )
            if reached:
                assert (await call).status == 200
            else:
                with pytest.raises(UpstreamError, match=r"the address of api\.acme\.test is not allowed"):
                    await call
        finally:
            await up.close()
    assert len(server.seen) == 1 and resolver.asked == ["api.acme.test", "api.acme.test"]


async def test_the_guarded_resolver_keeps_only_allowed_addresses():
    guarded = GuardedResolver(AddressPolicy(), MappedResolver(NAMES))
    assert [result["host"] for result in await guarded.resolve("mixed.acme.test", 443)] == ["93.184.216.34"]
    with pytest.raises(BlockedAddress) as caught:
        await guarded.resolve("api.acme.test", 443)
    assert caught.value.host == "api.acme.test" and not isinstance(caught.value, OSError)


async def test_class_form_tools_trust_the_urls_of_their_settings_group(pool):
    registry = ToolRegistry([register_tool(_Acme(), "t")])
    settings = load_settings(
        cli={"tool_settings": {"acme": {"base_url": "http://10.0.0.5:8080/api", "colour": "blue"}}}, environ={}
    )
    (runtime,) = build_runtimes(registry, settings, pool).values()
    assert isinstance(runtime.http, PluginHttp)
    assert runtime.http.trusts(_url("http://10.0.0.5:8080/api/things"))
    assert not runtime.http.trusts(_url("http://10.0.0.5:8081/")) and not runtime.http.trusts(_url("http://blue/"))


def _url(text: str):
    from yarl import URL

    return URL(text)


class _Acme:
    name = "acme_lookup"
    description = "Looks a thing up at Acme"
    settings_group = "acme"
    Arguments = echo.Arguments

    async def call(self, arguments, context):
        return ToolResult(content=[text_content("ok")])


# --- the setting ------------------------------------------------------------------------------


def test_upstream_allowed_networks_is_checked_at_start_up():
    settings = load_settings(cli={"upstream_allowed_networks": "10.0.0.0/8, 192.168.1.5,fd00::/8"}, environ={})
    assert settings.upstream_allowed_networks == ("10.0.0.0/8", "192.168.1.5", "fd00::/8")
    assert load_settings(cli={}, environ={}).upstream_allowed_networks == ()
    with pytest.raises(SettingsError, match=r"invalid setting upstream_allowed_networks .*'intranet' is not an IP"):
        load_settings(cli={}, environ={"SKYWARDEN_UPSTREAM_ALLOWED_NETWORKS": "10.0.0.0/8,intranet"})


# --- through the app: running_app, fake_upstream, logs ------------------------------------------


class _Poster:
    """A class-form tool that posts to its configured upstream with a secret key."""

    name = "acme_post"
    description = "Posts a thing to Acme"
    settings_group = "acme"
    Arguments = echo.Arguments

    async def call(self, arguments, context):
        target = arguments["text"]
        url = target if "://" in target else f"{context.settings['base_url']}{target}"
        answer = await context.http.request(
            "POST", url, headers={"X-Api-Key": Secret(API_KEY)}, json={"name": "thing"}, timeout=0.5
        )
        return ToolResult(content=[text_content(f"{answer.status} {answer.text()}")])


async def test_a_plugin_posts_to_its_fake_upstream_with_a_secret_that_no_log_line_holds():
    routes = {
        "POST /things": Answer({"id": 1}, status=201),
        "POST /broken": Answer({"title": "Broken"}, status=500),
        "POST /big": Answer(b"x" * 5000, content_type="text/plain"),
    }
    before = len(drain_logs())
    async with fake_upstream(routes) as upstream:
        async with running_app(
            tools=[_Poster()], tool_settings={"acme": {"base_url": upstream.url}}, upstream_max_bytes="2048"
        ) as app:
            key = await app.create_key(scopes=["acme_post"])
            SECRETS.add(key)
            status, body = await app.call_tool("acme_post", {"text": "/things"}, key)
            assert status == 200 and body["content"][0]["text"] == '201 {"id": 1}'
            status, body = await app.call_tool("acme_post", {"text": "/broken"}, key)
            assert body["content"][0]["text"].startswith("500 ") and not body["isError"]
            status, body = await app.call_tool("acme_post", {"text": "/big"}, key)
            assert body["isError"] and "larger than 2048 bytes" in body["content"][0]["text"]
            port = upstream.url.rsplit(":", 1)[1]
            status, body = await app.call_tool("acme_post", {"text": f"http://localhost:{port}/things"}, key)
            assert body["isError"] and "the address of localhost is not allowed" in body["content"][0]["text"]
    seen = upstream.requests
    assert [(r.method, r.path) for r in seen] == [("POST", "/things"), ("POST", "/broken"), ("POST", "/big")]
    assert seen[0].json() == {"name": "thing"} and seen[0].headers["X-Api-Key"] == API_KEY
    assert [path for path, _ in seen] == ["/things", "/broken", "/big"]  # the first form still unpacks
    lines = [line for line in drain_logs()[before:] if line.get("tool") == "acme_post"]
    failed = [line for line in lines if line.get("event") == "tool call failed"]
    assert [line["cause"] for line in failed] == ["too_large", "blocked_address"]
    assert failed[1]["upstream"] == f"http://localhost:{port}/things"
    assert all(API_KEY not in str(line) for line in drain_logs())


async def test_running_app_reaches_a_loopback_upstream_outside_the_settings_when_allowed():
    async with fake_upstream({"POST /things": {"id": 2}}) as upstream:
        for allowed, status in (("", None), ("127.0.0.1", 200)):
            async with running_app(
                tools=[_Poster()], tool_settings={"acme": {"base_url": "https://acme.test"}},
                upstream_allowed_networks=allowed,
            ) as app:  # fmt: skip
                key = await app.create_key(scopes=["acme_post"])
                SECRETS.add(key)
                _, body = await app.call_tool("acme_post", {"text": upstream.url + "/things"}, key)
                text = body["content"][0]["text"]
                assert text == '200 {"id": 2}' if status else "is not allowed" in text
    assert len(upstream.requests) == 1


@given(st.ip_addresses(v=4))
def test_an_ipv4_address_is_judged_alike_in_every_ipv6_form_that_carries_it(address):
    public = is_public(address)
    packed = int(address)
    for form in (
        ipaddress.IPv6Address(0xFFFF_0000_0000 | packed),  # IPv4-mapped
        ipaddress.IPv6Address((0x64_FF9B << 96) | packed),  # NAT64
        ipaddress.IPv6Address((0x2002 << 112) | (packed << 80) | 1),  # 6to4
    ):
        assert is_public(form) == public, form
    assert AddressPolicy().allows(f"::ffff:{address}") == public


async def test_a_scoped_link_local_literal_is_refused(pool):
    http = pool.for_plugin("acme", user_agent="", service="The Acme API")
    await refused(http.request("GET", "http://[fe80::1%25eth0]:8080/"))
