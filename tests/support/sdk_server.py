"""Test-only: a server built with the official MCP SDK, to prove the client speaks standard MCP.

Run: python -m tests.support.sdk_server PORT
"""

import sys

from mcp.server.mcpserver import MCPServer

server = MCPServer("sdk-reference")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
def shout(text: str) -> str:
    """Upper-case a text."""
    return text.upper()


if __name__ == "__main__":
    server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[1]))
