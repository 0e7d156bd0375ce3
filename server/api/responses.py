"""What REST and admin handlers share: JSON answers and the documented error statuses."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from skywarden.server.jsonutil import dumps

PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
STATUS_TEXTS = {
    400: "Malformed request (bad JSON, a credential in the URL, ambiguous credentials)",
    401: "Missing or invalid credential",
    403: "The key may not use this tool",
    404: "Not found",
    408: "The body arrived too slowly",
    409: "The key is revoked",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed; `errors` lists each field",
    429: "Rate limited (or too many wrong credentials from this address); see Retry-After",
    503: "Not ready",
}


def problem_responses(*codes: int) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses, each a problem+json body."""
    return {code: {"description": STATUS_TEXTS[code], **PROBLEM} for code in codes}


def json_response(data: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")
