"""Change streams on the wire, case by case: a handshake session's GET stream and a 2026-07-28
``subscriptions/listen`` stream carry ``notifications/tools/list_changed`` when the tools a key
may see change, and nothing else; each bounded, ended on revocation, session end and shutdown."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from datetime import UTC, datetime

import aiohttp
import pytest

from skywarden.server.appkeys import AUTHENTICATOR, GATEWAY, REGISTRY, STREAMS
from skywarden.server.errors import ApiError
from skywarden.server.mcp import streams as streams_module
from skywarden.server.plugins.model import PluginInfo
from skywarden.server.principal import Principal
from tests.support.admin import create_key
from tests.support.logs import SECRETS
from tests.support.mcp_helpers import ACCEPT_BOTH, modern_headers, modern_rpc, open_session, post, session_headers
from tests.support.services import redis_prefix

SSE = {"Accept": "text/event-stream"}
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"
LIST_CHANGED = {"jsonrpc": "2.0", "method": "notifications/tools/list_changed"}


def announce(app, *names: str, scopes: tuple[str, ...] = ()) -> None:
    """Tools of an upstream named ``test`` appear (or go: no names), as a listing makes them."""
    source = app[REGISTRY].get("get_alerts")
    tools = [dataclasses.replace(source, name=name, scopes=scopes) for name in names]
    app[REGISTRY].replace_plugin(PluginInfo("upstream:test", "upstream:test", "test"), tools)
    app[GATEWAY].changed()


def closed(request_id) -> dict:
    """The last frame of a listen stream the server ended: its result."""
    return {
        "jsonrpc": "2.0",
        "id": request_id,
        "result": {"_meta": {SUBSCRIPTION_ID: request_id}, "resultType": "complete"},
    }


async def next_frame(resp) -> dict:
    """The next SSE event's JSON, past keep-alive comments."""
    while True:
        chunk = await resp.content.readuntil(b"\n\n")
        data = [line[6:] for line in chunk.decode().splitlines() if line.startswith("data: ")]
        if data:
            return json.loads("".join(data))


