"""The one place an error becomes an answer, in the format of the door it came through.

Every middleware and handler raises ``ApiError`` (or lets anything else
escape); this middleware renders it as a JSON-RPC error object on /mcp (with
the request id once the body has been read) and as problem+json everywhere
else. Nothing else builds an error answer from scratch, and no stack trace
ever reaches a client.
"""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID, RPC_ID
from skywarden.server.errors import INTERNAL, KIND_BY_STATUS, ApiError, ErrorKind
from skywarden.server.http.body import unread_body
from skywarden.server.http.paths import is_mcp
from skywarden.server.http.problems import problem_response
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp import protocol as p
from skywarden.server.observability.audit import note_refusal

log = structlog.get_logger("skywarden.server")

_PASS_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")
_DETAILS = {
    404: "No route matches this path.",
    413: "The request body is too large.",
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no route, method not allowed, body too large) as table rows."""
    kind = KIND_BY_STATUS.get(exc.status) or ErrorKind(exc.status, exc.reason or "Error", "error", p.INVALID_REQUEST)
    detail = _DETAILS.get(exc.status)
    if exc.status == 405:
        detail = f"{exc.method if isinstance(exc, web.HTTPMethodNotAllowed) else 'This method'} is not allowed here."
    headers = {h: exc.headers[h] for h in _PASS_HEADERS if h in exc.headers}
    return ApiError(kind, detail or kind.title, headers=headers)


def error_answer(request: web.Request, error: ApiError) -> web.Response:
    """Render ``error`` for the door of ``request`` and note its audit reason. A refused request
    whose body was never read closes its connection instead of draining an upload nobody wants."""
    note_refusal(request, error)
    if is_mcp(request.path):
        body = p.error_message(request.get(RPC_ID), p.rpc_error_from(error))
        response = web.Response(
            status=error.kind.status, body=dumps(body), content_type="application/json", headers=error.headers
        )
    else:
        response = problem_response(error, request.get(REQUEST_ID))
    if unread_body(request):
        response.force_close()
        skip_lingering = getattr(request.protocol, "skip_lingering", None)  # a guarded connection
        if skip_lingering is not None:
            skip_lingering()
    return response


INTERNAL_DETAIL = "The server failed to answer; the error was logged with this request id."


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ApiError as exc:
        return error_answer(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_answer(request, from_http_exception(exc))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        return error_answer(request, ApiError(INTERNAL, INTERNAL_DETAIL))
