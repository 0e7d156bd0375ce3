"""Upstreams added, disabled and removed through the admin API while the server runs, against the
real upstream server of tests/support/upstream_server.py: its tools come and go at once, on
this instance and on every instance sharing the store and Redis. Each test starts upstream
processes: slow."""

from __future__ import annotations

import asyncio
import json
import secrets
import sys

import pytest

from skywarden.server.appkeys import GATEWAY
from skywarden.server.http.paths import SPEC_PATH
from tests.support.admin import create_key
from tests.support.logs import SECRETS, drain_logs
from tests.support.services import redis_prefix
from tests.support.upstreams import http_upstream_process, stdio_upstream

pytestmark = pytest.mark.slow

PATH = "/api/admin/upstreams"
ENV_VALUE = "live-env-" + secrets.token_urlsafe(24)
SECRETS.add(ENV_VALUE)
SHARED_SECRET = "shared-server-secret-for-the-upstreams-0123"


async def up(server, name: str) -> None:
    """Until this instance's connection to ``name`` is up (its tools listed)."""
    connection = server.app[GATEWAY].connections[name]
    await asyncio.wait_for(connection.wait_for("up", 1), 30)


async def tool_names(client) -> set[str]:
    return {t["name"] for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}


async def add(admin, body: dict) -> dict:
    resp = await admin.post(PATH, json=body)
    assert resp.status == 201, await resp.text()
    return await resp.json()


LOOPBACK = {"upstream_allowed_networks": "127.0.0.1/32"}  # where the test's upstreams listen: the operator allows it


async def test_an_added_upstream_serves_its_tools_and_they_go_at_once_when_disabled_or_removed(
    make_client, make_settings
):
    client = await make_client(make_settings(**LOOPBACK))
    async with http_upstream_process() as url:
        view = await add(client.admin, {"name": "remote", "url": url})
        assert view["state"] in ("starting", "up")
        await up(client.server, "remote")
        answer = await client.post("/api/mcp/tools/remote__add", json={"a": 2, "b": 40})
        assert (await answer.json())["structuredContent"] == {"total": 42}
        shown = await (await client.admin.get(f"{PATH}/remote")).json()
        assert shown["state"] == "up" and "remote__add" in shown["tools"] and shown["calls"] == 1

        await client.admin.patch(f"{PATH}/remote", json={"enabled": False})
        assert not {t for t in await tool_names(client) if t.startswith("remote__")}
        assert (await client.post("/api/mcp/tools/remote__add", json={"a": 1, "b": 1})).status == 404
        assert (await (await client.admin.get(f"{PATH}/remote")).json())["state"] == "disabled"

        await client.admin.patch(f"{PATH}/remote", json={"enabled": True})
        await up(client.server, "remote")
        assert (await client.post("/api/mcp/tools/remote__add", json={"a": 1, "b": 1})).status == 200

        gateway = client.server.app[GATEWAY]
        connection = gateway.connections["remote"]
        assert (await client.admin.delete(f"{PATH}/remote")).status == 204
        assert (await client.post("/api/mcp/tools/remote__add", json={"a": 1, "b": 1})).status == 404
        await asyncio.gather(*gateway._stopping)
        assert connection._task is not None and connection._task.done()
        assert "remote" not in gateway.connections and (await client.admin.get(PATH)).status == 200


@pytest.mark.parametrize("documented_too", [True, False])
async def test_the_openapi_document_follows_an_upstream_added_and_removed(make_client, make_settings, documented_too):
    """With ``openapi_upstream_tools`` each upstream tool is an operation of the public document;
    without it (the default) none is: the document is public, an upstream's tools are not."""
    client = await make_client(make_settings(**LOOPBACK, openapi_upstream_tools=documented_too))

    async def documented() -> set[str]:
        paths = (await (await client.anonymous.get(SPEC_PATH)).json())["paths"]
        return {path.rsplit("/", 1)[1] for path in paths if path.startswith("/api/mcp/tools/remote__")}

    assert await documented() == set()
    async with http_upstream_process() as url:
        await add(client.admin, {"name": "remote", "url": url})
        await up(client.server, "remote")
        listed = {name for name in await tool_names(client) if name.startswith("remote__")}
        assert "remote__add" in listed
        paths = (await (await client.anonymous.get(SPEC_PATH)).json())["paths"]
        assert (
            "/api/mcp/tools/get_forecast" in paths and "/api/mcp/tools/{toolName}" in paths
        )  # the plugins' and the call
        if not documented_too:
            assert await documented() == set() and "remote__" not in json.dumps(paths)
            return
        assert await documented() == listed
        operation = paths["/api/mcp/tools/remote__add"]["post"]
        body = operation["requestBody"]["content"]["application/json"]["schema"]
        assert set(body["required"]) == {"a", "b"} and "401" in operation["responses"]
        assert (await client.post("/api/mcp/tools/remote__add", json={"a": 1, "b": 2})).status == 200
        series = 'skywarden_tool_calls_total{outcome="ok",tool="remote__add"} 1.0'
        assert series in await (await client.admin.get("/metrics")).text()
        assert (await client.admin.delete(f"{PATH}/remote")).status == 204
        assert await documented() == set()
        assert 'tool="remote__add"' not in await (await client.admin.get("/metrics")).text()  # bounded: gone with it


