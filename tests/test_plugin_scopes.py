"""Scope names a tool declares (``scopes=["acme"]``) grant it besides its own name and ``*``: at
both doors, in the tool list, for keys and access tokens alike; the calls they allow are
audited and rate-limited as any other."""

from __future__ import annotations

import pytest

from skywarden.server.identity.claims import scopes_for_tool, tool_scopes
from skywarden.server.plugins.registry import DuplicateToolError, registry_of
from skywarden.server.principal import Principal
from skywarden.tools import Context, Plugin
from tests.support import declared_samples as samples
from tests.support.admin import create_key
from tests.support.logs import drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc, post


def plugins():
    return registry_of([samples.acme, samples.word_count], "acme-tools 2.0")


async def scoped_key(client, scopes: list[str]) -> dict[str, str]:
    """A key with these scopes, made through the admin API (declared scope names are accepted)."""
    body = await create_key(client.admin, name="scoped", scopes=scopes)
    return {"X-API-Key": body["key"], "id": body["id"]}


async def mcp_call(client, name: str, key: dict[str, str], arguments: dict):
    message = modern_rpc("tools/call", {"name": name, "arguments": arguments})
    resp = await post(client, message, {**modern_headers(message), "X-API-Key": key["X-API-Key"]})
    return resp.status, await resp.json()


async def mcp_list(client, key: dict[str, str]) -> list[str]:
    message = modern_rpc("tools/list")
    resp = await post(client, message, {**modern_headers(message), "X-API-Key": key["X-API-Key"]})
    return [t["name"] for t in (await resp.json())["result"]["tools"]]


async def rest_list(client, key: dict[str, str]) -> list[str]:
    resp = await client.get("/api/mcp/tools", headers={"X-API-Key": key["X-API-Key"]})
    return [t["name"] for t in (await resp.json())["tools"]]


async def test_a_key_scoped_to_a_plugin_scope_sees_and_calls_only_its_tools(make_client):
    client = await make_client(registry=plugins())
    acme = await scoped_key(client, ["acme"])
    headers = {"X-API-Key": acme["X-API-Key"]}
    assert await rest_list(client, acme) == await mcp_list(client, acme) == ["describe", "lookup"]
    resp = await client.post("/api/mcp/tools/lookup", json={"id": 7}, headers=headers)
    assert resp.status == 200 and (await resp.json())["structuredContent"] == {"name": "thing 7", "size": 7}
    status, answer = await mcp_call(client, "describe", acme, {"name": "x", "loud": True})
    assert status == 200 and answer["result"]["content"][0]["text"] == "X"
    resp = await client.post("/api/mcp/tools/word_count", json={"text": "a b"}, headers=headers)
    assert resp.status == 403 and "may not use the tool 'word_count'" in (await resp.json())["detail"]
    status, answer = await mcp_call(client, "word_count", acme, {"text": "a b"})
    assert status == 403 and answer["error"]["code"] == -32003


async def test_a_tool_name_and_star_still_grant_as_before(make_client):
    client = await make_client(registry=plugins())
    lookup_only = await scoped_key(client, ["lookup"])
    assert await rest_list(client, lookup_only) == await mcp_list(client, lookup_only) == ["lookup"]
    every = await scoped_key(client, ["*"])
    assert await rest_list(client, every) == ["describe", "lookup", "word_count"]
    words = await scoped_key(client, ["word_count"])
    status, answer = await mcp_call(client, "lookup", words, {"id": 1})
    assert status == 403 and answer["error"]["code"] == -32003


async def test_the_admin_api_refuses_a_scope_nothing_declares(make_client):
    client = await make_client(registry=plugins())
    resp = await client.admin.post("/api/admin/keys", json={"name": "x", "scopes": ["acme-typo"]})
    assert resp.status == 422
    assert (await scoped_key(client, ["lookup"]))["id"]  # a tool name is a scope as before


