"""Calls to a Streamable HTTP upstream on Skywarden's direct path (server/gateway/http_calls.py),
against a hand-written upstream that answers in every form (tests/support/raw_http_upstream.py):
JSON and event streams, answers over the bound, refusals the SDK then handles, broken answers.
Each answer is a clear tool error or the upstream's own; nothing of the upstream's internals or
the caller's credential goes where it should not."""

from __future__ import annotations

import asyncio
import ssl
from types import SimpleNamespace

import httpx2
import pytest
import trustme
from aiohttp import web
from hypothesis import given, settings
from hypothesis import strategies as st
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from skywarden.server.appkeys import GATEWAY
from skywarden.server.gateway.direct import CallBroken, TooLarge
from skywarden.server.gateway.http_calls import MAX_ANSWERS_IN_FLIGHT, HttpCalls, PinnedResolver, _events
from skywarden.server.upstreams import UpstreamConfig
from tests.support.admin import create_key
from tests.support.logs import drain_logs
from tests.support.raw_http_upstream import RawHttpUpstream
from tests.support.served import served

pytestmark = pytest.mark.slow


@pytest.fixture
async def upstream(request):
    raw = RawHttpUpstream(modern=getattr(request, "param", False))
    async with served(raw.app()) as port:
        raw.url = f"http://127.0.0.1:{port}/mcp"
        yield raw
        raw.released.set()


@pytest.fixture
async def client(request, upstream, make_client, make_settings):
    """A server with the raw upstream; its calls' time-out is generous unless a test gives one
    (``indirect``): a slow machine must not turn an answer into a time-out."""
    timeout = getattr(request, "param", 60)
    options = {"url": upstream.url, "allow_private": True, "identity": True, "timeout": timeout}
    client = await make_client(make_settings(upstreams={"raw": options}))
    client.connection = client.server.app[GATEWAY].connections["raw"]
    await asyncio.wait_for(client.connection.wait_for("up"), 30)
    return client


async def call(client, tool: str, arguments: dict | None = None, headers: dict | None = None) -> dict:
    response = await client.post(f"/api/mcp/tools/raw__{tool}", json=arguments or {}, headers=headers or {})
    assert response.status == 200
    return await response.json()


def calls_seen(upstream: RawHttpUpstream, tool: str) -> list[dict]:
    return [
        r["message"]
        for r in upstream.requests
        if r["message"].get("method") == "tools/call" and r["message"]["params"]["name"] == tool
    ]


async def test_a_call_goes_on_the_direct_path_with_the_sdks_session(client, upstream):
    body = await call(client, "echo", {"text": "hello"})
    assert body == {"content": [{"type": "text", "text": "hello"}], "isError": False}
    (sent,) = calls_seen(upstream, "echo")
    assert isinstance(sent["id"], str)  # Skywarden's id: not through the SDK's session
    request = next(r for r in upstream.requests if r["message"] is sent)
    assert request["headers"]["mcp-session-id"] == upstream.session
    assert request["headers"]["mcp-protocol-version"] == "2025-06-18"


async def test_an_answer_streamed_as_events_comes_back_with_its_progress(client):
    seen = []

    async def on_progress(progress, total, message):
        seen.append((progress, total, message))

    async with httpx2.AsyncClient(headers={"X-API-Key": client.api_key}) as http:
        transport = streamable_http_client(str(client.make_url("/mcp")), http_client=http)
        async with Client(transport, mode="legacy") as mcp:
            result = await mcp.call_tool("raw__sse", {}, progress_callback=on_progress)
    assert result.content[0].text == "streamed"
    assert seen == [(1.0, 2.0, "half")]


async def test_what_else_a_calls_stream_carries_is_handled_as_the_sdk_would(client, upstream):
    assert (await call(client, "sse"))["content"][0]["text"] == "streamed"
    await asyncio.wait_for(upstream.answered.wait(), 30)  # the upstream's ping, answered
    (pong,) = [r for r in upstream.requests if r["message"].get("id") == "server-1"]
    assert pong["message"] == {"jsonrpc": "2.0", "id": "server-1", "result": {}}
    assert pong["headers"]["mcp-session-id"] == upstream.session
    await asyncio.wait_for(upstream.relisted.wait(), 30)  # its change of tools, heard


async def test_a_call_the_upstream_refuses_is_its_answer_and_is_made_once(client, upstream):
    body = await call(client, "busy")
    assert body == {
        "content": [{"type": "text", "text": "The upstream raw refused the call: HTTP 429 Too Many Requests"}],
        "isError": True,
    }
    assert [type(m["id"]) for m in calls_seen(upstream, "busy")] == [str]
    assert client.connection.figures.errors == 0 and client.connection.figures.state == "up"


