"""RFC 9457 problem details: how the REST and admin door renders an ``ApiError``."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from skywarden.server.errors import ApiError
from skywarden.server.jsonutil import dumps

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
