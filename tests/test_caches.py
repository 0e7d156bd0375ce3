"""The request path's caches: every one bounded and built in one place, and none ever answers
for a key, scope, revision, registry, tool setting or rate other than the one it was made for."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from marshmallow import Schema, fields

from skywarden.server.calls.pipeline import InvalidArguments
from skywarden.server.plugins.http_client import Upstream
from skywarden.server.plugins.registry import ToolRegistry, register_tool
from skywarden.server.principal import Principal
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolResult, text_content
from skywarden.tools.weather import get_alerts, get_forecast
from tests.support.fake_nws import FakeNWS
from tests.support.mcp_helpers import modern_headers, modern_rpc, open_session, post, rpc, session_headers
from tests.support.pipelines import pipeline_of
from tests.support.sources import syntax_tree

ROOT = Path(__file__).resolve().parents[1]
SOURCES = sorted([*(ROOT / "server").rglob("*.py"), *(ROOT / "tools").rglob("*.py")])
CACHES_MODULE = "server/calls/caches.py"
# Where an OrderedDict may live: the one cache primitive, the two security caches (kept with
# what keeps them honest) and two stores that are no caches (sessions, console sign-ins).
ORDERED_DICT_ALLOWED = {
    "server/ttlcache.py",
    "server/auth/authenticator.py",
    "server/identity/tokens.py",
    "server/mcp/sessions.py",
    "server/console/pending.py",
}


def parsed() -> list[tuple[str, ast.AST]]:
    return [(str(path.relative_to(ROOT)), syntax_tree(path)) for path in SOURCES]


def called_name(node: ast.Call) -> str:
    func = node.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""


def test_every_memo_of_a_function_is_bounded():
    unbounded = []
    for name, tree in parsed():
        for node in ast.walk(tree):
            where = f"{name}:{getattr(node, 'lineno', 0)}"
            if isinstance(node, ast.Attribute) and node.attr == "cache" and ast.unparse(node.value) == "functools":
                unbounded.append(f"{where} functools.cache")
            elif isinstance(node, ast.ImportFrom) and node.module == "functools":
                unbounded += [f"{where} functools.{a.name}" for a in node.names if a.name in {"cache", "lru_cache"}]
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                bare = [d for d in node.decorator_list if not isinstance(d, ast.Call) and "lru_cache" in ast.unparse(d)]
                unbounded += [f"{where} lru_cache without arguments" for _ in bare]
            elif isinstance(node, ast.Call) and called_name(node) == "lru_cache":
                sizes = [k.value for k in node.keywords if k.arg == "maxsize"] + node.args[:1]
                if not (sizes and isinstance(sizes[0], ast.Constant) and type(sizes[0].value) is int):
                    unbounded.append(f"{where} lru_cache without a fixed maxsize")
    assert unbounded == []


def test_the_request_paths_caches_are_built_in_one_module():
    elsewhere = [
        f"{name}:{node.lineno}"
        for name, tree in parsed()
        for node in ast.walk(tree)
        if isinstance(node, ast.Call) and called_name(node) == "TTLCache" and name != CACHES_MODULE
    ]
    assert elsewhere == []


def test_no_cache_is_hand_rolled():
    rolled = sorted(
        {
            name
            for name, tree in parsed()
            for node in ast.walk(tree)
            if isinstance(node, ast.Name | ast.Attribute)
            and (getattr(node, "id", None) or getattr(node, "attr", None)) == "OrderedDict"
        }
        - ORDERED_DICT_ALLOWED
    )
    assert rolled == []


# A key, its scopes and its rate.


async def listed(client, version: str) -> dict:
    if version == "2026-07-28":
        message = modern_rpc("tools/list")
        return (await (await post(client, message, modern_headers(message))).json())["result"]
    session = await open_session(client, version)
    return (await (await post(client, rpc("tools/list"), session_headers(session, version))).json())["result"]


@pytest.mark.parametrize("version", ["2025-03-26", "2025-11-25", "2026-07-28"])
async def test_a_keys_new_scopes_change_its_tool_list_and_calls_at_once(make_client, version):
    client = await make_client(scopes=["get_alerts"])
    assert [t["name"] for t in (await listed(client, version))["tools"]] == ["get_alerts"]
    changed = await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"scopes": ["get_forecast"]})
    assert changed.status == 200
    assert [t["name"] for t in (await listed(client, version))["tools"]] == ["get_forecast"]
    assert (await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).status == 403


async def test_each_revision_gets_its_own_tool_list_from_one_key(client):
    old = await listed(client, "2025-03-26")
    structured = await listed(client, "2025-06-18")
    modern = await listed(client, "2026-07-28")
    again = await listed(client, "2025-03-26")
    assert again == old
    assert not any("title" in t or "outputSchema" in t for t in old["tools"])
    assert any("outputSchema" in t for t in structured["tools"]) and "ttlMs" not in structured
    assert modern["ttlMs"] and modern["resultType"] == "complete" and "ttlMs" not in old


async def test_a_keys_new_rate_is_advertised_at_once(make_client):
    client = await make_client()
    await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"rate_limit": "50/minute"})
    first = await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    assert "q=50;w=60" in first.headers["RateLimit-Policy"]
    await client.admin.patch(f"/api/admin/keys/{client.key_id}", json={"rate_limit": "70/minute"})
    second = await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    assert "q=70;w=60" in second.headers["RateLimit-Policy"]


# Another registry, other tool settings: another app, with caches of its own.


async def test_apps_with_other_registries_list_their_own_tools(make_client):
    narrow = await make_client(registry=ToolRegistry([register_tool(get_alerts, "t")]))
    both = [register_tool(get_alerts, "t"), register_tool(get_forecast, "t")]
    wide = await make_client(registry=ToolRegistry(both))
    for version in ("2025-11-25", "2026-07-28"):
        assert [t["name"] for t in (await listed(narrow, version))["tools"]] == ["get_alerts"]
        assert [t["name"] for t in (await listed(wide, version))["tools"]] == ["get_alerts", "get_forecast"]


async def test_apps_with_other_tool_settings_never_share_a_kept_result(make_client, make_settings, aiohttp_server):
    elsewhere = FakeNWS()
    del elsewhere.routes["/alerts/active/area/KS"]  # this upstream knows nothing of Kansas
    elsewhere.url = str((await aiohttp_server(elsewhere.app())).make_url("")).rstrip("/")
    here = await make_client()
    there = await make_client(make_settings(weather_base_url=elsewhere.url))
    kept = await (await here.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).json()
    assert kept["isError"] is False
    other = await (await there.post("/api/mcp/tools/get_alerts", json={"state": "KS"})).json()
    assert other["isError"] is True and elsewhere.hits("/alerts/active/area/KS") == 1


def pure_tool(field: fields.Field):
    class Args(Schema):
        flag = field

    class Tool:
        name = "pure"
        description = "one name, two schemas"
        Arguments = Args
        pure_arguments = True

        async def call(self, arguments: dict, context) -> ToolResult:
            return ToolResult(content=[text_content("ok")])

    return register_tool(Tool(), "t")


async def test_a_tool_of_the_same_name_in_another_registry_validates_by_its_own_schema():
    caller = Principal("key", "key_caches", "caches", frozenset({"*"}))
    upstream = Upstream("t", 1, 1000, TTLCache(1))
    numbers = pipeline_of(ToolRegistry([pure_tool(fields.Integer(required=True))]), upstream)
    texts = pipeline_of(ToolRegistry([pure_tool(fields.String(required=True))]), upstream)
    assert not (await numbers.call("pure", {"flag": 1}, caller)).result.is_error
    with pytest.raises(InvalidArguments):
        await texts.call("pure", {"flag": 1}, caller)
