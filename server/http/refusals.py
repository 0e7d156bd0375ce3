"""One shape for refusals that happen before a handler runs: JSON-RPC on /mcp, problem+json elsewhere."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID
from skywarden.server.http.problems import ProblemError, problem_response
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp.protocol import MCP_PATH


def jsonrpc_error_response(status: int, code: int, message: str, headers: dict[str, str]) -> web.Response:
    body = {"jsonrpc": "2.0", "id": None, "error": {"code": code, "message": message}}
    return web.Response(status=status, body=dumps(body), content_type="application/json", headers=headers)


def refuse(request: web.Request, error: ProblemError, rpc_code: int, rpc_message: str) -> web.Response:
    """Answer ``error`` in the format of the door the request came through."""
    if request.path == MCP_PATH:
        return jsonrpc_error_response(error.status, rpc_code, rpc_message, error.headers)
    return problem_response(error, request.get(REQUEST_ID))