@pytest.mark.parametrize("tool", ["huge", "huge_event"])
async def test_an_answer_over_the_bound_is_refused_unread_and_the_connection_stays(client, tool):
    body = await call(client, tool, {"size": 5 * 1024 * 1024})
    assert body["isError"] is True
    assert body["content"][0]["text"] == "The upstream raw answered with more than its limit of 1048576 bytes."
    assert (await call(client, "echo", {"text": "still"}))["content"][0]["text"] == "still"
    assert client.connection.figures.connects == 1


@pytest.mark.parametrize(
    ("upstream", "tool", "text"),
    [
        (False, "refuse_direct", "made through the SDK"),
        (True, "refuse_direct", "made through the SDK"),
        (True, "mismatch", "relisted and made through the SDK"),
    ],
    indirect=["upstream"],
)
async def test_a_call_the_upstream_refuses_in_this_form_is_made_through_the_sdk(client, upstream, tool, text):
    body = await call(client, tool)
    assert body["content"][0]["text"] == text and body["isError"] is False
    ids = [type(m["id"]) for m in calls_seen(upstream, tool)]
    assert ids == [str, int]  # once directly, refused before it ran; then once through the SDK


async def test_the_2026_header_mismatch_code_means_nothing_before_2026_and_the_call_is_made_once(client, upstream):
    body = await call(client, "mismatch")
    assert body["content"][0]["text"] == "The upstream raw refused the call: header mismatch"
    assert [type(m["id"]) for m in calls_seen(upstream, "mismatch")] == [str]


@pytest.mark.parametrize("upstream", [True], indirect=True)
async def test_a_call_at_2026_goes_on_the_direct_path_without_a_session(client, upstream):
    body = await call(client, "echo", {"text": "modern"})
    assert body["content"][0]["text"] == "modern"
    (sent,) = calls_seen(upstream, "echo")
    request = next(r for r in upstream.requests if r["message"] is sent)
    assert isinstance(sent["id"], str) and "mcp-session-id" not in request["headers"]
    assert request["headers"]["mcp-protocol-version"] == "2026-07-28"


FAILED = "The upstream raw failed during the call; the error was logged."
UNUSABLE = "The upstream raw answered with something Skywarden cannot pass on (Unusable); the error was logged."


@pytest.mark.parametrize(
    ("tool", "text"),
    [
        ("gone", FAILED),
        ("boom", FAILED),
        ("silent", FAILED),
        ("plain", UNUSABLE),
        ("gzip", UNUSABLE),
        ("bad_result", UNUSABLE),
        ("refused", "The upstream raw refused the call: the upstream says no"),
    ],
)
async def test_a_broken_answer_is_a_clear_tool_error(client, tool, text):
    body = await call(client, tool)
    assert body == {"content": [{"type": "text", "text": text}], "isError": True}
    assert (await call(client, "echo", {"text": "after"}))["isError"] is False


@pytest.mark.parametrize("client", [2], indirect=True)
async def test_a_call_past_its_timeout_is_cancelled_upstream(client, upstream):
    body = await call(client, "slow")
    assert body["content"][0]["text"] == "The upstream raw did not answer within 2 s."
    await asyncio.wait_for(upstream.cancelled.wait(), 30)
    (sent,) = calls_seen(upstream, "slow")
    note = next(r["message"] for r in upstream.requests if r["message"].get("method") == "notifications/cancelled")
    assert note["params"]["requestId"] == sent["id"]


@pytest.mark.parametrize("client", [2], indirect=True)
async def test_a_cancellation_redirected_elsewhere_is_not_followed(client, upstream):
    await call(client, "slow")
    await asyncio.wait_for(upstream.cancelled.wait(), 30)
    await asyncio.gather(*client.connection._calls._notes)
    assert upstream.redirected == []  # the upstream's credential and the caller's name went nowhere else


async def test_the_upstream_sees_its_identity_header_and_never_the_callers(client):
    spoof = {"Skywarden-Caller": "key:someone-else", "Cookie": "session=the-callers"}
    body = await call(client, "headers", headers=spoof)
    seen = {name.lower(): value for name, value in body["structuredContent"].items()}
    assert seen["skywarden-caller"] == f"key:{client.key_id}"
    assert "cookie" not in seen and "x-api-key" not in seen
    assert client.api_key not in str(body)
    assert seen["accept-encoding"] == "identity"  # a bound on compressed bytes would bound nothing


