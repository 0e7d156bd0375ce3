"""``skywarden`` as a user runs it: a real process, real HTTP over loopback."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from skywarden.server.settings import load_settings
from tests.support.admin import ADMIN_HEADERS, ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.server_process import start_server

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "skywarden.server.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )


def test_serve_help_lists_every_environment_variable():
    from skywarden.server.settings import env_name, setting_fields

    out = run_cli("serve", "--help").stdout
    for f in setting_fields():
        assert env_name(f.name) in out


def test_invalid_setting_fails_with_one_line(tmp_path):
    result = run_cli("serve", "--port", "eighty", "--data-dir", str(tmp_path))
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "--port" in result.stderr and "Traceback" not in result.stderr


def test_unknown_flag_is_refused():
    result = run_cli("serve", "--colour", "blue")
    assert result.returncode == 2 and "unrecognized arguments" in result.stderr


def test_tools_command_lists_distributions():
    result = run_cli("tools")
    assert result.returncode == 0
    assert "get_forecast" in result.stdout and "skywarden 0.1.0" in result.stdout


async def test_serve_answers_and_shuts_down_gracefully(tmp_path, fake_nws):
    release, reached = asyncio.Event(), asyncio.Event()

    async def hold(request):
        if request.path.startswith("/points/"):
            reached.set()
            await release.wait()

    fake_nws.hook = hold
    server = await start_server(
        {
            "SKYWARDEN_DATA_DIR": str(tmp_path),
            "SKYWARDEN_NWS_BASE_URL": fake_nws.url,  # the old name of weather_base_url: still works, with a warning
            "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    async with aiohttp.ClientSession() as http:
        async with http.get(server.url + "/api/health") as resp:
            assert resp.status == 200
        async with http.post(server.url + "/api/admin/keys", json={"name": "cli"}, headers=ADMIN_HEADERS) as resp:
            key = (await resp.json())["key"]
            SECRETS.add(key)
        in_flight = asyncio.create_task(
            http.post(
                server.url + "/api/mcp/tools/get_forecast",
                json={"latitude": 39.7456, "longitude": -97.0892},
                headers={"X-API-Key": key},
            )
        )
        await asyncio.wait_for(reached.wait(), 30)
        server.terminate()
        await server.wait_for_event("skywarden stopping")  # no longer accepting, call still in flight
        release.set()
        resp = await in_flight
        assert resp.status == 200
        assert (await resp.json())["isError"] is False
    code = await server.stop()
    assert code == 0, "\n".join(server.raw)
    assert any(e.get("event") == "skywarden stopped" for e in server.lines)
    [warned] = [e for e in server.lines if e.get("event") == "deprecated setting"]
    assert warned["level"] == "warning" and warned["source"] == "SKYWARDEN_NWS_BASE_URL"
    assert (warned["setting"], warned["replacement"]) == ("nws_base_url", "weather_base_url")


def _clean_env(**extra: str) -> dict[str, str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    env.update(extra)
    return env


async def test_a_failed_start_keeps_no_admin_token_and_the_next_start_prints_one(tmp_path):
    import re
    import socket

    data = tmp_path / "data"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = run_cli("serve", "--data-dir", str(data), "--port", str(port), env=_clean_env())
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert f"cannot listen on 127.0.0.1:{port}" in result.stderr and "--port" in result.stderr
    assert "skw_admin_" not in result.stdout + result.stderr  # no token shown for a server that never ran
    assert "skywarden stopping" not in result.stdout + result.stderr  # nor a farewell
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (data / "admin-token.sha256").exists()

    server = await start_server({"SKYWARDEN_DATA_DIR": str(data), "SKYWARDEN_ADMIN_TOKEN": ""})
    try:
        tokens = re.findall(r"skw_admin_\w+", "\n".join(server.raw))
        assert len(tokens) == 1  # the deliberate one-time display on stderr; never in a log line:
        assert not [event for event in server.lines if tokens[0] in json.dumps(event)]
        async with aiohttp.ClientSession() as http:
            resp = await http.get(server.url + "/api/admin/keys", headers={"Authorization": f"Bearer {tokens[0]}"})
            assert resp.status == 200
    finally:
        await server.stop()
    assert (data / "admin-token.sha256").exists()


@pytest.mark.parametrize("make_bad", ["file", "read-only"])
def test_an_unusable_data_dir_names_the_setting(tmp_path, make_bad):
    import os

    bad = tmp_path / "data"
    if make_bad == "file":
        bad.write_text("not a folder")
    else:
        bad.mkdir(mode=0o500)
        if os.geteuid() == 0:  # root writes anywhere: make the parent a file instead
            bad.rmdir()
            bad.write_text("x")
            bad = bad / "sub"
    result = run_cli("serve", "--data-dir", str(bad), env=_clean_env())
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "invalid setting data_dir" in result.stderr and "SKYWARDEN_DATA_DIR" in result.stderr
    assert "[Errno" not in result.stderr


def test_a_short_admin_token_names_its_source(tmp_path):
    result = run_cli("serve", "--data-dir", str(tmp_path), env=_clean_env(SKYWARDEN_ADMIN_TOKEN="short"))
    assert result.returncode == 2 and "SKYWARDEN_ADMIN_TOKEN" in result.stderr and "at least 32" in result.stderr
    assert "short" not in result.stderr.replace("SKYWARDEN", "")


@pytest.mark.parametrize(
    ("database_url", "shown"),
    [
        ("sqlite:///relative/keys.db", str((Path.cwd() / "relative" / "keys.db").resolve())),
        ("postgresql://skw:hunter2-secret@db.internal:5432/keys?sslmode=require&password=x", None),
    ],
)
def test_the_start_up_line_says_where_the_keys_are_and_never_a_password(database_url, shown):
    from skywarden.server.cli.serve import mode

    settings = load_settings(cli={"database_url": database_url}, environ={})
    where = mode(settings)["store_at"]
    if shown is not None:
        assert where == shown
    else:
        assert where == "postgresql://skw@db.internal:5432/keys?sslmode=require"
