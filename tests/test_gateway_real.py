"""The gateway with the real servers and clients of the field: the official reference server
``@modelcontextprotocol/server-everything`` (npm) over stdio and over its Streamable HTTP mode,
``mcp-remote`` calling an upstream tool through Skywarden, and ``skywarden serve`` killed with
SIGKILL leaving no upstream process behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.node_tools import ensure_tools, node_env, tool_command
from tests.support.server_process import free_port, start_server

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parent.parent
PROMPTLY = 30


@pytest.fixture(scope="module")
def node_tools() -> Path:
    return ensure_tools()


def everything_stdio(prefix: Path) -> dict:
    node, script = tool_command(prefix, "server-everything")
    return {"command": node, "args": [script, "stdio"]}


@asynccontextmanager
async def everything_http(prefix: Path):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        *tool_command(prefix, "server-everything"),
        "streamableHttp",
        env=node_env(prefix, {"PORT": str(port)}),
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async for line in proc.stderr:
            if b"listening on port" in line:
                break
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.kill()
        await proc.wait()


async def call(client, tool: str, arguments: dict) -> dict:
    answer = await client.post(f"/api/mcp/tools/{tool}", json=arguments)
    assert answer.status == 200, await answer.text()
    return await answer.json()


async def check_everything(client) -> None:
    tools = {t["name"]: t for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}
    assert {"everything__echo", "everything__get-sum", "everything__get-structured-content"} <= set(tools)
    assert "outputSchema" in tools["everything__get-structured-content"]
    echo = await call(client, "everything__echo", {"message": "through Skywarden"})
    assert echo["content"][0]["text"] == "Echo: through Skywarden"
    total = await call(client, "everything__get-sum", {"a": 20, "b": 22})
    assert "42" in total["content"][0]["text"]
    weather = await call(client, "everything__get-structured-content", {"location": "New York"})
    assert weather["isError"] is False and "temperature" in weather["structuredContent"]
    image = await call(client, "everything__get-tiny-image", {})
    assert any(block["type"] == "image" for block in image["content"])
    refused = await client.post("/api/mcp/tools/everything__get-sum", json={"a": "twenty"})
    assert refused.status == 422


async def test_server_everything_over_stdio(node_tools, make_client, make_settings):
    client = await make_client(make_settings(upstreams={"everything": everything_stdio(node_tools)}))
    await check_everything(client)


async def test_server_everything_over_streamable_http(node_tools, make_client, make_settings):
    async with everything_http(node_tools) as url:
        client = await make_client(make_settings(upstreams={"everything": {"url": url, "allow_private": True}}))
        await check_everything(client)
        await client.close()


def calc_upstream() -> str:
    return json.dumps(
        {
            "calc": {
                "command": sys.executable,
                "args": ["-m", "tests.support.upstream_server", "stdio"],
                "cwd": str(ROOT),
            }
        }
    )


@pytest.fixture
async def live(tmp_path):
    server = await start_server(
        {
            "SKYWARDEN_DATA_DIR": str(tmp_path),
            "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
            "SKYWARDEN_UPSTREAMS": calc_upstream(),
        }
    )
    await server.wait_for(lambda e: e.get("event") == "upstream connected")
    key = await server.create_key(ADMIN_TOKEN, name="bridge", scopes=["upstream:calc"])
    SECRETS.add(key)
    yield server, key
    if server.proc.returncode is None:
        await server.stop()


async def test_mcp_remote_calls_an_upstream_tool_through_skywarden(node_tools, live, tmp_path):
    server, key = live
    proc = await asyncio.create_subprocess_exec(
        *tool_command(node_tools, "mcp-remote"),
        f"{server.url}/mcp",
        "--header",
        f"X-API-Key:{key}",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=node_env(node_tools, {"HOME": str(tmp_path)}),
    )
    assert proc.stdin is not None and proc.stdout is not None

    async def ask(message: dict) -> dict:
        proc.stdin.write(json.dumps(message).encode() + b"\n")
        await proc.stdin.drain()
        while True:
            line = json.loads(await asyncio.wait_for(proc.stdout.readline(), PROMPTLY))
            if line.get("id") == message["id"]:
                return line

    try:
        init = {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        assert "result" in await ask({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init})
        proc.stdin.write(b'{"jsonrpc":"2.0","method":"notifications/initialized"}\n')
        listed = await ask({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        names = {t["name"] for t in listed["result"]["tools"]}
        assert "calc__add" in names and "get_forecast" not in names
        params = {"name": "calc__add", "arguments": {"a": 4, "b": 5}}
        called = await ask({"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": params})
        assert called["result"]["structuredContent"] == {"total": 9}
    finally:
        proc.kill()
        await proc.wait()


async def gone(pid: int) -> None:
    """Until process ``pid`` has ended: its pidfd becomes readable then."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    ended = asyncio.get_running_loop().create_future()
    loop = asyncio.get_running_loop()
    loop.add_reader(fd, lambda: ended.done() or ended.set_result(None))
    try:
        await ended
    finally:
        loop.remove_reader(fd)
        os.close(fd)


async def test_a_killed_server_leaves_no_upstream_process_behind(live):
    server, key = live
    async with aiohttp.ClientSession(headers={"X-API-Key": key}) as http:
        pids = []
        for tool in ("pid", "grandchild"):
            async with http.post(f"{server.url}/api/mcp/tools/calc__{tool}", json={}) as answer:
                pids.append((await answer.json())["structuredContent"]["result"])
    for pid in pids:
        os.kill(pid, 0)  # both run
    guards = [int(p) for p in open(f"/proc/{server.proc.pid}/task/{server.proc.pid}/children").read().split()]
    assert guards
    server.proc.send_signal(signal.SIGKILL)
    await server.proc.wait()
    # the upstream would end on its own at the end of its input; its child would not, but for the guard,
    # which ends too (it reaps the upstream first: nothing is left, not even a zombie)
    await asyncio.wait_for(asyncio.gather(*(gone(pid) for pid in [*pids, *guards])), PROMPTLY)
