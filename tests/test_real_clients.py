"""The clients desktop MCP apps use, against a real server with the default limits: npm
``mcp-remote`` (the stdio bridge) and the MCP Inspector CLI.

- Ten starts of mcp-remote within a minute with a valid key all succeed: their keyless probes
  (OAuth discovery, registration) are public 404s that count toward nothing.
- With a wrong key each client exits promptly and shows the server's explanation, instead of
  starting a browser sign-in; and the valid key still works afterwards from the same address.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.node_tools import ensure_tools, node_env, tool_command
from tests.support.server_process import start_server

pytestmark = pytest.mark.slow

INIT = (
    b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{"protocolVersion":"2025-06-18",'
    b'"capabilities":{},"clientInfo":{"name":"real-client-test","version":"1"}}}\n'
)
PROMPTLY = 30  # seconds: a client that waits for a browser sign-in never gets here
WRONG_KEY = "skw_live_" + "W" * 50


@pytest.fixture(scope="module")
def node_tools() -> Path:
    return ensure_tools()


@pytest.fixture
async def live(tmp_path, fake_nws):
    server = await start_server(
        {
            "SKYWARDEN_DATA_DIR": str(tmp_path),
            "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
            "SKYWARDEN_WEATHER_BASE_URL": fake_nws.url,
        }
    )
    key = await server.create_key(ADMIN_TOKEN, name="desktop")
    SECRETS.add(key)
    yield server, key
    await server.stop()


async def mcp_remote(prefix: Path, url: str, key: str, home: Path) -> tuple[int | None, bytes, str]:
    """Start mcp-remote, send initialize on stdin; (exit code or None if still running, first stdout line, stderr)."""
    proc = await asyncio.create_subprocess_exec(
        *tool_command(prefix, "mcp-remote"),
        url,
        "--header",
        f"X-API-Key:{key}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=node_env(prefix, {"HOME": str(home)}),
    )
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    try:
        proc.stdin.write(INIT)
        await proc.stdin.drain()
    except (BrokenPipeError, ConnectionResetError):
        pass  # it refused at start and exited before reading: what it said is on stderr
    try:
        first = await asyncio.wait_for(proc.stdout.readline(), PROMPTLY)
    except TimeoutError:
        proc.kill()
        raise
    proc.stdin.close()  # the local client goes away: the bridge ends
    try:
        code = await asyncio.wait_for(proc.wait(), PROMPTLY)
    finally:
        if proc.returncode is None:
            proc.kill()
    return code, first, (await proc.stderr.read()).decode(errors="replace")


async def test_ten_mcp_remote_starts_with_a_valid_key_all_succeed(node_tools, live, tmp_path):
    server, key = live
    for _ in range(10):
        _, first, err = await mcp_remote(node_tools, server.url + "/mcp", key, tmp_path)
        assert b'"protocolVersion":"2025-06-18"' in first, err[-2000:]


async def test_mcp_remote_with_a_wrong_key_exits_promptly_and_says_why(node_tools, live, tmp_path):
    server, key = live
    for attempt in range(3):
        code, first, err = await mcp_remote(node_tools, server.url + "/mcp", WRONG_KEY, tmp_path / f"wrong{attempt}")
        assert code not in (0, None) and first == b""
        assert "HTTP status 401" in err and "API key" in err, err[-2000:]
    _, first, _ = await mcp_remote(node_tools, server.url + "/mcp", key, tmp_path / "right")  # never locked out
    assert b'"result"' in first


async def test_the_inspector_with_a_wrong_key_exits_promptly_and_says_why(node_tools, live, tmp_path):
    server, _ = live
    proc = await asyncio.create_subprocess_exec(
        "script",  # a terminal, so the Inspector would start an interactive sign-in if it saw a way to
        "-qec",
        " ".join(
            [
                *tool_command(node_tools, "inspector", "mcp-inspector"),
                "--cli",
                server.url + "/mcp",
                "--transport",
                "http",
                "--header",
                f"'X-API-Key: {WRONG_KEY}'",
                "--method",
                "tools/list",
            ]
        ),
        "/dev/null",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=node_env(node_tools, {"HOME": str(tmp_path)}),
    )
    out, _ = await asyncio.wait_for(proc.communicate(), PROMPTLY)
    text = out.decode(errors="replace")
    assert proc.returncode != 0 and "HTTP status 401" in text and "API key" in text, text[-2000:]


def test_script_is_available():
    assert any(os.access(Path(d) / "script", os.X_OK) for d in os.environ["PATH"].split(os.pathsep))
