"""The addresses clients probe before they use a key, answered 404 while OAuth is not configured.

MCP clients (the official SDKs, mcp-remote, the Inspector) look for OAuth metadata and try
dynamic client registration when a request gets 401. Each probe gets a public 404 problem that
says what to do instead, so a client given a wrong key stops at once and shows why, rather
than starting a browser sign-in. The probes are public and count toward no limit
(``http.paths.PROBE_PATHS``); so is the metadata document.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from aiohttp import web

from skywarden.server.errors import NOT_FOUND, OAUTH_NOT_CONFIGURED, ApiError
from skywarden.server.http.paths import PROBE_PATHS
from skywarden.server.http.routes import PUBLIC, add_route
from skywarden.server.identity.resource import PRM_PATH, metadata, metadata_handler, metadata_url
from skywarden.server.identity.service import Identity

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


def add_routes(app: web.Application, identity: Identity | None) -> None:
    """In resource-server mode the two protected-resource addresses answer RFC 9728 metadata;
    every other probe address stays a 404 (the authorization server is the issuer, elsewhere)."""
    metadata_paths: set[str] = set()
    if identity is not None and identity.resource_server:
        found = identity

        def document() -> dict[str, Any]:
            return metadata(found.resource_url, found.issuers, sorted(found.tool_names), sorted(found.scope_map))

        handler = metadata_handler(document)
        metadata_paths = {PRM_PATH, urlsplit(metadata_url(identity.resource_url)).path}
        for path in sorted(metadata_paths):
            add_route(app, "GET", path, handler, rule=PUBLIC, allow_head=True)
    for path in sorted(PROBE_PATHS):
        for method in ("GET", "POST"):
            if method == "GET" and path in metadata_paths:
                continue
            add_route(app, method, path, probe, rule=PUBLIC)
