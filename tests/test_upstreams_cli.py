"""``skywarden upstreams`` on the store directly: the same rules as the admin API, a running server
that shares the store picks the change up, and every malformed flag is one clear line."""

from __future__ import annotations

import asyncio
import json
import secrets
import subprocess
import sys

import pytest

from skywarden.server.appkeys import GATEWAY
from skywarden.server.gateway import gateway as gateway_module
from tests.support.logs import SECRETS

pytestmark = pytest.mark.slow  # a subprocess per command

TOKEN = "cli-upstream-token-" + secrets.token_urlsafe(24)
SECRETS.add(TOKEN)


def cli(data_dir, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", "upstreams", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_add_list_show_disable_enable_update_remove(tmp_path):
    options = {"url": "https://mcp.example.com/mcp", "headers": {"Authorization": f"Bearer {TOKEN}"}}
    added = cli(tmp_path, "add", "remote", "--options", json.dumps(options), "--json")
    assert added.returncode == 0, added.stderr
    view = json.loads(added.stdout)
    assert view["options"]["headers"] == ["Authorization"] and view["created_by"] == "cli"
    header, row = cli(tmp_path, "list").stdout.splitlines()
    assert header.split() == ["NAME", "SOURCE", "STATE", "WHERE"] and row.split()[:3] == ["remote", "admin", "enabled"]
    listed = json.loads(cli(tmp_path, "list", "--json").stdout)
    assert [u["name"] for u in listed] == ["remote"] and listed[0]["options"]["enabled"] is True
    assert json.loads(cli(tmp_path, "disable", "remote", "--json").stdout)["options"]["enabled"] is False
    assert json.loads(cli(tmp_path, "enable", "remote", "--json").stdout)["options"]["enabled"] is True
    table = tmp_path / "remote.toml"
    table.write_text('description = "From a file"\ntimeout = 5\n')
    updated = json.loads(cli(tmp_path, "update", "remote", "--options-file", str(table), "--json").stdout)
    assert updated["options"]["description"] == "From a file" and updated["options"]["timeout"] == 5.0
    shown = cli(tmp_path, "show", "remote")
    assert "From a file" in shown.stdout
    removed = cli(tmp_path, "remove", "remote")
    assert removed.returncode == 0 and json.loads(cli(tmp_path, "list", "--json").stdout) == []
    for result in (added, shown, removed):
        assert TOKEN not in result.stdout + result.stderr


async def test_a_running_server_sharing_the_store_picks_up_a_change(make_server, make_settings, monkeypatch):
    monkeypatch.setattr(gateway_module, "STORE_POLL_SECONDS", 0.01)
    settings = make_settings()
    server = await make_server(settings)
    gateway = server.app[GATEWAY]
    seen = asyncio.Event()
    apply = gateway._apply

    def watched(stored):
        apply(stored)
        if [c.name for c in gateway.configs] == ["remote"]:
            seen.set()

    monkeypatch.setattr(gateway, "_apply", watched)
    options = json.dumps({"url": "https://mcp.example.com/mcp", "enabled": False})
    done = await asyncio.to_thread(cli, settings.data_dir, "add", "remote", "--options", options)
    assert done.returncode == 0, done.stderr
    await asyncio.wait_for(seen.wait(), 10)


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["add", "remote", "--options", "{"], "--options: not valid JSON"),
        (["add", "remote", "--options", "[1]"], "must be a JSON object"),
        (["add", "remote", "--options-file", "/nonexistent/x.toml"], "cannot be read"),
        (["add", "remote", "--options", '{"url": "https://x.example/", "timeout": "soon"}'], "timeout"),
        (["add", "Remote", "--options", '{"url": "https://x.example/"}'], "lower-case"),
        (["add", "calc", "--options", '{"command": "/bin/sh"}'], "upstream_admin_commands"),
        (
            ["add", "remote", "--options", '{"url": "https://x.example/", "headers": {"A": {"file": "/etc/passwd"}}}'],
            "text here",
        ),
        (["show", "remote"], "no key store"),  # read-only: never creates a store
        (["remove", "remote"], "no stored upstream named 'remote'"),
        (["enable", "remote"], "no stored upstream named 'remote'"),
    ],
)
def test_a_malformed_command_is_one_clear_line(tmp_path, args, fragment):
    result = cli(tmp_path, *args)
    assert result.returncode == 2 and fragment in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("args", [["add", "remote"], ["add", "remote", "--options", "{}", "--options-file", "x"]])
def test_options_are_given_one_way(tmp_path, args):
    result = cli(tmp_path, *args)
    assert result.returncode == 2 and "--options" in result.stderr and "Traceback" not in result.stderr


def test_an_options_file_that_is_neither_toml_nor_json_is_refused(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_bytes(b"\xff\xfe not text")
    result = cli(tmp_path, "add", "remote", "--options-file", str(bad))
    assert result.returncode == 2 and "neither a TOML table nor a JSON object" in result.stderr
