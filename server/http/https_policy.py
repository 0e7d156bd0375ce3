"""``require_https``: refuse plain HTTP, redirecting GET/HEAD to the https URL."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID
from skywarden.server.http.problems import ProblemError, problem_response


@web.middleware
async def https_middleware(request: web.Request, handler):
    if request.secure:
        return await handler(request)
    if request.method in ("GET", "HEAD"):
        raise web.HTTPPermanentRedirect(str(request.url.with_scheme("https")))
    error = ProblemError(
        403,
        "HTTPS required",
        "This server only accepts HTTPS; send the request to the https:// URL.",
        type="https-required",
    )
    return problem_response(error, request.get(REQUEST_ID))
