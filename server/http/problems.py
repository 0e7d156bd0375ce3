"""RFC 9457 problem details: how the REST and admin door renders an ``ApiError``, and documents it."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from skywarden.server.errors import ApiError
from skywarden.server.jsonutil import dumps
from skywarden.server.request_state import state_of

PROBLEM_TYPE_BASE = "https://skywarden.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


def problem_body(error: ApiError, request_id: str | None = None) -> dict[str, Any]:
    kind = error.kind
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + kind.slug, "title": kind.title, "status": kind.status}
    if error.detail:
        body["detail"] = error.detail
    body.update(error.extra)
    if request_id:
        body["request_id"] = request_id
    return body


def problem_response(error: ApiError, request_id: str | None = None) -> web.Response:
    return web.Response(
        status=error.kind.status,
        body=dumps(problem_body(error, request_id)),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def problem_answer(request: web.Request, error: ApiError) -> web.Response:
    """The problem+json door's renderer (``http/errors.py``), with the request's id."""
    return problem_response(error, state_of(request).request_id)


PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}
STATUS_TEXTS = {
    400: "The body cannot be read: not JSON, not UTF-8, or nested too deeply",
    403: "The key may not use this tool",
    404: "Not found",
    408: "The body arrived too slowly",
    409: "The key is revoked",
    413: "Body too large",
    415: "Body is not application/json",
    422: "Validation failed; `errors` lists each field",
    429: "Too many calls at once for this key, or the tool's cost is over the key's rate limit; see Retry-After",
    503: "Not ready",
}


def problem_responses(*codes: int) -> dict[int, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these statuses of a handler's own, each a problem+json body
    (what the request path answers before a handler, every operation documents: api/openapi.py)."""
    return {code: {"description": STATUS_TEXTS[code], **PROBLEM} for code in codes}
