"""Upstreams kept in the key store, through the admin API: validated like settings tables, their
credentials sealed and never shown, scopes that follow them, every malformed form refused with
a problem that says what is wrong and nothing stored. Upstreams here are disabled (or refused):
nothing connects, so these run in the everyday loop; tests/test_gateway_admin_live.py connects."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sqlite3
import sys

import pytest

from skywarden.server.appkeys import GATEWAY, SETTINGS
from skywarden.server.auth import upstream_operations
from skywarden.server.gateway import gateway as gateway_module
from tests.support.admin import create_key
from tests.support.logs import SECRETS, drain_logs

PATH = "/api/admin/upstreams"
TOKEN = "upstream-token-" + secrets.token_urlsafe(24)
ENV_VALUE = "upstream-env-" + secrets.token_urlsafe(24)
SECRETS.update({TOKEN, ENV_VALUE})
REMOTE = {
    "name": "remote",
    "url": "https://mcp.example.com/mcp?team=blue",
    "headers": {"Authorization": f"Bearer {TOKEN}"},
    "enabled": False,
    "description": "A remote server",
}


async def add(client, body: dict, status: int = 201) -> dict:
    resp = await client.admin.post(PATH, json=body)
    assert resp.status == status, await resp.text()
    return await resp.json()


async def listed(client) -> dict[str, dict]:
    resp = await client.admin.get(PATH)
    assert resp.status == 200
    return {u["name"]: u for u in (await resp.json())["upstreams"]}


def stored_rows(client) -> list[tuple[str, str]]:
    """What the store holds, read with sqlite3 itself."""
    url = client.server.app[SETTINGS].resolved_database_url
    with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as db:
        return db.execute("SELECT name, spec FROM upstreams").fetchall()


async def test_an_added_upstream_is_listed_with_its_options_and_never_its_credential(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"local": {"command": "x", "enabled": False}}))
    view = await add(client, REMOTE)
    assert view["name"] == "remote" and view["source"] == "admin" and view["state"] == "disabled"
    assert view["options"]["url"] == "https://mcp.example.com/mcp"  # never the query: it may hold a credential
    assert view["options"]["headers"] == ["Authorization"] and view["created_by"] == "admin"
    everything = await listed(client)
    assert everything["local"]["source"] == "settings" and everything["local"]["options"]["command"] == "x"
    assert everything["remote"]["options"]["description"] == "A remote server"
    for answer in (await client.admin.get(PATH), await client.admin.get(f"{PATH}/remote")):
        assert TOKEN not in await answer.text()
    [(name, spec)] = stored_rows(client)
    assert name == "remote" and TOKEN not in spec and '"sealed": "v1.' in spec


async def test_every_instance_reads_the_same_store_and_sees_the_upstream(make_client, make_settings, make_server):
    client = await make_client()
    await add(client, REMOTE)
    other = await make_server(make_settings())  # the same data_dir: the same store and secret
    assert [c.name for c in other.app[GATEWAY].configs] == ["remote"]
    assert other.app[GATEWAY].configs[0].headers["Authorization"].text == f"Bearer {TOKEN}"


async def test_without_the_broadcast_an_instance_reads_the_store_again_on_its_own(make_client, monkeypatch):
    """No Redis: each server hears only itself, and reads the store every STORE_POLL_SECONDS."""
    monkeypatch.setattr(gateway_module, "STORE_POLL_SECONDS", 0.01)
    first = await make_client()
    gateway = (await make_client()).server.app[GATEWAY]
    seen = asyncio.Event()
    apply = gateway._apply

    def watched(stored):
        apply(stored)
        if any(c.name == "remote" for c in gateway.configs):
            seen.set()

    monkeypatch.setattr(gateway, "_apply", watched)
    await add(first, REMOTE)
    await asyncio.wait_for(seen.wait(), 30)
    await first.admin.delete(f"{PATH}/remote")
    seen.clear()
    monkeypatch.setattr(gateway, "_apply", lambda stored: (apply(stored), seen.set() if not gateway.configs else None))
    await asyncio.wait_for(seen.wait(), 30)


async def test_scopes_may_name_an_added_upstream_and_not_a_removed_one(client):
    refused = await client.admin.post("/api/admin/keys", json={"name": "k", "scopes": ["remote__*"]})
    assert refused.status == 422
    await add(client, REMOTE)
    for scopes in (["remote__*"], ["upstream:remote"], ["remote__add"]):
        await create_key(client.admin, scopes=scopes)
    # the console's public configuration names this server's own tools only: an upstream's may be
    # internal, and the signed-in page reads them from the admin API
    config = await (await client.anonymous.get("/admin/config.json")).json()
    assert "get_forecast" in config["tools"]
    assert not [name for name in config["tools"] if "remote" in name]
    (shown,) = (await (await client.admin.get(PATH)).json())["upstreams"]
    assert shown["grants"] == ["remote__*", "upstream:remote"]  # what the signed-in console offers
    assert (await client.admin.delete(f"{PATH}/remote")).status == 204
    refused = await client.admin.post("/api/admin/keys", json={"name": "k", "scopes": ["remote__*"]})
    assert refused.status == 422


async def test_a_change_replaces_the_options_given_and_null_restores_a_default(client):
    await add(client, {**REMOTE, "timeout": 5})
    resp = await client.admin.patch(f"{PATH}/remote", json={"timeout": None, "description": "Changed"})
    assert resp.status == 200, await resp.text()
    view = await resp.json()
    assert view["options"]["timeout"] == 60.0 and view["options"]["description"] == "Changed"
    assert view["options"]["headers"] == ["Authorization"]  # kept, still sealed
    [config] = client.server.app[GATEWAY].configs
    assert config.headers["Authorization"].text == f"Bearer {TOKEN}" and config.description == "Changed"


async def test_removing_an_upstream_takes_it_off_the_list(client):
    await add(client, REMOTE)
    assert (await client.admin.delete(f"{PATH}/remote")).status == 204
    assert await listed(client) == {}
    assert stored_rows(client) == []


async def test_each_change_is_audited_with_the_actor_and_without_the_credential(client):
    await add(client, REMOTE)
    await client.admin.patch(f"{PATH}/remote", json={"description": "x"})
    await client.admin.delete(f"{PATH}/remote")
    events = [e for e in drain_logs() if e.get("event") == "admin action" and e.get("upstream") == "remote"]
    assert [e["action"] for e in events][-3:] == ["upstream.add", "upstream.update", "upstream.remove"]
    added = events[-3]
    assert added["actor"] == "admin" and added["after"]["headers"] == ["Authorization"] and added["before"] is None
    assert events[-1]["after"] is None


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ([], "_schema", "JSON object"),
        ({"url": "https://x.example/mcp"}, "name", "name"),
        ({**REMOTE, "name": 7}, "name", "name"),
        ({**REMOTE, "name": "Remote"}, "name", "lower-case"),
        ({**REMOTE, "name": "r" * 33}, "name", "at most 32"),
        ({**REMOTE, "name": "re\nmote"}, "name", "lower-case"),
        ({**REMOTE, "name": ""}, "name", "lower-case"),
        ({**REMOTE, "colour": "blue"}, "colour", "unknown option"),
        ({**REMOTE, "timout": 3}, "timout", "unknown option"),
        ({"name": "remote", "urll": "https://x.example/mcp"}, "urll", "needs a command (stdio) or a url"),
        ({**REMOTE, "timeout": "soon"}, "timeout", "seconds"),
        ({**REMOTE, "timeout": 0}, "timeout", "seconds"),
        ({**REMOTE, "timeout": True}, "timeout", "seconds"),
        ({**REMOTE, "enabled": "no"}, "enabled", "true or false"),
        ({**REMOTE, "url": "ftp://x.example/"}, "url", "http(s) URL"),
        ({**REMOTE, "url": "https://user:pw@x.example/"}, "url", "credentials"),
        ({**REMOTE, "url": "https://x.example:99999/"}, "url", "port"),
        ({**REMOTE, "url": None}, "url", "non-empty text"),
        ({**REMOTE, "transport": "pigeon"}, "transport", "one of"),
        ({**REMOTE, "headers": {"Authorization": {"file": "/etc/shadow"}}}, "headers", "text here"),
        ({**REMOTE, "headers": {"Authorization": {"env": "SKYWARDEN_ADMIN_TOKEN"}}}, "headers", "text here"),
        ({**REMOTE, "headers": {"Authorization": 5}}, "headers", "text here"),
        ({**REMOTE, "headers": {"Host": "x"}}, "headers", "set by the transport"),
        ({**REMOTE, "headers": {"Bad Name": "x"}}, "headers", "header name"),
        ({**REMOTE, "headers": {"X-A": "a\x00b"}}, "headers", "NUL"),
        ({**REMOTE, "headers": ["Authorization"]}, "headers", "table"),
        ({**REMOTE, "tools": "add"}, "tools", "array"),
        ({**REMOTE, "tools": ["a b"]}, "tools", "tool name"),
        ({**REMOTE, "max_result_bytes": 10}, "max_result_bytes", "bytes"),
        ({"name": "calc", "command": "/bin/sh", "args": ["-c", "id"]}, "command", "upstream_admin_commands"),
        ({"name": "calc", "command": "x", "env": {"HOME": {"env": "SKYWARDEN_ADMIN_TOKEN"}}}, "env", "text here"),
        ({"name": "calc", "command": "x", "env": {"1X": "y"}}, "env", "environment variable"),
        ({"name": "calc", "command": "x\x00y"}, "command", "NUL"),
        ({"name": "calc", "command": "x", "args": "-v"}, "args", "array"),
        ({**REMOTE, "headers": {"Authorization": "Bearer a\r\nX-Injected: yes"}}, "headers", "visible ASCII"),
        ({**REMOTE, "headers": {"X-A": "caf\u00e9"}}, "headers", "visible ASCII"),
        ({**REMOTE, "headers": {"X-A": "a\x7fb"}}, "headers", "visible ASCII"),
        ({**REMOTE, "url": "https://exa mple.com/mcp"}, "url", "spaces or control"),
        ({**REMOTE, "url": "https://example.com/m\tcp"}, "url", "spaces or control"),
        ({**REMOTE, "allow_private": True}, "allow_private", "upstream_allowed_networks"),
    ],
)
async def test_a_malformed_upstream_is_refused_naming_what_is_wrong_and_nothing_is_stored(client, body, field, words):
    resp = await client.admin.post(PATH, json=body)
    assert resp.status == 422 and resp.content_type == "application/problem+json"
    problem = await resp.json()
    [error] = problem["errors"]
    assert error["field"] == field and words in " ".join(error["messages"]), problem
    text = await resp.text()
    assert "Traceback" not in text and "/etc/shadow" not in text
    assert await listed(client) == {} and stored_rows(client) == []


@pytest.mark.parametrize(
    ("body", "status"),
    [(b"", 400), (b"{", 400), (b"[" * 200 + b"]" * 200, 400), (b"null", 422), (b'"calc"', 422)],
)
async def test_a_body_that_is_no_upstream_is_refused(client, body, status):
    resp = await client.admin.post(PATH, data=body, headers={"Content-Type": "application/json"})
    assert resp.status == status and resp.content_type == "application/problem+json"
    assert stored_rows(client) == []


async def test_a_malformed_change_is_refused_and_the_stored_upstream_is_kept(client):
    await add(client, REMOTE)
    for body, field in (({}, "_schema"), ({"name": "other"}, "name"), ({"timeout": -1}, "timeout"), ([1], "_schema")):
        resp = await client.admin.patch(f"{PATH}/remote", json=body)
        assert resp.status == 422, (body, await resp.text())
        assert (await resp.json())["errors"][0]["field"] == field
    assert (await listed(client))["remote"]["options"]["timeout"] == 60.0


async def test_names_that_clash_or_are_unknown_get_a_conflict_or_not_found(make_client, make_settings):
    client = await make_client(make_settings(upstreams={"local": {"command": "x", "enabled": False}}))
    await add(client, REMOTE)
    assert (await add(client, REMOTE, 409))["type"].endswith("upstream-conflict")
    declared = await add(client, {**REMOTE, "name": "local"}, 409)
    assert "declared in settings" in declared["detail"]
    assert (await client.admin.patch(f"{PATH}/local", json={"enabled": True})).status == 409
    assert (await client.admin.delete(f"{PATH}/local")).status == 409
    assert (await client.admin.get(f"{PATH}/local")).status == 200
    for method in ("GET", "PATCH", "DELETE"):
        resp = await client.admin.request(method, f"{PATH}/nothing", json={"enabled": True})
        assert resp.status == 404 and (await resp.json())["type"].endswith("upstream-not-found"), method


async def test_at_most_so_many_upstreams_are_kept(client, monkeypatch):
    monkeypatch.setattr(upstream_operations, "MAX_STORED_UPSTREAMS", 2)
    for name in ("one", "two"):
        await add(client, {**REMOTE, "name": name})
    assert "At most 2" in (await add(client, {**REMOTE, "name": "three"}, 409))["detail"]


async def test_only_an_admin_may_see_or_change_upstreams(client):
    for method in ("GET", "POST"):
        resp = await client.request(method, PATH, json=REMOTE)  # an API key with every scope
        assert resp.status in (401, 403), method
    assert stored_rows(client) == []


async def test_a_stdio_upstream_needs_its_command_listed_by_the_operator(make_client, make_settings):
    client = await make_client(make_settings(upstream_admin_commands=[sys.executable], upstream_admin_env=["T"]))
    body = {"name": "calc", "command": sys.executable, "args": ["-m", "x"], "env": {"T": ENV_VALUE}, "enabled": False}
    view = await add(client, body)
    assert view["options"]["command"] == sys.executable and view["options"]["env"] == ["T"]
    assert ENV_VALUE not in str(stored_rows(client))
    other = await add(client, {**body, "name": "other", "command": "/bin/sh"}, 422)
    assert sys.executable in other["errors"][0]["messages"][0]  # what the operator allows


async def test_a_stored_command_the_server_does_not_allow_is_not_run(make_client, make_settings, make_server):
    client = await make_client(make_settings(upstream_admin_commands=["*"]))
    await add(client, {"name": "calc", "command": "/bin/sh", "enabled": False})
    logged = len(drain_logs())
    stricter = await make_client(make_settings())  # the same store; this server allows no command
    view = (await listed(stricter))["calc"]
    assert view["state"] == "unusable" and "upstream_admin_commands" in view["problem"]
    assert stricter.server.app[GATEWAY].configs == ()
    ready = await (await stricter.anonymous.get("/api/health/ready")).json()
    assert ready["status"] == "ready" and ready["upstreams"] == {"calc": "unusable"}
    await stricter.server.app[GATEWAY].refresh()  # the store read again: the same problem is not logged again
    events = drain_logs()[logged:]
    left_out = [e for e in events if e.get("event") == "stored upstream left out" and e.get("upstream") == "calc"]
    assert len(left_out) == 1 and "upstream_admin_commands" in left_out[0]["reason"]


async def test_credentials_sealed_with_another_secret_must_be_given_again(make_client, make_settings, tmp_path):
    first = await make_client(make_settings(secret="first-server-secret-0123456789abcdef"))
    await add(first, REMOTE)
    second = await make_client(make_settings(secret="second-server-secret-0123456789abcdef"))
    view = (await listed(second))["remote"]
    assert view["state"] == "unusable" and "another server secret" in view["problem"]
    kept = await second.admin.patch(f"{PATH}/remote", json={"description": "x"})
    assert kept.status == 409 and "give headers again" in (await kept.json())["detail"]
    resp = await second.admin.patch(f"{PATH}/remote", json={"headers": {"Authorization": f"Bearer {TOKEN}"}})
    assert resp.status == 200 and (await resp.json())["state"] == "disabled"


@pytest.mark.parametrize(
    "variable",
    ["LD_PRELOAD", "PYTHONWARNINGS", "PYTHONSTARTUP", "NODE_OPTIONS", "BASH_ENV", "PATH", "ld_preload", "BROWSER"],
)
async def test_a_variable_that_steers_a_loader_or_interpreter_is_never_an_admins(make_client, make_settings, variable):
    client = await make_client(make_settings(upstream_admin_commands=["*"], upstream_admin_env=["*"]))
    body = {"name": "calc", "command": "node", "env": {variable: "x"}, "enabled": False}
    problem = await add(client, body, 422)
    assert problem["errors"][0]["field"] == "env" and "may not set it" in problem["errors"][0]["messages"][0]
    assert stored_rows(client) == []


async def test_only_the_variables_the_operator_names_may_be_given(make_client, make_settings):
    client = await make_client(make_settings(upstream_admin_commands=["*"], upstream_admin_env=["CALC_*"]))
    await add(client, {"name": "calc", "command": "x", "env": {"CALC_TOKEN": ENV_VALUE}, "enabled": False})
    problem = await add(client, {"name": "other", "command": "x", "env": {"OTHER": "y"}, "enabled": False}, 422)
    assert (
        "upstream_admin_env" in problem["errors"][0]["messages"][0] and "CALC_*" in problem["errors"][0]["messages"][0]
    )


async def test_moving_an_upstream_needs_its_credentials_again(client):
    await add(client, REMOTE)
    moved = await client.admin.patch(f"{PATH}/remote", json={"url": "https://elsewhere.example/mcp"})
    assert moved.status == 409 and "give headers" in (await moved.json())["detail"]
    [(_, spec)] = stored_rows(client)
    assert "mcp.example.com" in spec  # unchanged
    given = {"url": "https://elsewhere.example/mcp", "headers": {"Authorization": f"Bearer {TOKEN}"}}
    assert (await client.admin.patch(f"{PATH}/remote", json=given)).status == 200


async def test_a_row_moved_in_the_database_does_not_open_its_credentials(client, make_client, make_settings):
    await add(client, REMOTE)
    url = client.server.app[SETTINGS].resolved_database_url.removeprefix("sqlite:///")
    with contextlib.closing(sqlite3.connect(url)) as db:
        db.execute("UPDATE upstreams SET spec = replace(spec, 'mcp.example.com', 'evil.example')")
        db.commit()
    view = (await listed(client))["remote"]
    assert view["state"] == "unusable" and "cannot be opened" in view["problem"]


async def test_adds_racing_each_other_keep_the_bound(client, monkeypatch):
    monkeypatch.setattr(upstream_operations, "MAX_STORED_UPSTREAMS", 3)
    answers = await asyncio.gather(*(client.admin.post(PATH, json={**REMOTE, "name": f"u{i}"}) for i in range(8)))
    assert sorted(a.status for a in answers) == [201] * 3 + [409] * 5
    assert len(stored_rows(client)) == 3


async def test_an_admins_header_value_never_blanks_the_audit_trail_and_goes_with_its_upstream(client):
    from skywarden.server.observability import redaction

    value = "upstream.remove"  # what the audit line of a removal says
    await add(client, {**REMOTE, "headers": {"X-Trick": value, "Authorization": f"Bearer {TOKEN}"}})
    assert value in redaction.owned_secrets
    assert (await client.admin.delete(f"{PATH}/remote")).status == 204
    removal = [e for e in drain_logs() if e.get("upstream") == "remote" and e.get("event") == "admin action"][-1]
    assert removal["action"] == "upstream.remove"
    assert value not in redaction.owned_secrets and TOKEN not in redaction.owned_secrets
