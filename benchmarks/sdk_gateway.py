"""A gateway built on the official MCP SDK, for the gateway comparison in suite.py.

What a team would write with the SDK alone to put one MCP server behind one HTTP endpoint: an
``MCPServer`` (served as sdk_server.py serves it: uvicorn, stateless, JSON answers, the one-key
check) whose ``get_forecast`` forwards each call through one SDK ``Client`` to the upstream and
returns its result as it came. The client is opened by the first call and kept.

Run: python benchmarks/sdk_gateway.py PORT KEY UPSTREAM [uvloop|asyncio] [CORE]
UPSTREAM: a Streamable HTTP URL (``URL#X-API-Key-value``), ``stdio:NWS_URL`` (sdk_server.py
started as a stdio server) or ``fast:RESULT_FILE`` (fast_upstream.py, answering with that
file's result); a stdio upstream is pinned to CORE when it is given.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

import httpx2
import uvicorn
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult

sys.path.insert(0, str(Path(__file__).resolve().parent))

from sdk_server import OneKey

server = MCPServer("sdk-gateway")
upstream: list[str] = []  # main() sets it from the command line
upstream_core: list[str] = []  # and the core a stdio upstream is pinned to, if given
clients: list[Any] = []
_ready: list[asyncio.Event] = []


async def _keep_client() -> None:
    """Hold the upstream's client open for the life of the process (its own task: the SDK's
    task groups must stay in one task)."""
    where = upstream[0]
    kind, _, rest = where.partition(":")
    if kind in ("stdio", "fast"):
        here = Path(__file__).resolve().parent
        if kind == "stdio":
            argv = [sys.executable, str(here / "sdk_server.py"), "stdio", "-", rest]
        else:
            argv = [sys.executable, str(here / "fast_upstream.py"), rest]
        if upstream_core:
            argv = ["taskset", "-c", upstream_core[0], *argv]
        transport = stdio_client(StdioServerParameters(command=argv[0], args=argv[1:]))
        async with Client(transport, mode="auto") as client:
            clients.append(client)
            _ready[0].set()
            await asyncio.Event().wait()
    url, _, key = where.partition("#")
    async with httpx2.AsyncClient(headers={"X-API-Key": key}) as http:
        async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
            clients.append(client)
            _ready[0].set()
            await asyncio.Event().wait()


async def _client() -> Any:
    if not _ready:
        _ready.append(asyncio.Event())
        asyncio.get_running_loop().create_task(_keep_client())
    await _ready[0].wait()
    return clients[0]


@server.tool(name="get_forecast", description="The forecast, from the upstream.")
async def get_forecast(latitude: float, longitude: float) -> CallToolResult:
    client = await _client()
    return await client.call_tool("get_forecast", {"latitude": latitude, "longitude": longitude})


def main() -> None:
    port, key, where = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    loop = sys.argv[4] if len(sys.argv) > 4 else "asyncio"
    upstream.append(where)
    upstream_core.extend(sys.argv[5:6])
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(OneKey(app, key), host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop)


if __name__ == "__main__":
    main()
