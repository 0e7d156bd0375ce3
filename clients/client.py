"""``SkywardenClient``: list and call tools over REST or MCP with one aiohttp session."""

from __future__ import annotations

import os
from typing import Any

import aiohttp

from skywarden.clients import errors as e
from skywarden.clients.http import HttpCore, RetryPolicy, Timeouts
from skywarden.clients.mapping import decode, problem_error
from skywarden.clients.mcp import McpTransport, ProgressCallback
from skywarden.clients.rest import RestTransport
from skywarden.clients.results import ToolCallResult, ToolInfo

DEFAULT_URL = "http://127.0.0.1:8080"


def resolve_url(base_url: str | None) -> str:
    """The server's base URL (``http://127.0.0.1:8080``; REST and MCP paths are added to it):
    ``base_url``, else ``SKYWARDEN_URL``, else the default. Trailing slashes are dropped; a URL
    ending in ``/mcp`` is the MCP endpoint, not the base, and is refused with what to set."""
    source = "the server URL" if base_url else "SKYWARDEN_URL"
    url = (base_url or os.environ.get("SKYWARDEN_URL") or DEFAULT_URL).strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{source} must be the server's base URL, starting http:// or https://, such as {DEFAULT_URL}")
    if url.endswith("/mcp"):
        raise ValueError(
            f"{source} is the server's base URL, such as {DEFAULT_URL}, not its MCP endpoint: drop the trailing /mcp"
        )
    return url


def masked(secret: str | None) -> str:
    if not secret:
        return "none"
    return secret[: secret.find("_", 4) + 7] + "…" if secret.startswith("skw_") else "***"


class SkywardenClient:
    """Async client; use as ``async with SkywardenClient(...) as client``.

    ``base_url`` and ``api_key`` default to ``SKYWARDEN_URL`` and ``SKYWARDEN_API_KEY``.
    Pass ``session`` to use an aiohttp ClientSession you own (it is not closed here).
    """

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        transport: str = "rest",
        mcp_mode: str = "auto",
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        verify_tls: bool = True,
        ca_file: str | None = None,
        max_connections: int = 20,
    ) -> None:
        self.base_url = resolve_url(base_url)
        self._api_key = api_key if api_key is not None else os.environ.get("SKYWARDEN_API_KEY")
        headers = {"X-API-Key": self._api_key} if self._api_key else {}
        self._core = HttpCore(
            self.base_url,
            headers,
            session=session,
            timeouts=timeouts,
            retry=retry,
            verify_tls=verify_tls,
            ca_file=ca_file,
            max_connections=max_connections,
        )
        if transport == "rest":
            self._transport: RestTransport | McpTransport = RestTransport(self._core)
        elif transport == "mcp":
            self._transport = McpTransport(self._core, mode=mcp_mode)
        else:
            raise ValueError("transport must be 'rest' or 'mcp'")

    def __repr__(self) -> str:
        return (
            f"SkywardenClient(url={self.base_url!r}, transport={self._transport.name!r}, key={masked(self._api_key)})"
        )

    async def __aenter__(self) -> SkywardenClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        try:
            await self._transport.close()
        finally:
            await self._core.close()

    @property
    def protocol_version(self) -> str | None:
        """The MCP revision in use (MCP transport, after the first call)."""
        return getattr(self._transport, "protocol_version", None)

    async def health(self) -> dict[str, Any]:
        answer = await self._core.request("GET", "/api/health", idempotent=True)
        if answer.status != 200:
            raise problem_error(answer)
        health: dict[str, Any] = decode(answer)
        return health

    async def list_tools(self) -> list[ToolInfo]:
        return await self._transport.list_tools()

    async def call_tool(
        self,
        name: str,
        arguments: dict[str, Any] | None = None,
        *,
        raise_on_error: bool = False,
        progress: ProgressCallback | None = None,
    ) -> ToolCallResult:
        """Call a tool. A tool failure is a result with ``is_error``; with ``raise_on_error`` a ToolError."""
        result = await self._transport.call_tool(name, dict(arguments or {}), progress)
        if result.is_error and raise_on_error:
            raise e.ToolError(result.text or f"{name} failed", result=result)
        return result
