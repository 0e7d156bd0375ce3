"""The baseline: a bare aiohttp handler answering an authenticated MCP tools/list (2026-07-28).

It checks one key in constant time and returns a fixed result — the one Skywarden gave, read
from RESULT_FILE, so both send the same bytes. What any server must at least do.
Run: python benchmarks/bare_server.py PORT KEY [RESULT_FILE]
"""

import hmac
import json
import sys

from aiohttp import web

RESULT = {
    "tools": [
        {"name": "get_alerts", "description": "alerts", "inputSchema": {"type": "object"}},
        {"name": "get_forecast", "description": "forecast", "inputSchema": {"type": "object"}},
    ],
    "resultType": "complete",
    "ttlMs": 60000,
    "cacheScope": "private",
}


def main() -> None:
    port, key = int(sys.argv[1]), sys.argv[2].encode()
    result = json.loads(open(sys.argv[3]).read()) if len(sys.argv) > 3 else RESULT

    async def handle(request: web.Request) -> web.Response:
        if not hmac.compare_digest(request.headers.get("X-API-Key", "").encode(), key):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": result})

    app = web.Application()
    app.router.add_post("/mcp", handle)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


if __name__ == "__main__":
    main()
