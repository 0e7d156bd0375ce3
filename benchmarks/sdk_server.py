"""The official MCP SDK server, built as fairly as we can for the comparison in suite.py.

``MCPServer`` from the official ``mcp`` package, served by uvicorn, stateless with JSON
answers (the SDK's fastest mode), behind a one-key ASGI check (constant-time compare). Its two
tools run Skywarden's own weather code with the same upstream client and cache, against the
same fake NWS, so both servers do the same tool work and differ only in the server around it.
It runs on the same event loop as Skywarden does in the run (uvloop when given).

Run: python benchmarks/sdk_server.py PORT KEY NWS_URL [uvloop|asyncio]
"""

from __future__ import annotations

import asyncio
import hmac
import sys
from typing import Any

import structlog
import uvicorn
from mcp.server.mcpserver import MCPServer

from skywarden.server.plugins.http_client import Upstream
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolContext
from skywarden.tools.weather import alerts, forecast

server = MCPServer("sdk-bench")
upstream = Upstream(user_agent="bench", timeout=10, max_bytes=4 * 1024 * 1024, cache=TTLCache(512))
settings: dict[str, Any] = {}
_opened = asyncio.Lock()


async def _context() -> ToolContext:
    async with _opened:
        if upstream._session is None:
            await upstream.open()
    return ToolContext(upstream=upstream, settings=settings, log=structlog.get_logger("sdk-bench"))


@server.tool(name="get_forecast", description=forecast.tool.description)
async def get_forecast(latitude: float, longitude: float) -> dict[str, Any]:
    result = await forecast.tool.call({"latitude": latitude, "longitude": longitude}, await _context())
    return result.structured or {}


@server.tool(name="get_alerts", description=alerts.tool.description)
async def get_alerts(state: str) -> dict[str, Any]:
    result = await alerts.tool.call({"state": state}, await _context())
    return result.structured or {}


class OneKey:
    """Refuse every request whose X-API-Key is not the one key."""

    def __init__(self, app: Any, key: str) -> None:
        self.app = app
        self.key = key.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self.key):
                await send({"type": "http.response.start", "status": 401, "headers": []})
                await send({"type": "http.response.body", "body": b""})
                return
        await self.app(scope, receive, send)


def main() -> None:
    port, key, nws_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    loop = sys.argv[4] if len(sys.argv) > 4 else "asyncio"
    settings.update({"base_url": nws_url, "user_agent": "bench"})
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(OneKey(app, key), host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop)


if __name__ == "__main__":
    main()
