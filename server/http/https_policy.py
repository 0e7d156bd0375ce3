"""``require_https``: refuse plain HTTP, redirecting GET/HEAD to the https URL."""

from __future__ import annotations

from aiohttp import web

from skywarden.server.errors import HTTPS_REQUIRED, ApiError


@web.middleware
async def https_middleware(request: web.Request, handler):
    if request.secure:
        return await handler(request)
    if request.method in ("GET", "HEAD"):
        raise web.HTTPPermanentRedirect(str(request.url.with_scheme("https")))
    raise ApiError(HTTPS_REQUIRED, "This server only accepts HTTPS; send the request to the https:// URL.")
