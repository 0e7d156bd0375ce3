"""Clients no one here wrote: the official MCP conformance suite and the MCP Inspector CLI.

Both run against a real ``skywarden serve`` process with auth on. The suite has
no header option, so tests/conformance/add-headers.mjs (a Node preload) adds the
API key to its requests.
"""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.node_tools import ensure_tools, node_env, tool_command
from tests.support.server_process import free_port, start_server

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'

PRELOAD = Path(__file__).parent / "conformance" / "add-headers.mjs"
RESULT = re.compile(r"Passed: (\d+)/(\d+), (\d+) failed")


STABLE_SCENARIOS = [
    "server-initialize",
    "ping",
    "tools-list",
    "dns-rebinding-protection",
    "server-sse-multiple-streams",
    "tools-call-simple-text",
    "tools-call-image",
    "tools-call-audio",
    "tools-call-embedded-resource",
    "tools-call-mixed-content",
    "tools-call-error",
    "tools-call-with-progress",
]
PRERELEASE_SCENARIOS = [
    ("server-stateless", "2026-07-28"),
    ("http-header-validation", "2026-07-28"),
    ("tools-list", "2026-07-28"),
    ("tools-call-simple-text", "2026-07-28"),
    ("tools-call-image", "2026-07-28"),
    ("tools-call-audio", "2026-07-28"),
    ("tools-call-embedded-resource", "2026-07-28"),
    ("tools-call-mixed-content", "2026-07-28"),
    ("tools-call-error", "2026-07-28"),
    ("tools-call-with-progress", "2026-07-28"),
    ("dns-rebinding-protection", "2026-07-28"),
    ("server-sse-multiple-streams", "2026-07-28"),
    ("server-session-lifecycle", "2025-11-25"),
    ("server-initialize", "2025-11-25"),
    ("ping", "2025-11-25"),
]


@pytest.fixture(scope="module")
def live_server(tmp_path_factory):
    """A real server process on localhost with one API key."""
    data_dir = tmp_path_factory.mktemp("conformance")
    created = subprocess.run(
        [
            sys.executable,
            "-m",
            "skywarden.server.cli",
            "keys",
            "create",
            "--name",
            "conformance",
            "--json",
            "--data-dir",
            str(data_dir),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    key = json.loads(created.stdout)["key"]
    SECRETS.add(key)
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "skywarden.server.cli",
            "serve",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--admin-token",
            ADMIN_TOKEN,
            "--log-format",
            "json",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert proc.stdout is not None
    for line in proc.stdout:  # blocks until the server says it listens (pytest-timeout guards a hang)
        if '"skywarden started"' in line:
            break
    else:
        pytest.fail("server exited before starting")
    yield f"http://localhost:{port}/mcp", key
    proc.terminate()
    proc.wait(timeout=30)


def run_conformance(prefix: Path, alias: str, url: str, key: str, scenario: str, *extra: str) -> str:
    env = node_env(
        prefix,
        {
            "SKYWARDEN_CONFORMANCE_HEADERS": json.dumps({"X-API-Key": key}),
            "SKYWARDEN_CONFORMANCE_MODULES": str(prefix / "node_modules"),
            "NODE_OPTIONS": f"--import {PRELOAD}",
        },
    )
    result = subprocess.run(
        [*tool_command(prefix, alias), "server", "--url", url, "--scenario", scenario, *extra],
        capture_output=True,
        text=True,
        env=env,
        timeout=180,
    )
    return re.sub(r"\x1b\[[0-9;]*m", "", result.stdout + result.stderr)


def assert_all_passed(output: str) -> None:
    match = RESULT.search(output)
    assert match, output[-3000:]
    passed, total, failed = map(int, match.groups())
    assert total > 0 and failed == 0 and passed == total, output[-3000:]


@pytest.fixture(scope="module")
def node_tools() -> Path:
    return ensure_tools()


@pytest.mark.parametrize("scenario", STABLE_SCENARIOS)
def test_conformance_stable(node_tools, live_server, scenario):
    url, key = live_server
    assert_all_passed(run_conformance(node_tools, "conformance-stable", url, key, scenario))


@pytest.mark.parametrize(("scenario", "version"), PRERELEASE_SCENARIOS)
def test_conformance_prerelease(node_tools, live_server, scenario, version):
    url, key = live_server
    output = run_conformance(node_tools, "conformance-prerelease", url, key, scenario, "--spec-version", version)
    assert_all_passed(output)


def test_conformance_rejects_a_request_without_the_key(node_tools, live_server):
    """The harness itself must not pass by accident: without the key nothing passes."""
    url, _ = live_server
    output = run_conformance(node_tools, "conformance-stable", url, "skw_live_wrong", "tools-list")
    match = RESULT.search(output)
    assert match is None or int(match.group(3)) > 0


async def run_inspector(prefix: Path, url: str, key: str, *args: str) -> tuple[int, str]:
    """Exit code and stdout (the JSON answer); stderr goes into the assertion message only."""
    proc = await asyncio.create_subprocess_exec(
        *tool_command(prefix, "inspector", "mcp-inspector"),
        "--cli",
        url,
        "--transport",
        "http",
        "--header",
        f"X-API-Key: {key}",
        *args,
        env=node_env(prefix),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    if proc.returncode != 0:
        return proc.returncode, out.decode() + err.decode()
    return proc.returncode, out.decode()


async def test_inspector_lists_tools_and_calls_get_forecast(node_tools, fake_nws, tmp_path):
    server = await start_server(
        {
            "SKYWARDEN_DATA_DIR": str(tmp_path),
            "SKYWARDEN_WEATHER_BASE_URL": fake_nws.url,
            "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
        }
    )
    try:
        key = await server.create_key(ADMIN_TOKEN, name="inspector")
        SECRETS.add(key)
        url = server.url + "/mcp"
        code, output = await run_inspector(node_tools, url, key, "--method", "tools/list")
        assert code == 0, output
        names = {t["name"] for t in json.loads(output[output.index("{") :])["tools"]}
        assert {"get_forecast", "get_alerts"} <= names
        code, output = await run_inspector(
            node_tools,
            url,
            key,
            "--method",
            "tools/call",
            "--tool-name",
            "get_forecast",
            "--tool-arg",
            "latitude=39.7456",
            "--tool-arg",
            "longitude=-97.0892",
        )
        assert code == 0, output
        result = json.loads(output[output.index("{") :])
        assert result["isError"] is False
        assert result["structuredContent"]["location"] == "Linn, KS"
        code, output = await run_inspector(node_tools, url, "skw_live_wrong", "--method", "tools/list")
        assert code != 0
    finally:
        await server.stop()
