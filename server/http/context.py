"""Step 1 of the request path: a request id bound into the structlog context."""

from __future__ import annotations

import os
import re

import structlog
from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID

_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_for(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if given and _VALID_ID.match(given) else os.urandom(16).hex()


@web.middleware
async def request_context_middleware(request: web.Request, handler):
    request_id = request_id_for(request)
    request[REQUEST_ID] = request_id
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id)
    try:
        response = await handler(request)
    except web.HTTPException as exc:
        exc.headers["X-Request-ID"] = request_id
        raise
    response.headers["X-Request-ID"] = request_id
    return response
