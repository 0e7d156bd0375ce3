"""``skywarden keys`` and ``skywarden admin-token`` on the store directly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from skywarden.server.app import create_app
from skywarden.server.keys import is_well_formed
from tests.support.logs import SECRETS

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'


def cli(tmp_path, *args):
    return subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", *args, "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_create_list_show_rotate_revoke(tmp_path):
    created = cli(tmp_path, "keys", "create", "--name", "bootstrap", "--scope", "get_alerts", "--json")
    assert created.returncode == 0, created.stderr
    key = json.loads(created.stdout)
    SECRETS.add(key["key"])
    assert is_well_formed(key["key"]) and key["scopes"] == ["get_alerts"] and key["created_by"] == "cli"
    assert key["key"] not in created.stderr  # the audit line never holds the key

    listed = json.loads(cli(tmp_path, "keys", "list", "--json").stdout)
    assert [k["id"] for k in listed] == [key["id"]] and "key" not in listed[0]
    header, row = cli(tmp_path, "keys", "list").stdout.splitlines()
    assert header.split() == ["ID", "PREFIX", "STATUS", "NAME"] and row.split()[0] == key["id"]
    shown = json.loads(cli(tmp_path, "keys", "show", key["id"], "--json").stdout)
    assert shown["name"] == "bootstrap"

    rotated = json.loads(cli(tmp_path, "keys", "rotate", key["id"], "--grace-seconds", "0", "--json").stdout)
    SECRETS.add(rotated["key"])
    assert rotated["key"] != key["key"] and rotated["id"] == key["id"]

    revoked = json.loads(cli(tmp_path, "keys", "revoke", key["id"], "--reason", "done", "--json").stdout)
    assert revoked["status"] == "revoked" and revoked["revoked_reason"] == "done"


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["keys", "create", "--name", ""], "name"),
        (["keys", "create", "--name", "x", "--scope", "nope"], "unknown tool"),
        (["keys", "create", "--name", "x", "--expires-at", "soon"], "--expires-at"),
        (["keys", "create", "--name", "x", "--rate-limit", "many"], "--rate-limit"),
        (["keys", "create", "--name", "x", "--rate-limit", "1/0second"], "no window"),
        (["keys", "create", "--name", "x", "--rate-limit", "0/second"], "the amount must be"),
        (["keys", "create", "--name", "x", "--rate-limit", "5/fortnight"], "unknown unit"),
        (["keys", "create", "--name", "x", "--metadata", "{"], "--metadata"),
        (["keys", "show", "key_missing"], "no key store"),  # read-only: never creates a store
        (["keys", "rotate", "key_missing"], "no key with id"),
        (["keys", "rotate", "key_missing", "--grace-seconds", "-5"], "--grace-seconds"),
    ],
)
def test_bad_cli_input(tmp_path, args, fragment):
    result = cli(tmp_path, *args)
    assert result.returncode == 2
    assert fragment in result.stderr.lower() and "Traceback" not in result.stderr


def test_cli_flags_that_do_not_parse(tmp_path):
    result = cli(tmp_path, "keys", "rotate", "k", "--grace-seconds", "soon")
    assert result.returncode == 2 and "invalid int value" in result.stderr
    result = cli(tmp_path, "keys", "create")
    assert result.returncode == 2 and "--name" in result.stderr


async def test_cli_key_works_on_the_server(tmp_path, aiohttp_client, make_settings):
    settings = make_settings(data_dir=str(tmp_path))
    key = json.loads(cli(tmp_path, "keys", "create", "--name", "b", "--json").stdout)["key"]
    SECRETS.add(key)
    client = await aiohttp_client(create_app(settings))
    assert (await client.get("/api/mcp/tools", headers={"X-API-Key": key})).status == 200


async def test_admin_token_generated_once_and_rotated(tmp_path, aiohttp_client, make_settings):
    from skywarden.server.auth.credentials import prepare_credentials

    settings = make_settings(data_dir=str(tmp_path), admin_token="")
    first = prepare_credentials(settings)
    assert first.generated_admin_token is not None
    assert prepare_credentials(settings).generated_admin_token is not None  # nothing kept before a start
    assert first.keep_generated_admin_token() == first.generated_admin_token  # the server started
    assert prepare_credentials(settings).generated_admin_token is None  # printed once only
    assert first.generated_admin_token not in (tmp_path / "admin-token.sha256").read_text()

    rotated = cli(tmp_path, "admin-token", "rotate")
    assert rotated.returncode == 0
    new_token = next(w for w in rotated.stdout.split() if w.startswith("skw_admin_"))
    SECRETS.update({new_token, first.generated_admin_token})
    client = await aiohttp_client(create_app(settings))
    ok = await client.get("/api/admin/keys", headers={"Authorization": f"Bearer {new_token}"})
    old = await client.get("/api/admin/keys", headers={"Authorization": f"Bearer {first.generated_admin_token}"})
    assert ok.status == 200 and old.status == 401


def test_rotate_admin_token_refuses_when_configured(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", "admin-token", "rotate", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        env={"SKYWARDEN_ADMIN_TOKEN": "x" * 40, "PATH": "/usr/bin"},
        timeout=60,
    )
    assert result.returncode == 2 and "admin_token" in result.stderr


def test_short_admin_token_is_refused_at_start(tmp_path):
    result = cli(tmp_path, "serve", "--admin-token", "short")
    assert result.returncode == 2
    assert "admin_token" in result.stderr and "at least 32" in result.stderr and "short" not in result.stderr


def test_a_read_only_command_never_creates_a_store(tmp_path):
    empty = tmp_path / "elsewhere"
    result = cli(empty, "keys", "list")
    assert result.returncode == 2 and "no key store" in result.stderr and str(empty) in result.stderr
    assert not empty.exists()


def test_create_prints_no_audit_line_and_audits_to_the_data_dir(tmp_path):
    result = cli(tmp_path, "keys", "create", "--name", "quiet")
    assert result.returncode == 0, result.stderr
    key = next(line.split()[-1] for line in result.stdout.splitlines() if line.strip().startswith("key:"))
    SECRETS.add(key)
    assert "{" not in result.stderr  # one human line naming the store, no JSON
    assert f"using key store {tmp_path}" in result.stderr
    audit = [json.loads(line) for line in (tmp_path / "audit.log").read_text().splitlines()]
    assert [e["action"] for e in audit] == ["key.create"] and audit[0]["actor"] == "cli"
    assert key not in (tmp_path / "audit.log").read_text()


async def test_a_key_revoked_from_the_cli_is_refused_by_a_running_server_at_once(
    tmp_path, aiohttp_client, make_settings
):
    import asyncio

    from tests.support.services import redis_prefix

    async with redis_prefix() as (url, prefix):
        settings = make_settings(data_dir=str(tmp_path), redis_url=url, redis_key_prefix=prefix)
        created = json.loads(cli(tmp_path, "keys", "create", "--name", "b", "--json").stdout)
        SECRETS.add(created["key"])
        client = await aiohttp_client(create_app(settings))
        headers = {"X-API-Key": created["key"]}
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 200  # cached now
        revoke = ["keys", "revoke", created["id"], "--redis-url", url, "--redis-key-prefix", prefix]
        done = await asyncio.to_thread(cli, tmp_path, *revoke)
        assert done.returncode == 0, done.stderr
        assert (await client.get("/api/mcp/tools", headers=headers)).status == 401