async def rest_of(resp) -> list[dict]:
    """Every event left until the stream ends."""
    text = (await resp.content.read()).decode()
    return [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: ")]


async def open_get(client, session: str, headers: dict | None = None):
    return await client.get("/mcp", headers={**session_headers(session, "2025-11-25"), **SSE, **(headers or {})})


async def listen(client, filter: dict | None = None, headers: dict | None = None, id: str = "listen-1"):
    message = modern_rpc("subscriptions/listen", {"notifications": filter or {"toolsListChanged": True}}, id=id)
    return await post(client, message, {**modern_headers(message), **(headers or {})}), message


class _with:
    """A client view that adds headers to every request (a second key on the same server)."""

    def __init__(self, client, headers: dict) -> None:
        self.client, self.headers = client, headers

    async def post(self, path: str, **kwargs):
        kwargs["headers"] = {**self.headers, **kwargs.get("headers", {})}
        return await self.client.anonymous.post(path, **kwargs)


async def test_a_session_stream_says_when_the_tool_list_changed(client):
    session = await open_session(client)
    resp = await open_get(client, session)
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    announce(client.server.app, "extra_tool")
    assert await next_frame(resp) == LIST_CHANGED
    listed = await post(
        client, {"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, session_headers(session, "2025-11-25")
    )
    assert "extra_tool" in {t["name"] for t in (await listed.json())["result"]["tools"]}
    announce(client.server.app)  # and it goes again
    assert await next_frame(resp) == LIST_CHANGED


async def test_a_key_hears_only_of_tools_it_may_see(client):
    narrow = await create_key(client.admin, scopes=["get_alerts"])
    headers = {"X-API-Key": narrow["key"]}
    session = await open_session(_with(client, headers))
    resp = await open_get(client.anonymous, session, headers)
    announce(client.server.app, "extra_tool")  # not the narrow key's
    announce(client.server.app, "extra_tool", "another_tool")
    await client.anonymous.get("/api/health")  # a round trip: a stream that was woken has written by now
    announce(client.server.app, "extra_tool", scopes=("get_alerts",))  # now it may see one
    assert await next_frame(resp) == LIST_CHANGED
    await client.anonymous.delete("/mcp", headers={**session_headers(session, "2025-11-25"), **headers})
    assert await rest_of(resp) == []  # one change it could see, one notification


async def test_one_stream_per_session_and_a_bounded_number_per_key(make_client, make_settings):
    client = await make_client(make_settings(max_streams_per_key=2))
    first, second, third = [await open_session(client) for _ in range(3)]
    assert (await open_get(client, first)).status == 200
    again = await open_get(client, first)
    assert again.status == 409 and (await again.json())["error"]["code"] == -32600
    assert (await open_get(client, second)).status == 200
    refused = await open_get(client, third)
    assert refused.status == 429 and refused.headers["Retry-After"] == "60"
    assert "At most 2" in (await refused.json())["error"]["message"]
    other = await create_key(client.admin)  # another key has its own share
    session = await open_session(_with(client, {"X-API-Key": other["key"]}))
    assert (await open_get(client.anonymous, session, {"X-API-Key": other["key"]})).status == 200


def test_a_stream_refused_says_which_bound_refused_it(monkeypatch):
    def refusal(streams: streams_module.ChangeStreams, who: Principal) -> str:
        with pytest.raises(ApiError) as refused:
            streams.add(who)
        assert refused.value.kind.status == 429 and refused.value.headers == {"Retry-After": "60"}
        return str(refused.value.detail)

    monkeypatch.setattr(streams_module, "MAX_STREAMS", 3)
    streams = streams_module.ChangeStreams(lambda principal, view: frozenset(), per_key=2)
    a, b, c = (Principal("key", name, name) for name in "abc")
    streams.add(a), streams.add(a), streams.add(b)
    assert refusal(streams, a) == "At most 2 change streams may be open per key; close one first."
    assert refusal(streams, c) == "This instance holds 3 change streams, its most; try again later."
    streams.closing = True
    assert refusal(streams, c) == "The server is shutting down; open the stream again in a moment."


async def test_a_stream_whose_client_went_away_frees_its_slot(make_client, make_settings, monkeypatch):
    monkeypatch.setattr(streams_module, "CHECK_SECONDS", 0.05)
    client = await make_client(make_settings(max_streams_per_key=1))
    first, second = await open_session(client), await open_session(client)
    resp = await open_get(client, first)
    [stream] = client.server.app[STREAMS].open
    resp.close()
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert (await open_get(client, second)).status == 200


@pytest.mark.parametrize(
    ("change", "status", "code"),
    [
        ({"Mcp-Session-Id": "no-such-session"}, 404, -32600),
        ({"Mcp-Session-Id": None}, 400, -32600),
        ({"Accept": "application/json"}, 406, -32600),
        ({"MCP-Protocol-Version": "2026-07-28"}, 405, -32600),  # that revision has no GET stream
    ],
)
async def test_a_stream_that_cannot_be_opened_gets_a_json_rpc_error(client, change, status, code):
    session = await open_session(client)
    headers = {**session_headers(session, "2025-11-25"), **SSE, **change}
    resp = await client.get("/mcp", headers={k: v for k, v in headers.items() if v is not None})
    assert resp.status == status
    assert (await resp.json())["error"]["code"] == code


async def test_another_keys_session_stream_is_not_found(client):
    session = await open_session(client)
    other = await create_key(client.admin)
    resp = await open_get(client.anonymous, session, {"X-API-Key": other["key"]})
    assert resp.status == 404


async def test_ending_the_session_or_revoking_the_key_ends_its_stream(client):
    key = await create_key(client.admin)
    headers = {"X-API-Key": key["key"]}
    session = await open_session(_with(client, headers))
    by_delete = await open_get(client.anonymous, session, headers)
    await client.anonymous.delete("/mcp", headers={**session_headers(session, "2025-11-25"), **headers})
    assert await rest_of(by_delete) == []
    session = await open_session(_with(client, headers))
    by_revoke = await open_get(client.anonymous, session, headers)
    assert (await client.admin.delete(f"/api/admin/keys/{key['id']}")).status == 204
    assert await rest_of(by_revoke) == []
    assert (await open_get(client.anonymous, session, headers)).status == 401


async def test_a_stream_ends_when_its_key_expires(client, monkeypatch):
    monkeypatch.setattr(streams_module, "CHECK_SECONDS", 0.05)
    key = await create_key(client.admin, expires_at="2099-01-01T00:00:00Z")
    headers = {"X-API-Key": key["key"]}
    session = await open_session(_with(client, headers))
    resp = await open_get(client.anonymous, session, headers)
    [stream] = client.server.app[STREAMS].open
    authenticator = client.server.app[AUTHENTICATOR]
    monkeypatch.setattr(authenticator, "now", lambda: datetime(2099, 1, 2, tzinfo=UTC))  # the clock, moved by hand
    await asyncio.wait_for(stream.closed.wait(), 5)
    assert await rest_of(resp) == []


async def test_a_key_revoked_in_the_store_alone_ends_its_stream_at_the_next_read_of_the_change_feed(
    client, monkeypatch
):
    """The CLI without Redis revokes in the store and tells no instance: the change feed names
    the key, and its streams check their credential then, not at their next periodic check
    (which this test puts an hour away); another key's stream is left open."""
    from skywarden.server.appkeys import KEY_STORE
    from skywarden.server.auth.records import utcnow

    monkeypatch.setattr(streams_module, "CHECK_SECONDS", 3600.0)
    key, other = await create_key(client.admin), await create_key(client.admin)
    responses = {}
    for made in (key, other):
        headers = {"X-API-Key": made["key"]}
        responses[made["id"]] = await open_get(client.anonymous, await open_session(_with(client, headers)), headers)
    streams = {s.principal.id: s for s in client.server.app[STREAMS].open}
    await client.server.app[KEY_STORE].revoke(key["id"], "from the CLI", utcnow())
    await client.server.app[AUTHENTICATOR].follow_changes()
    await asyncio.wait_for(streams[key["id"]].closed.wait(), 30)
    assert await rest_of(responses[key["id"]]) == []
    await client.anonymous.get("/api/health")  # a round trip: the other stream has run its check by now
    assert not streams[other["id"]].closed.is_set() and streams[other["id"]] in client.server.app[STREAMS].open


@pytest.mark.slow
async def test_a_session_deleted_through_one_instance_ends_its_stream_on_another(make_client, make_settings):
    async with redis_prefix() as (redis_url, prefix):
        shared = {
            "redis_url": redis_url,
            "redis_key_prefix": prefix,
            "secret": "shared-secret-of-two-instances-0123456",
        }
        first = await make_client(make_settings(**shared))
        second = await make_client(make_settings(**shared))
        second.api_key = first.api_key
        session = await open_session(first)
        resp = await open_get(second.anonymous, session, {"X-API-Key": first.api_key})
        assert resp.status == 200
        [stream] = second.server.app[STREAMS].open
        assert (await first.delete("/mcp", headers=session_headers(session, "2025-11-25"))).status == 204
        assert stream.ended.is_set()  # told before the answer: the broadcast was confirmed
        assert await rest_of(resp) == []


async def test_a_listen_stream_is_acknowledged_then_tells_each_change_stamped_with_its_id(client):
    resp, _ = await listen(client, id="listen-7")
    assert resp.status == 200 and resp.content_type == "text/event-stream"
    ack = await next_frame(resp)
    assert ack["method"] == "notifications/subscriptions/acknowledged"
    assert ack["params"] == {"notifications": {"toolsListChanged": True}, "_meta": {SUBSCRIPTION_ID: "listen-7"}}
    announce(client.server.app, "extra_tool")
    changed = await next_frame(resp)
    assert changed == {**LIST_CHANGED, "params": {"_meta": {SUBSCRIPTION_ID: "listen-7"}}}


async def test_a_listen_for_nothing_this_server_sends_is_acknowledged_and_closed(client):
    resp, _ = await listen(client, {"promptsListChanged": True, "resourceSubscriptions": ["x://y"]}, id=3)
    frames = await rest_of(resp)
    assert frames[0]["params"]["notifications"] == {}
    assert frames[-1] == {
        "jsonrpc": "2.0",
        "id": 3,
        "result": {"_meta": {SUBSCRIPTION_ID: 3}, "resultType": "complete"},
    }


@pytest.mark.parametrize(
    ("params", "words"),
    [
        ({}, "params.notifications must be an object"),
        ({"notifications": []}, "params.notifications must be an object"),
        ({"notifications": {"toolsListChanged": "yes"}}, "toolsListChanged must be true or false"),
    ],
)
async def test_a_malformed_listen_is_invalid_params(client, params, words):
    message = modern_rpc("subscriptions/listen", params, id=9)
    resp = await post(client, message, modern_headers(message))
    assert resp.status == 400
    body = await resp.json()
    assert body["id"] == 9 and body["error"]["code"] == -32602 and words in body["error"]["message"]


async def test_a_listen_that_does_not_accept_a_stream_is_406(client):
    resp, _ = await listen(client, headers={"Accept": "application/json"})
    assert resp.status == 406


async def test_shutting_down_closes_every_listen_stream_with_its_result(make_server, settings):
    server = await make_server(settings)
    async with aiohttp.ClientSession(base_url=str(server.make_url(""))) as http:
        admin_headers = {"Authorization": f"Bearer {settings.admin_token}"}
        created = await http.post("/api/admin/keys", json={"name": "k"}, headers=admin_headers)
        key = (await created.json())["key"]
        SECRETS.add(key)
        message = modern_rpc("subscriptions/listen", {"notifications": {"toolsListChanged": True}}, id="l")
        headers = {**modern_headers(message), "Accept": ACCEPT_BOTH, "X-API-Key": key}
        resp = await http.post("/mcp", json=message, headers=headers)
        assert (await next_frame(resp))["method"] == "notifications/subscriptions/acknowledged"
        await server.close()
        frames = await rest_of(resp)
    assert frames == [
        {"jsonrpc": "2.0", "id": "l", "result": {"_meta": {SUBSCRIPTION_ID: "l"}, "resultType": "complete"}}
    ]


async def test_an_upstreams_own_endpoint_shows_its_tools_alone_by_their_own_names(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"test": {"command": "x", "enabled": False}}))
    source = client.server.app[REGISTRY].get("get_alerts")
    tool = dataclasses.replace(source, name="test__alerts", upstream="test")
    client.server.app[REGISTRY].replace_plugin(PluginInfo("upstream:test", "upstream:test", "test"), [tool])
    client.server.app[GATEWAY].changed()
    listing = modern_rpc("tools/list", id=1)
    listed = await client.post("/mcp/u/test", json=listing, headers=modern_headers(listing))
    assert [t["name"] for t in (await listed.json())["result"]["tools"]] == ["alerts"]
    other = modern_rpc("tools/call", {"name": "get_forecast", "arguments": {}}, id=3)
    refused = await client.post("/mcp/u/test", json=other, headers=modern_headers(other))
    assert (await refused.json())["error"]["code"] == -32602  # not a tool of this upstream
    session = await open_session(_Under(client, "/mcp/u/test"))
    resp = await client.get("/mcp/u/test", headers={**session_headers(session, "2025-11-25"), **SSE})
    announce(client.server.app, "unrelated")  # a tool of no upstream: not this endpoint's
    await client.get("/api/health")
    client.server.app[REGISTRY].replace_plugin(PluginInfo("upstream:test", "upstream:test", "test"), [])
    client.server.app[GATEWAY].changed()
    assert await next_frame(resp) == LIST_CHANGED
    await client.delete("/mcp/u/test", headers=session_headers(session, "2025-11-25"))
    assert await rest_of(resp) == []


class _Under:
    """A client view that posts to another MCP endpoint."""

    def __init__(self, client, path: str) -> None:
        self.client, self.path = client, path

    async def post(self, path: str, **kwargs):
        return await self.client.post(self.path, **kwargs)


@pytest.mark.parametrize("path", ["/mcp/u/nothing", "/mcp/u/" + "x" * 300])
async def test_an_endpoint_of_no_upstream_is_not_found(client, path):
    listing = modern_rpc("tools/list", id=1)
    resp = await client.post(path, json=listing, headers=modern_headers(listing))
    body = await resp.json()
    assert resp.status == 404 and body["error"]["code"] == -32600 and "no upstream named" in body["error"]["message"]
    assert len(body["error"]["message"]) < 100
