"""The official MCP SDK server, built as fairly as we can for the comparison in suite.py.

``MCPServer`` from the official ``mcp`` package, served by uvicorn, stateless with JSON
answers (the SDK's fastest mode), behind a one-key ASGI check (constant-time compare). Its two
tools run Skywarden's own weather code with the same upstream client and cache, against the
same fake NWS, so both servers do the same tool work and differ only in the server around it.
It runs on the same event loop as Skywarden does in the run (uvloop when given).

Run: python benchmarks/sdk_server.py PORT KEY NWS_URL [uvloop|asyncio]
or, as a stdio server (an upstream of Skywarden's gateway): python benchmarks/sdk_server.py stdio - NWS_URL
"""

from __future__ import annotations

import asyncio
import dataclasses
import hmac
import sys
from typing import Any

import structlog
import uvicorn
from mcp.server.mcpserver import MCPServer

from skywarden.server.plugins.http_client import Upstream
from skywarden.server.ttlcache import TTLCache
from skywarden.tools import Context, Url
from skywarden.tools.weather import WeatherSettings, get_alerts, get_forecast, weather

server = MCPServer("sdk-bench")
upstream = Upstream(user_agent="bench", timeout=10, max_bytes=4 * 1024 * 1024, cache=TTLCache(512))
settings: list[WeatherSettings] = []  # main() sets it from the command line
contexts: list[Context[WeatherSettings]] = []  # made, with the pool opened, by the first call
_opened = asyncio.Lock()


async def _context() -> Context[WeatherSettings]:
    """What Skywarden gives a weather call: the plugin's settings and its view of the pool."""
    async with _opened:
        if not contexts:
            await upstream.open()
            own = settings[0]
            http = upstream.for_plugin(
                weather.name, user_agent=own.user_agent, service=weather.title, trusted_origins=[own.base_url]
            )
            contexts.append(Context(own, http, structlog.get_logger("sdk-bench")))
    return contexts[0]


def _structured(result: Any) -> dict[str, Any]:
    return dataclasses.asdict(result.structured) if dataclasses.is_dataclass(result.structured) else {}


@server.tool(name="get_forecast", description=get_forecast.description)
async def sdk_get_forecast(latitude: float, longitude: float) -> dict[str, Any]:
    return _structured(await get_forecast(await _context(), latitude=latitude, longitude=longitude))


@server.tool(name="get_alerts", description=get_alerts.description)
async def sdk_get_alerts(state: str) -> dict[str, Any]:
    return _structured(await get_alerts(await _context(), state=state))


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
    if sys.argv[1] == "stdio":
        settings.append(WeatherSettings(base_url=Url(sys.argv[3]), user_agent="bench"))
        server.run("stdio")
        return
    port, key, nws_url = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    loop = sys.argv[4] if len(sys.argv) > 4 else "asyncio"
    settings.append(WeatherSettings(base_url=Url(nws_url), user_agent="bench"))
    app = server.streamable_http_app(stateless_http=True, json_response=True)
    uvicorn.run(OneKey(app, key), host="127.0.0.1", port=port, log_level="warning", access_log=False, loop=loop)


if __name__ == "__main__":
    main()
