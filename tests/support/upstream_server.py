"""Test-only: an upstream MCP server built with the official SDK's ``MCPServer``, for the gateway.

Run: ``python -m tests.support.upstream_server stdio`` or
``python -m tests.support.upstream_server streamable-http PORT`` (or ``sse PORT``).
Besides ordinary tools it has ones that misbehave on purpose: ``hang`` never answers, ``crash``
ends the process mid-call, ``grandchild`` starts a process that outlives it unless its group is
ended, ``grow`` adds a tool and tells the client its list changed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import anyio
from mcp.server.mcpserver import Context, MCPServer
from pydantic import BaseModel

server = MCPServer("gateway-upstream")


class Sum(BaseModel):
    total: int


@server.tool()
def add(a: int, b: int) -> Sum:
    """Add two integers."""
    return Sum(total=a + b)


@server.tool()
def echo(text: str) -> str:
    """Say the text back."""
    return text


@server.tool()
def pid() -> int:
    """The process id of this server."""
    return os.getpid()


@server.tool()
def headers(ctx: Context) -> dict[str, str]:
    """The HTTP headers of this request (none over stdio)."""
    return dict(ctx.headers or {})


@server.tool()
def caller(ctx: Context) -> dict[str, str]:
    """Who Skywarden says is calling (``_meta``), if it says."""
    meta = ctx.request_context.meta or {}
    return dict(meta.get("dev.skywarden/caller") or {})


@server.tool()
def environment(name: str) -> str:
    """One environment variable of this server."""
    return os.environ.get(name, "<unset>")


@server.tool()
async def hang() -> str:
    """Never answers."""
    await anyio.sleep_forever()
    return "unreachable"


@server.tool()
def crash() -> str:
    """Ends this server while the call is running."""
    os._exit(3)


@server.tool()
def fail() -> str:
    """A tool error of its own."""
    raise ValueError("the tool failed on purpose")


@server.tool()
def big(size: int) -> str:
    """A text of ``size`` characters."""
    return "x" * size


@server.tool()
def grandchild() -> int:
    """Starts a process in this server's process group; its pid."""
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]).pid


@server.tool()
async def slow_progress(ctx: Context) -> str:
    """Reports progress twice, then answers."""
    await ctx.report_progress(1, 2, "half")
    await ctx.report_progress(2, 2, "done")
    return "finished"


@server.tool()
async def grow(name: str, ctx: Context) -> str:
    """Adds a tool called ``name`` and tells the client the list changed."""

    def added() -> str:
        return f"I am {name}"

    server.add_tool(added, name=name, description="Added at run time.")
    await ctx.notify_tools_changed()
    return "grown"


if __name__ == "__main__":
    transport = sys.argv[1] if len(sys.argv) > 1 else "stdio"
    if transport == "stdio":
        server.run("stdio")
    else:
        server.run(transport, host="127.0.0.1", port=int(sys.argv[2]))  # type: ignore[call-overload]
    time.sleep(0)
