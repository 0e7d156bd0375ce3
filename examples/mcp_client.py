"""Connect the official MCP Python SDK to Skywarden with an API key.

    .venv/bin/pip install 'mcp>=2.3,<3'        # the SDK (it brings httpx2)
    SKYWARDEN_API_KEY=skw_live_... .venv/bin/python examples/mcp_client.py

SKYWARDEN_URL is the server's base URL, as for skywarden-client (default
http://127.0.0.1:8080); the MCP endpoint is that URL with /mcp added. A trailing
slash is dropped; a URL that already ends in /mcp is refused with what to set.
"""

from __future__ import annotations

import asyncio
import os
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

DEFAULT_URL = "http://127.0.0.1:8080"


def mcp_endpoint(base_url: str) -> str:
    """The MCP endpoint of the server whose base URL is ``base_url``."""
    base = base_url.strip().rstrip("/")
    if not base.startswith(("http://", "https://")):
        raise ValueError(
            f"SKYWARDEN_URL must be the server's base URL, starting http:// or https://, such as {DEFAULT_URL}"
        )
    if base.endswith("/mcp"):
        raise ValueError(
            f"SKYWARDEN_URL is the server's base URL, such as {DEFAULT_URL}, "
            "not its MCP endpoint: drop the trailing /mcp"
        )
    return base + "/mcp"


async def main(base_url: str, key: str) -> None:
    async with httpx2.AsyncClient(headers={"X-API-Key": key}) as http:
        async with Client(streamable_http_client(mcp_endpoint(base_url), http_client=http)) as mcp:
            print("protocol", mcp.protocol_version)  # 2026-07-28
            for tool in (await mcp.list_tools()).tools:
                print("tool", tool.name)
            result = await mcp.call_tool("get_alerts", {"state": "KS"})
            print(result.content[0].text)


if __name__ == "__main__":
    api_key = os.environ.get("SKYWARDEN_API_KEY", "")
    if not api_key:
        sys.exit("Set SKYWARDEN_API_KEY to an API key (see the README's Quick start).")
    base_url = os.environ.get("SKYWARDEN_URL") or DEFAULT_URL
    try:
        mcp_endpoint(base_url)  # a wrong SKYWARDEN_URL is refused before connecting
    except ValueError as exc:
        sys.exit(str(exc))
    asyncio.run(main(base_url, api_key))
