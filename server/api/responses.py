"""What REST and admin handlers share: JSON answers."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.jsonutil import dumps


def json_response(data: object, status: int = 200) -> web.Response:
    """``data`` as JSON; bytes are taken as already encoded."""
    body = data if isinstance(data, bytes) else dumps(data)
    return web.Response(body=body, status=status, content_type="application/json")
