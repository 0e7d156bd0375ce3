"""Connect the official MCP Python SDK to Skywarden with an API key.

    .venv/bin/pip install 'mcp>=2.3,<3'        # the SDK (it brings httpx2)
    SKYWARDEN_API_KEY=skw_live_... .venv/bin/python examples/mcp_client.py

SKYWARDEN_URL is the server's base URL, as for skywarden-client (default
http://127.0.0.1:8080); the MCP endpoint is that URL with /mcp added. A trailing
slash is dropped; a URL that already ends in /mcp is refused with what to set.
A failure (nothing listening, TLS, a refused key) ends it with one line and exit code 1.
"""

from __future__ import annotations

import asyncio
import os
import ssl
import sys

import httpx2
from mcp import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError

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


def leaves(exc: BaseException) -> list[BaseException]:
    """The exceptions inside any exception groups (the SDK's task groups wrap what failed)."""
    if isinstance(exc, BaseExceptionGroup):
        return [leaf for inner in exc.exceptions for leaf in leaves(inner)]
    return [exc]


def explain(exc: BaseException, endpoint: str) -> str:
    """One line saying why talking to ``endpoint`` failed."""
    cause = leaves(exc)[0]
    chain, link = [], cause
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    if any(isinstance(link, ssl.SSLError) for link in chain):
        reason = next(link for link in chain if isinstance(link, ssl.SSLError))
        return f"TLS with {endpoint} failed: {getattr(reason, 'reason', None) or reason}"
    if isinstance(cause, httpx2.HTTPStatusError):
        status = cause.response.status_code
        if status == 401:
            return f"{endpoint} refused the API key (401): check SKYWARDEN_API_KEY"
        return f"{endpoint} answered {status} {cause.response.reason_phrase}"
    if isinstance(cause, MCPError):  # the server's own refusal (a wrong key: 401 Unauthorized)
        hint = ": check SKYWARDEN_API_KEY" if "Unauthorized" in str(cause) else ""
        return f"{endpoint} refused: {cause}{hint}"
    if isinstance(cause, httpx2.ConnectError):
        reason = cause or "connection refused"
        return f"cannot connect to {endpoint}: {reason} (is the server running? check SKYWARDEN_URL)"
    if isinstance(cause, httpx2.TransportError):
        return f"talking to {endpoint} failed: {type(cause).__name__} {cause}".rstrip()
    return f"{endpoint}: {type(cause).__name__}: {cause}".rstrip(": ")


def run(base_url: str, key: str) -> int:
    try:
        asyncio.run(main(base_url, key))
    except Exception as exc:
        print(f"mcp_client: {explain(exc, mcp_endpoint(base_url))}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    api_key = os.environ.get("SKYWARDEN_API_KEY", "")
    if not api_key:
        sys.exit("Set SKYWARDEN_API_KEY to an API key (see the README's Quick start).")
    base_url = os.environ.get("SKYWARDEN_URL") or DEFAULT_URL
    try:
        mcp_endpoint(base_url)  # a wrong SKYWARDEN_URL is refused before connecting
    except ValueError as exc:
        sys.exit(str(exc))
    sys.exit(run(base_url, api_key))
