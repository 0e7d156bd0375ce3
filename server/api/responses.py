"""What REST and admin handlers share: JSON answers."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.jsonutil import dumps


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")
