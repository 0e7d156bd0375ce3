"""The floor of an aiohttp gateway over Streamable HTTP: a bare handler that checks one key in
constant time, reads and parses the body, takes the upstream's prefix off the tool's name, POSTs
the call to the upstream through one kept aiohttp client, reads and parses the JSON answer and
encodes it again. No schema check, audit, limit or session: what any gateway written on aiohttp
must at least do for a call, for the gateway comparison in suite.py. The upstream must answer in
JSON (sdk_server.py does: stateless, JSON answers).

Run: python benchmarks/bare_proxy.py PORT KEY UPSTREAM_URL UPSTREAM_KEY PREFIX [uvloop|asyncio]
"""

import hmac
import json
import sys
from pathlib import Path

import aiohttp
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bare_server import serve


def make_app(key: str, url: str, upstream_key: str, prefix: str) -> web.Application:
    key_bytes = key.encode()
    headers = {
        "X-API-Key": upstream_key,
        "Content-Type": "application/json",
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
    }
    clients: list[aiohttp.ClientSession] = []

    async def mcp(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("X-API-Key", "").encode(), key_bytes):
            return web.json_response({"error": "unauthorized"}, status=401)
        message = await request.json()
        name = message["params"]["name"].removeprefix(prefix)
        message["params"]["name"] = name
        sent = {**headers, "Mcp-Method": message["method"], "Mcp-Name": name}
        async with clients[0].post(url, data=json.dumps(message), headers=sent) as response:
            answer = json.loads(await response.read())
        return web.json_response(answer)

    async def client(app: web.Application):
        clients.append(aiohttp.ClientSession())
        yield
        await clients[0].close()

    app = web.Application()
    app.cleanup_ctx.append(client)
    app.router.add_post("/mcp", mcp)
    return app


def main() -> None:
    port, key, url, upstream_key, prefix = int(sys.argv[1]), *sys.argv[2:6]
    serve(make_app(key, url, upstream_key, prefix), port, sys.argv[6] if len(sys.argv) > 6 else "asyncio")


if __name__ == "__main__":
    main()
