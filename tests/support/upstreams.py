"""The upstream MCP servers of the gateway tests: tests/support/upstream_server.py over stdio (as
an upstream table) and over HTTP (a process of its own, until the block ends)."""

from __future__ import annotations

import asyncio
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from tests.support.server_process import free_port

ROOT = Path(__file__).resolve().parent.parent.parent


def stdio_upstream(**options) -> dict:
    return {
        "command": sys.executable,
        "args": ["-m", "tests.support.upstream_server", "stdio"],
        "cwd": str(ROOT),
        **options,
    }


@asynccontextmanager
async def http_upstream_process(transport: str = "streamable-http"):
    port = free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.support.upstream_server",
        transport,
        str(port),
        cwd=ROOT,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        assert proc.stderr is not None
        async for line in proc.stderr:  # uvicorn says when it listens
            if b"Uvicorn running on" in line:
                break
        path = "/mcp" if transport == "streamable-http" else "/sse"
        yield f"http://127.0.0.1:{port}{path}"
    finally:
        proc.kill()  # uvicorn would wait for the streams of a client still connected
        await proc.wait()