async def test_an_https_upstream_is_verified_by_name_on_the_address_checked(
    make_client, make_settings, tmp_path, monkeypatch
):
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    raw = RawHttpUpstream()
    async with served(raw.app(), context) as port:
        options = {"url": f"https://localhost:{port}/mcp", "connect_timeout": 5}
        settings = make_settings(upstreams={"raw": options}, upstream_allowed_networks="127.0.0.0/8")
        untrusted = await make_client(settings)
        connection = untrusted.server.app[GATEWAY].connections["raw"]
        await asyncio.wait_for(connection.first_attempt.wait(), 30)
        assert connection.figures.state == "down" and "CERTIFICATE_VERIFY_FAILED" in connection.figures.last_error

        direct = HttpCalls(
            UpstreamConfig(name="raw", transport="streamable-http", url=options["url"]), {}, "127.0.0.1", 1 << 20
        )
        stamps = SimpleNamespace(session=SimpleNamespace(_stamp=lambda data, options: None))
        try:
            with pytest.raises(CallBroken, match="CERTIFICATE_VERIFY_FAILED"):  # its own path trusts alike
                await direct.call(stamps, "echo", {}, None, None)
        finally:
            await direct.aclose()

        ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
        monkeypatch.setenv("SSL_CERT_FILE", str(tmp_path / "ca.pem"))  # the trust both of its clients take
        client = await make_client(settings)
        await asyncio.wait_for(client.server.app[GATEWAY].connections["raw"].wait_for("up"), 30)
        assert (await call(client, "echo", {"text": "over TLS"}))["content"][0]["text"] == "over TLS"
        (sent,) = calls_seen(raw, "echo")
        assert isinstance(sent["id"], str)


async def test_a_listing_over_the_bound_is_given_up_as_it_arrives(make_client, make_settings):
    raw = RawHttpUpstream(listing_padding=5 * 1024 * 1024)
    async with served(raw.app()) as port:
        try:
            options = {"url": f"http://127.0.0.1:{port}/mcp", "allow_private": True, "connect_timeout": 5}
            client = await make_client(make_settings(upstreams={"raw": options}))
            connection = client.server.app[GATEWAY].connections["raw"]
            await asyncio.wait_for(connection.first_attempt.wait(), 30)
            assert connection.figures.state == "down"
            assert "more than 4194304 bytes" in connection.figures.last_error
        finally:
            raw.released.set()


async def test_answers_to_an_upstreams_requests_in_flight_are_bounded_and_a_failing_handler_fails_no_call():
    held = asyncio.Event()

    async def hold(request: web.Request) -> web.Response:
        await held.wait()
        return web.Response(status=202)

    async def failing(notification) -> None:
        raise RuntimeError("the handler failed")

    app = web.Application()
    app.router.add_post("/mcp", hold)
    async with served(app) as port:
        config = UpstreamConfig(name="raw", transport="streamable-http", url=f"http://127.0.0.1:{port}/mcp")
        direct = HttpCalls(config, {}, None, 1 << 20, failing)
        try:
            for number in range(100):
                await direct._from_upstream({"jsonrpc": "2.0", "id": f"s{number}", "method": "ping"}, True)
            assert len(direct._notes) == MAX_ANSWERS_IN_FLIGHT  # the rest of the flood got no answer
            await direct._from_upstream({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}, True)
        finally:
            held.set()
            await direct.aclose()


async def test_the_pinned_resolver_answers_for_its_host_only():
    resolver = PinnedResolver("mcp.example.com", "203.0.113.7")
    (found,) = await resolver.resolve("mcp.example.com", 443)
    assert (found["host"], found["hostname"], found["port"]) == ("203.0.113.7", "mcp.example.com", 443)
    with pytest.raises(OSError):
        await resolver.resolve("elsewhere.example", 443)


class Chunks:
    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = chunks

    async def iter_any(self):
        for chunk in self.chunks:
            yield chunk


async def read_events(chunks: list[bytes], limit: int = 1000) -> list[bytes]:
    return [event async for event in _events(Chunks(chunks), limit)]


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


LINE = st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b)
EVENT_DATA = st.lists(LINE, min_size=1, max_size=3)
LINE_END = st.sampled_from([b"\n", b"\r\n", b"\r"])


@settings(max_examples=300, deadline=None)
@given(st.lists(EVENT_DATA, max_size=5), st.lists(st.integers(min_value=0), max_size=8), st.data())
def test_events_are_read_the_same_however_the_stream_is_cut_and_its_lines_end(events, cuts, data):
    ends: list[bytes] = []

    def end() -> bytes:  # each line ends as it may in SSE: LF, CRLF or a bare CR
        drawn = data.draw(LINE_END)
        if drawn == b"\n" and ends and ends[-1] == b"\r":
            drawn = b"\r\n"  # CR then LF is one line end, CRLF: the next line ends with its own
        ends.append(drawn)
        return drawn

    stream = b"".join(
        b"event: message" + end() + b"".join(b"data: " + line + end() for line in lines) + end() for lines in events
    )
    expected = [b"\n".join(lines) for lines in events if any(lines)]
    assert asyncio.run(read_events(split(stream, cuts))) == expected


