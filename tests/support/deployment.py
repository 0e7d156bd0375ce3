"""Drive a running deployment (workers, or instances behind a load balancer) over real HTTP:
every request on a new connection, so the kernel or the balancer picks a process each time."""

from __future__ import annotations

import socket
import ssl
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from tests.support.admin import ADMIN_HEADERS
from tests.support.logs import SECRETS
from tests.support.mcp_helpers import ACCEPT_BOTH, rpc, session_headers


class PinnedResolver(AbstractResolver):
    """Resolves one host name to one address, without DNS: a deployment's public name in a test."""

    def __init__(self, name: str, address: str) -> None:
        self.name = name
        self.address = address

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
        if host != self.name:
            raise OSError(f"{host} is not {self.name}, the only name this test resolves")
        found: ResolveResult = {"hostname": host, "host": self.address, "port": port, "family": socket.AF_INET,
                                "proto": 0, "flags": socket.AI_NUMERICHOST}  # fmt: skip
        return [found]

    async def close(self) -> None:
        return None


class Deployment:
    def __init__(self, url: str, ssl_context: ssl.SSLContext | None = None, address: str | None = None) -> None:
        """``address``: where ``url``'s host name points (a public name that no DNS knows)."""
        self.url = url
        self.ssl = ssl_context
        self.address = address

    def connector(self) -> aiohttp.TCPConnector:
        """A connector that opens a new connection for every request."""
        resolver = None if self.address is None else PinnedResolver(urlsplit(self.url).hostname or "", self.address)
        return aiohttp.TCPConnector(force_close=True, ssl=self.ssl if self.ssl is not None else True, resolver=resolver)

    async def request(self, method: str, path: str, headers: dict[str, str] | None = None, **kw: Any):
        """(status, headers, JSON body or None) from one request on a fresh connection."""
        connector = self.connector()
        async with aiohttp.ClientSession(connector=connector) as http:
            async with http.request(method, self.url + path, headers=headers, allow_redirects=False, **kw) as resp:
                body = await resp.json(content_type=None) if resp.content_length != 0 else None
                return resp.status, resp.headers, body

    async def create_key(self, **fields: Any) -> dict:
        status, _, body = await self.request("POST", "/api/admin/keys", ADMIN_HEADERS, json={"name": "t", **fields})
        assert status == 201, body
        SECRETS.add(body["key"])
        return body

    async def key(self, key_id: str) -> dict:
        status, _, body = await self.request("GET", f"/api/admin/keys/{key_id}", ADMIN_HEADERS)
        assert status == 200, body
        return body

    async def revoke(self, key_id: str) -> None:
        status, _, body = await self.request("DELETE", f"/api/admin/keys/{key_id}", ADMIN_HEADERS)
        assert status == 204, body

    async def statuses(self, key: str, count: int, path: str = "/api/mcp/tools") -> list[int]:
        return [(await self.request("GET", path, {"X-API-Key": key}))[0] for _ in range(count)]

    async def mcp(self, key: str, message: dict, session: str | None = None, request_id: str | None = None):
        headers = {"X-API-Key": key, "Accept": ACCEPT_BOTH, "Content-Type": "application/json"}
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        if session is not None:
            headers.update(session_headers(session, "2025-11-25"))
        return await self.request("POST", "/mcp", headers, json=message)

    async def open_session(self, key: str, request_id: str | None = None) -> str:
        params = {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        status, headers, body = await self.mcp(key, rpc("initialize", params), request_id=request_id)
        assert status == 200, body
        session = headers["Mcp-Session-Id"]
        status, _, _ = await self.mcp(key, rpc("notifications/initialized", id=None), session)
        assert status == 202
        return session


async def shared_state_checks(deployment: Deployment, requests: int = 12) -> None:
    """What instances (or workers) of one deployment must agree on, each request on a new connection."""
    key = await deployment.create_key()
    made = await deployment.statuses(key["key"], requests)
    assert made == [200] * requests, f"a key made through one instance is not known to all: {made}"

    limited = await deployment.create_key(rate_limit="5/minute")
    limited_statuses = await deployment.statuses(limited["key"], 8)
    assert limited_statuses == [200] * 5 + [429] * 3, f"not one budget for all: {limited_statuses}"

    session = await deployment.open_session(key["key"])
    for _ in range(requests):  # continues through every process
        status, _, body = await deployment.mcp(key["key"], rpc("tools/list"), session)
        assert status == 200 and "tools" in body["result"], body

    used = (await deployment.key(key["id"]))["use_count"]
    assert used == 2 * requests + 2, f"usage does not add up: {used} of {2 * requests + 2}"

    await deployment.revoke(key["id"])
    revoked = await deployment.statuses(key["key"], requests)
    assert revoked == [401] * requests, f"a revoked key was still accepted somewhere: {revoked}"
