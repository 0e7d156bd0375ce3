"""The baseline: a bare aiohttp handler that checks one key in constant time, reads and parses
the body, and encodes per request the answer Skywarden gave for the same request (read from RESULTS_FILE: a JSON
object of ``"tools/list"``, ``"tools/call"`` and ``"rest"`` results). What any server must at
least do. It runs on the same event loop Skywarden runs on in the same run.

Run: python benchmarks/bare_server.py PORT KEY RESULTS_FILE [uvloop|asyncio]
"""

import hmac
import json
import sys

from aiohttp import web


def make_app(key: str, results: dict) -> web.Application:
    """The bare handlers for one key, answering ``results`` (see the module docstring)."""
    key_bytes = key.encode()

    def allowed(request: web.Request) -> bool:
        return hmac.compare_digest(request.headers.get("X-API-Key", "").encode(), key_bytes)

    async def mcp(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        body = await request.json()
        return web.json_response({"jsonrpc": "2.0", "id": body["id"], "result": results[body["method"]]})

    async def rest(request: web.Request) -> web.Response:
        if not allowed(request):
            return web.json_response({"error": "unauthorized"}, status=401)
        await request.json()
        return web.json_response(results["rest"])  # encoded per request, as a real handler's answer is

    app = web.Application()
    app.router.add_post("/mcp", mcp)
    app.router.add_post("/api/mcp/tools/get_forecast", rest)
    return app


def serve(app: web.Application, port: int, loop: str) -> None:
    """Serve ``app`` on 127.0.0.1:``port`` on the event loop named (uvloop or asyncio), quietly."""
    loop_factory = None
    if loop == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, loop=loop_factory and loop_factory())


def main() -> None:
    port, key, results_file = int(sys.argv[1]), sys.argv[2], sys.argv[3]
    loop = sys.argv[4] if len(sys.argv) > 4 else "asyncio"
    with open(results_file) as fh:
        results = json.load(fh)
    serve(make_app(key, results), port, loop)


if __name__ == "__main__":
    main()
