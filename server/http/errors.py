"""Uniform errors: every failure leaves as problem+json, never a stack trace."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID
from skywarden.server.http.problems import ProblemError, problem_response

log = structlog.get_logger("skywarden.server")

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    406: "Not acceptable",
    408: "Request timeout",
    413: "Payload too large",
    415: "Unsupported media type",
    429: "Too many requests",
    431: "Request header fields too large",
}

_PASS_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")


def _from_http_exception(exc: web.HTTPException) -> ProblemError:
    title = _TITLES.get(exc.status, exc.reason or "Error")
    detail = {
        404: "No route matches this path.",
        405: f"{exc.method if isinstance(exc, web.HTTPMethodNotAllowed) else 'This'} is not allowed here.",
        413: "The request body is too large.",
    }.get(exc.status)
    headers = {h: exc.headers[h] for h in _PASS_HEADERS if h in exc.headers}
    return ProblemError(exc.status, title, detail, type=title.lower().replace(" ", "-"), headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except ProblemError as exc:
        return problem_response(exc, request.get(REQUEST_ID))
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return problem_response(_from_http_exception(exc), request.get(REQUEST_ID))
    except (asyncio.CancelledError, ConnectionResetError):
        raise
    except Exception:
        log.exception("unhandled error", path=request.path, method=request.method)
        error = ProblemError(
            500,
            "Internal server error",
            "The server failed to answer; the error was logged with this request id.",
            type="internal-error",
        )
        return problem_response(error, request.get(REQUEST_ID))