async def test_a_connection_an_admin_request_starts_logs_as_no_request(make_client, make_settings):
    """The connection outlives the request that added the upstream: its lines carry no request
    id (they named that request for as long as the connection ran)."""
    client = await make_client(make_settings(**LOOPBACK))
    async with http_upstream_process() as url:
        added = await client.admin.post(PATH, json={"name": "remote", "url": url})
        assert added.status == 201
        await up(client.server, "remote")
        removed = await client.admin.delete(f"{PATH}/remote")
        assert removed.status == 204
    requests = {added.headers["X-Request-ID"], removed.headers["X-Request-ID"]}
    lines = [e for e in drain_logs() if e.get("upstream") == "remote" and not e.get("audit")]
    assert {"upstream connected", "upstream removed"} <= {e["event"] for e in lines}
    assert not [e for e in lines if e.get("request_id") in requests]


async def test_a_key_scoped_to_an_added_upstream_calls_it_and_nothing_else(make_client, make_settings):
    client = await make_client(make_settings(**LOOPBACK))
    async with http_upstream_process() as url:
        await add(client.admin, {"name": "remote", "url": url})
        await up(client.server, "remote")
        key = await create_key(client.admin, scopes=["upstream:remote"])
        headers = {"X-API-Key": key["key"]}
        listed = await (await client.get("/api/mcp/tools", headers=headers)).json()
        assert {t["name"] for t in listed["tools"]} and all(t["name"].startswith("remote__") for t in listed["tools"])
        assert (await client.post("/api/mcp/tools/get_alerts", json={"area": "KS"}, headers=headers)).status == 403


async def test_a_stdio_upstream_added_by_an_admin_gets_its_environment(make_client, make_settings):
    client = await make_client(make_settings(upstream_admin_commands=[sys.executable], upstream_admin_env=["CALC_*"]))
    await add(client.admin, {"name": "calc", **stdio_upstream(env={"CALC_VALUE": ENV_VALUE})})
    await up(client.server, "calc")
    answer = await client.post("/api/mcp/tools/calc__environment", json={"name": "CALC_VALUE"})
    assert (await answer.json())["content"][0]["text"] == ENV_VALUE


async def test_an_admins_env_value_never_blanks_the_audit_trail_once_its_upstream_runs(make_client, make_settings):
    """The values an admin gives are redacted as the upstream's own while it runs too (connecting
    registered them for every field of every line, the audit trail's included, for good)."""
    from skywarden.server.observability import redaction

    value = "upstream.remove"  # what the audit line of a removal says
    client = await make_client(make_settings(upstream_admin_commands=[sys.executable], upstream_admin_env=["CALC_*"]))
    await add(client.admin, {"name": "calc", **stdio_upstream(env={"CALC_VALUE": value})})
    await up(client.server, "calc")
    assert value in redaction.owned_secrets and value not in redaction.extra_secrets
    assert (await client.admin.delete(f"{PATH}/calc")).status == 204
    removal = [e for e in drain_logs() if e.get("upstream") == "calc" and e.get("event") == "admin action"][-1]
    assert removal["action"] == "upstream.remove"
    assert value not in redaction.owned_secrets


async def test_instances_sharing_the_store_and_redis_start_and_drop_an_added_upstream_together(
    make_client, make_settings
):
    async with redis_prefix() as (redis_url, prefix), http_upstream_process() as url:
        shared = {"redis_url": redis_url, "redis_key_prefix": prefix, "secret": SHARED_SECRET, **LOOPBACK}
        first = await make_client(make_settings(**shared))
        second = await make_client(make_settings(**shared))
        await add(first.admin, {"name": "remote", "url": url})
        assert "remote" in second.server.app[GATEWAY].connections  # the broadcast was confirmed before the answer
        await up(second.server, "remote")
        answer = await second.post("/api/mcp/tools/remote__add", json={"a": 20, "b": 22})
        assert (await answer.json())["structuredContent"] == {"total": 42}
        assert (await first.admin.delete(f"{PATH}/remote")).status == 204
        assert (await second.post("/api/mcp/tools/remote__add", json={"a": 1, "b": 1})).status == 404