async def test_calls_a_plugin_scope_allows_are_audited_and_rate_limited(make_client, make_settings):
    client = await make_client(make_settings(rate_limit="3/minute"), registry=plugins())
    acme = await scoped_key(client, ["acme"])
    headers = {"X-API-Key": acme["X-API-Key"]}
    first = await client.post("/api/mcp/tools/lookup", json={"id": 1}, headers=headers)
    status, _ = await mcp_call(client, "lookup", acme, {"id": 2})
    third = await client.post("/api/mcp/tools/describe", json={"name": "x"}, headers=headers)
    assert (first.status, status, third.status) == (200, 200, 200)
    over = await client.post("/api/mcp/tools/lookup", json={"id": 3}, headers=headers)
    assert over.status == 429 and over.headers["Retry-After"]
    status, answer = await mcp_call(client, "lookup", acme, {"id": 4})
    assert status == 429 and "error" in answer
    events = [e for e in drain_logs() if e.get("audit") and e.get("key_id") == acme["id"] and e["event"] == "request"]
    assert [(e.get("tool"), e["status"], e["outcome"]) for e in events] == [
        ("lookup", 200, "allowed"),
        ("lookup", 200, "allowed"),
        ("describe", 200, "allowed"),
        (None, 429, "denied"),  # refused at the door, before the tool is read: as for a built-in tool
        (None, 429, "denied"),
    ]


async def test_a_tool_that_costs_more_is_charged_its_cost(make_client, make_settings):
    costs = Plugin("costs")

    @costs.tool(scopes=["acme"], cost=3)
    async def expensive(ctx: Context, n: int) -> int:
        """Costs three units."""
        return n

    registry = registry_of([samples.acme, costs], "t")
    client = await make_client(make_settings(rate_limit="4/minute"), registry=registry)
    acme = await scoped_key(client, ["acme"])
    headers = {"X-API-Key": acme["X-API-Key"]}
    assert (await client.post("/api/mcp/tools/expensive", json={"n": 1}, headers=headers)).status == 200
    assert (await client.post("/api/mcp/tools/expensive", json={"n": 1}, headers=headers)).status == 429


# --- Access tokens ------------------------------------------------------------------------------


GRANTABLE = frozenset(plugins().grantable_names())


@pytest.mark.parametrize(
    ("token_scopes", "scope_map", "allowed"),
    [
        (["tool:acme"], {}, {"describe", "lookup"}),
        (["tool:lookup"], {}, {"lookup"}),
        (["acme"], {}, set()),  # a bare name grants nothing, as for tools
        (["partner"], {"partner": ("acme",)}, {"describe", "lookup"}),
        (["partner"], {"partner": ("word_count", "acme")}, {"describe", "lookup", "word_count"}),
        (["tools"], {}, {"describe", "lookup", "word_count"}),
        (["tool:ACME", "tool:acme*"], {}, set()),
    ],
)
def test_a_token_scope_grants_a_declared_scope_as_it_grants_a_tool(token_scopes, scope_map, allowed):
    registry = plugins()
    principal = Principal("subject", "s", "s", tool_scopes(token_scopes, scope_map, GRANTABLE))
    assert {t.name for t in registry if principal.allows(t.grants)} == allowed


def test_an_insufficient_scope_challenge_names_the_declared_scopes_too():
    lookup = plugins().get("lookup")
    assert scopes_for_tool(lookup.name, {"partner": ("acme",), "other": ("x",)}, lookup.scopes) == [
        "tool:lookup",
        "tool:acme",
        "partner",
        "tools",
    ]


async def test_the_plugin_tools_work_beside_the_key_made_through_the_admin_api(make_client):
    client = await make_client(registry=plugins())
    key = await create_key(client.admin, scopes=["lookup"])
    resp = await client.post("/api/mcp/tools/lookup", json={"id": 3}, headers={"X-API-Key": key["key"]})
    assert resp.status == 200


@pytest.mark.parametrize("order", ["words_first", "scope_first"])
def test_a_scope_name_that_is_another_plugins_tool_stops_start_up(order):
    sneaky = Plugin("sneaky")

    @sneaky.tool(scopes=["word_count"])  # a key scoped to word_count would get this tool too
    async def rides_along(ctx: Context) -> str:
        """Rides along."""
        return ""

    objects = [samples.word_count, sneaky] if order == "words_first" else [sneaky, samples.word_count]
    with pytest.raises(DuplicateToolError, match=r"'word_count' is both a tool of .* and a scope name of"):
        registry_of(objects, "t")


def test_tools_of_one_plugin_may_share_a_scope_named_after_one_of_them():
    shop = Plugin("shop")

    @shop.tool
    async def orders(ctx: Context) -> str:
        """Orders."""
        return ""

    @shop.tool(scopes=["orders"])
    async def order_lines(ctx: Context) -> str:
        """Order lines."""
        return ""

    assert registry_of([shop], "t").names() == ["order_lines", "orders"]
