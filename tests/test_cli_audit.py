"""An admin action from the CLI is never unaudited: every command that changes state opens its
audit file first and, when it cannot, refuses in one line and changes nothing; each one writes
its audit event; a write that fails afterwards ends the command non-zero."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from skywarden.server.auth.backends import open_checked, open_store
from skywarden.server.auth.records import KeyFilter, KeyRecord, utcnow
from skywarden.server.cli.main import build_parser
from tests.support.cli_runs import run_skywarden
from tests.support.logs import SECRETS
from tests.support.services import fresh_postgres_database

KEY_ID = "key_0123456789abcdef"
STATE_CHANGING = {
    "keys create",
    "keys revoke",
    "keys rotate",
    "admin-token rotate",
    "db upgrade",
    "db copy",
    *(f"upstreams {verb}" for verb in ("add", "update", "enable", "disable", "remove")),
}


def leaf_commands(parser, prefix: str = "") -> dict[str, dict]:
    """Every command the parser knows (``keys create``, ``db copy``, ...) with its defaults."""
    found = {}
    for action in parser._subparsers._group_actions if parser._subparsers else ():
        for name, sub in action.choices.items():
            full = f"{prefix} {name}".strip()
            found.update(leaf_commands(sub, full) if sub._subparsers else {full: sub._defaults})
    return found


def test_every_command_says_whether_it_changes_state():
    """A new command cannot forget: main() reads ``changes_state`` of every one (no default)."""
    commands = leaf_commands(build_parser())
    assert {"keys list", "db status", "serve", "tools"} <= set(commands)
    undeclared = sorted(name for name, defaults in commands.items() if "changes_state" not in defaults)
    assert not undeclared
    assert {name for name, defaults in commands.items() if defaults["changes_state"]} == STATE_CHANGING


async def sqlite_store_with_a_key(data: Path) -> str:
    url = f"sqlite:///{data / 'skywarden.db'}"
    store = open_store(url)
    await open_checked(store)
    now = utcnow()
    record = KeyRecord(id=KEY_ID, name="k", prefix="skw_live_Abc", environment="live", scopes=["*"], created_at=now)
    await store.create(record, key_hash="0" * 64)
    await store.close()
    return url


async def key_state(url: str) -> tuple[int, str | None, str, int, list]:
    """(keys, revoked_at, prefix, schema version, upstreams) of the store: what a refused command
    must leave alone."""
    store = open_store(url)
    await open_checked(store, migrate=False)
    try:
        records = await store.list(KeyFilter(limit=100))
        mine = next(r for r in records if r.id == KEY_ID)
        upstreams = [(u.name, u.spec) for u in await store.list_upstreams()]
        return len(records), mine.revoked_at, mine.prefix, await store.schema_version(), upstreams
    finally:
        await store.close()


def command(name: str, data: Path) -> list[str]:
    return {
        "keys create": ["keys", "create", "--name", "new"],
        "keys revoke": ["keys", "revoke", KEY_ID],
        "keys rotate": ["keys", "rotate", KEY_ID],
        "admin-token rotate": ["admin-token", "rotate"],
        "db upgrade": ["db", "upgrade"],
        "db copy": ["db", "copy", "--from", f"sqlite:///{data / 'skywarden.db'}", "--to", f"sqlite:///{data / 'c.db'}"],
        "upstreams add": ["upstreams", "add", "docs", "--options", '{"url": "https://mcp.example.com/mcp"}'],
        "upstreams update": ["upstreams", "update", "docs", "--options", '{"description": "Docs"}'],
        "upstreams disable": ["upstreams", "disable", "docs"],
        "upstreams enable": ["upstreams", "enable", "docs"],
        "upstreams remove": ["upstreams", "remove", "docs"],
    }[name] + ["--data-dir", str(data)]


def unwritable(kind: str, tmp_path: Path) -> tuple[list[str], str]:
    """Flags that point the audit somewhere it cannot be appended to, and the path the refusal names."""
    folder = tmp_path / "a-folder"
    folder.mkdir(exist_ok=True)
    places = {
        "missing-folder": ("--audit-log-file", str(tmp_path / "no" / "such" / "audit.log")),
        "a-folder": ("--audit-log-file", str(folder)),
        "log-file-in-proc": ("--log-file", "/proc/skywarden-cli.log"),
    }
    flag, path = places[kind]
    return [flag, path], path


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STATE_CHANGING))
@pytest.mark.parametrize("kind", ["missing-folder", "a-folder", "log-file-in-proc"])
async def test_an_unwritable_audit_file_refuses_before_anything_changes(tmp_path, name, kind):
    data = tmp_path / "data"
    url = await sqlite_store_with_a_key(data)
    before = await key_state(url)
    flags, path = unwritable(kind, tmp_path)
    run = await asyncio.to_thread(run_skywarden, *command(name, data), *flags)
    line = run.one_line_refusal()
    assert run.code == 2 and path in line and "nothing was changed" in line and "audit_log_file" in line, line
    assert await key_state(url) == before
    assert not (data / "server-secret").exists() and not (data / "admin-token.sha256").exists()
    assert not (data / "c.db").exists() and run.out == ""


@pytest.mark.slow
async def test_each_state_changing_command_is_audited(tmp_path):
    data = tmp_path / "data"
    await sqlite_store_with_a_key(data)
    audit = tmp_path / "audit.log"
    keys = []
    upstreams = [f"upstreams {verb}" for verb in ("add", "update", "disable", "enable", "remove")]
    others = ("keys create", "keys rotate", "keys revoke", "admin-token rotate", "db upgrade", "db copy")
    for name in (*others, *upstreams):
        json_flag = ["--json"] if name.startswith("keys") else []
        run = await asyncio.to_thread(run_skywarden, *command(name, data), *json_flag, "--audit-log-file", str(audit))
        assert run.code == 0, (name, run.err)
        if name in ("keys create", "keys rotate"):
            keys.append(kept_key(run.out))
    events = [json.loads(line) for line in audit.read_text().splitlines()]
    assert [e["action"] for e in events] == [
        "key.create",
        "key.rotate",
        "key.revoke",
        "admin_token.rotate",
        "db.upgrade",
        "db.copy",
        "upstream.add",
        *["upstream.update"] * 3,
        "upstream.remove",
    ]
    assert all(e["event"] == "admin action" and e["actor"] == "cli" and e["audit"] is True for e in events)
    assert events[4]["before"] == events[4]["after"] == 4 and events[5]["keys"] == 2 and events[5]["complete"]
    assert not any(key in audit.read_text() for key in keys)


def kept_key(out: str) -> str:
    """The key a ``--json`` command printed, registered so that no log line may hold it."""
    key = json.loads(out)["key"]
    SECRETS.add(key)
    return key


@pytest.mark.slow
async def test_break_glass_on_postgres_without_a_data_dir(tmp_path):
    """The case that used to lose its audit event: a shared store, no audit file, no data dir.
    Refused, naming the setting; with audit_log_file it works and is audited there."""
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    async with fresh_postgres_database() as url:
        base = ["--database-url", url, "--secret-file", str(secret), "--data-dir", str(tmp_path / "none")]
        refused = await asyncio.to_thread(run_skywarden, "keys", "create", "--name", "glass", *base)
        assert "audit_log_file" in refused.one_line_refusal() and not (tmp_path / "none").exists()
        store = open_store(url)
        await open_checked(store)
        assert await store.list(KeyFilter(limit=10)) == []
        await store.close()

        audit = tmp_path / "audit.log"
        made = await asyncio.to_thread(
            run_skywarden, "keys", "create", "--name", "glass", "--json", *base, "--audit-log-file", str(audit)
        )
        assert made.code == 0, made.err
        kept_key(made.out)
        key_id = json.loads(made.out)["id"]
        revoked = await asyncio.to_thread(
            run_skywarden, "keys", "revoke", key_id, *base, "--audit-log-file", str(audit)
        )
        assert revoked.code == 0, revoked.err
        actions = [json.loads(line)["action"] for line in audit.read_text().splitlines()]
        assert actions == ["key.create", "key.revoke"]

        no_secret = [a for a in base if a not in ("--secret-file", str(secret))]
        refused = await asyncio.to_thread(
            run_skywarden, "keys", "create", "--name", "x", *no_secret, "--audit-log-file", str(audit)
        )
        assert "secret_file" in refused.one_line_refusal() and not (tmp_path / "none").exists()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full")
async def test_an_audit_write_that_fails_afterwards_is_not_silent(tmp_path):
    """/dev/full opens but every write fails (a full disk): the key is made, and the command says
    its audit event was lost and exits 1."""
    data = tmp_path / "data"
    url = await sqlite_store_with_a_key(data)
    run = await asyncio.to_thread(run_skywarden, *command("keys revoke", data), "--audit-log-file", "/dev/full")
    assert run.code == 1 and "could not be written to /dev/full" in run.err
    assert (await key_state(url))[1] is not None