def test_an_event_over_the_bound_is_refused_before_it_is_whole():
    with pytest.raises(TooLarge):
        asyncio.run(read_events([b"data: " + b"x" * 600 + b"\n", b"data: " + b"x" * 600 + b"\n\n"]))
    with pytest.raises(TooLarge):  # one line with no end, however it arrives
        asyncio.run(read_events([b"data: " + b"x" * 1000] * 3))


async def test_an_answer_in_a_content_coding_is_refused_unread_on_either_path(client):
    """Skywarden asks for identity: a bound on compressed bytes bounds nothing (1 KB of gzip can
    be 1 GB). The direct path's answer (aiohttp) here, the SDK's (httpx) below."""
    await call(client, "gzip")
    refused = [e for e in drain_logs() if e.get("event") == "upstream answer not passed on"]
    assert "an answer in the content coding 'gzip'" in refused[-1]["error"]


@pytest.mark.parametrize("kind", ["application/json", "text/event-stream"])
async def test_the_sdks_requests_ask_for_identity_and_refuse_any_other_coding(kind):
    import httpx2

    from skywarden.server.gateway.bounded_bodies import BoundedBodies

    asked = []

    def answer(request: httpx2.Request) -> httpx2.Response:
        asked.append(request.headers.get("accept-encoding"))
        return httpx2.Response(200, headers={"Content-Type": kind, "Content-Encoding": "gzip"}, content=b"\x1f\x8b")

    async with httpx2.AsyncClient(transport=BoundedBodies(httpx2.MockTransport(answer), 1000)) as http:
        with pytest.raises(httpx2.ReadError, match="content coding 'gzip'"):
            await http.get("http://upstream.test/mcp")
    assert asked == ["identity"]


@pytest.mark.parametrize("via_sdk", [False, True], ids=["direct", "through the SDK"])
async def test_a_cookie_one_caller_is_given_never_goes_with_another_callers_calls(
    via_sdk, upstream, make_client, make_settings, aiohttp_client
):
    """One connection serves every key: a cookie the upstream sets in a call's answer (here by
    name, so not an IP address, whose cookies no jar keeps) would go with every later request of
    the connection, whoever makes it. None is kept, on either client of the connection."""
    url = upstream.url.replace("127.0.0.1", "localhost")
    first = await make_client(make_settings(upstreams={"raw": {"url": url, "allow_private": True}}))
    await asyncio.wait_for(first.server.app[GATEWAY].connections["raw"].wait_for("up"), 30)
    other = await create_key(first.admin, scopes=["*"])
    second = await aiohttp_client(first.server, headers={"X-API-Key": other["key"]})
    answer = await call(first, "cookie", {"text": "first-caller", "sdk": via_sdk})
    assert answer["content"][0]["text"] == "cookie set"
    since = len(upstream.requests)
    await call(second, "echo", {"text": "mine"})
    await call(second, "refuse_direct")
    later = upstream.requests[since:]
    assert {type(r["message"].get("id")) for r in later if r["message"].get("method") == "tools/call"} == {str, int}
    assert [r["headers"]["cookie"] for r in later if "cookie" in r["headers"]] == []


async def test_behind_a_redirect_every_request_keeps_the_configured_cookie_and_the_callers_name(
    upstream, make_client, make_settings
):
    """The SDK follows a redirect within the origin (the direct path refuses it and leaves the
    call to the SDK). httpx drops a ``Cookie`` header on a redirect, and the identity hook could
    not read the redirected request's body: neither may be lost on the way."""
    options = {"url": upstream.url.replace("/mcp", "/moved"), "allow_private": True, "identity": True}
    options["headers"] = {"Cookie": "operator=1"}
    client = await make_client(make_settings(upstreams={"raw": options}))
    await asyncio.wait_for(client.server.app[GATEWAY].connections["raw"].wait_for("up"), 30)
    assert (await call(client, "echo", {"text": "moved"}))["content"][0]["text"] == "moved"
    assert {r["headers"].get("cookie") for r in upstream.requests} == {"operator=1"}
    (through_sdk,) = [r for r in upstream.requests if r["message"].get("method") == "tools/call"]
    assert through_sdk["headers"]["skywarden-caller"] == f"key:{client.key_id}"
