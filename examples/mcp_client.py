"""Connect the official MCP Python SDK to Skywarden with an API key.

    .venv/bin/pip install 'mcp>=2.3,<3'        # the SDK (it brings httpx2)
    SKYWARDEN_API_KEY=skw_live_... .venv/bin/python examples/mcp_client.py

SKYWARDEN_URL defaults to http://127.0.0.1:8080/mcp.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

DEFAULT_URL = "http://127.0.0.1:8080/mcp"


async def main(url: str, key: str) -> None:
    async with httpx2.AsyncClient(headers={"X-API-Key": key}) as http:
        async with Client(streamable_http_client(url, http_client=http)) as mcp:
            print("protocol", mcp.protocol_version)  # 2026-07-28
            for tool in (await mcp.list_tools()).tools:
                print("tool", tool.name)
            result = await mcp.call_tool("get_alerts", {"state": "KS"})
            print(result.content[0].text)


if __name__ == "__main__":
    api_key = os.environ.get("SKYWARDEN_API_KEY", "")
    if not api_key:
        sys.exit("Set SKYWARDEN_API_KEY to an API key (see the README's Quick start).")
    asyncio.run(main(os.environ.get("SKYWARDEN_URL", DEFAULT_URL), api_key))
