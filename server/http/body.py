"""Reading a JSON request body: content type, size and nesting checks."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from skywarden.server.appkeys import SETTINGS
from skywarden.server.http.problems import ProblemError
from skywarden.server.jsonutil import BodyError, loads_guarded


async def read_body(request: web.Request) -> bytes:
    """The raw body, within ``body_timeout`` (slow senders get 408) and ``max_body_bytes`` (413)."""
    if request.content.is_eof():  # the whole body is already here: nothing to wait for
        return await request.read()
    try:
        async with asyncio.timeout(request.app[SETTINGS].body_timeout):  # no extra task, unlike wait_for
            return await request.read()
    except TimeoutError:
        raise ProblemError(
            408,
            "Request timeout",
            "The request body arrived too slowly.",
            type="request-timeout",
            headers={"Connection": "close"},
        ) from None


def is_json_content_type(request: web.Request) -> bool:
    ctype = request.content_type
    return ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))


async def read_json(request: web.Request, *, allow_empty: bool = False) -> Any:
    """Return the parsed JSON body or raise a ProblemError (400/413/415)."""
    if not request.body_exists:
        if allow_empty:
            return None
        raise ProblemError(400, "Bad request", "A JSON body is required.", type="invalid-body")
    if not is_json_content_type(request):
        raise ProblemError(
            415,
            "Unsupported media type",
            f"Send the body as application/json, not {request.content_type or 'no content type'}.",
            type="unsupported-media-type",
        )
    body = await read_body(request)
    if not body.strip() and allow_empty:
        return None
    try:
        return loads_guarded(body, request.app[SETTINGS].max_json_depth)
    except BodyError as exc:
        raise ProblemError(400, "Bad request", exc.reason[:300], type="invalid-json") from None
