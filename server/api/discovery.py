"""The addresses clients probe before they use a key, answered while OAuth is not configured.

MCP clients (the official SDKs, mcp-remote, the Inspector) look for OAuth metadata and try
dynamic client registration when a request gets 401. Each probe gets a public 404 problem that
says what to do instead, so a client given a wrong key stops at once and shows why, rather
than starting a browser sign-in. The probes are public and count toward no limit
(``http.paths.PROBE_PATHS``).
"""

from __future__ import annotations

from aiohttp import web

from skywarden.server.errors import NOT_FOUND, OAUTH_NOT_CONFIGURED, ApiError
from skywarden.server.http.paths import PROBE_PATHS

# No word "Unauthorized" here: mcp-remote takes any error text containing it for a request to
# sign in, and would wait for a browser.
NO_OAUTH = (
    "This server does not use OAuth: it takes an API key in X-API-Key or Authorization: Bearer. "
    "A missing or wrong key is answered with HTTP status 401; check the key this client sends."
)
ICON = "/favicon.ico"


async def probe(request: web.Request) -> web.Response:
    if request.path == ICON:
        raise ApiError(NOT_FOUND, "There is no icon here.")
    raise ApiError(OAUTH_NOT_CONFIGURED, NO_OAUTH)


def add_routes(app: web.Application) -> None:
    for path in sorted(PROBE_PATHS):
        for method in ("GET", "POST"):
            app.router.add_route(method, path, probe)
