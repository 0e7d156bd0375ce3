"""JSON answers, for every door (REST, admin, MCP)."""

from __future__ import annotations

from collections.abc import Mapping

from aiohttp import web

from skywarden.server.jsonutil import dumps


def json_response(data: object, status: int = 200, headers: Mapping[str, str] | None = None) -> web.Response:
    """``data`` as JSON; bytes are taken as already encoded."""
    body = data if isinstance(data, bytes) else dumps(data)
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)
