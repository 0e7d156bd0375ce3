"""Resource-server mode: RFC 9728 Protected Resource Metadata and the Bearer challenges."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from aiohttp.typedefs import Handler

from skywarden.server.http.challenges import bearer_challenge
from skywarden.server.identity.claims import ALL_TOOLS_SCOPE, TOOL_SCOPE_PREFIX
from skywarden.server.jsonutil import dumps

PRM_PATH = "/.well-known/oauth-protected-resource"
METADATA_CACHE_SECONDS = 300


def metadata_url(resource_url: str) -> str:
    """Where the metadata of ``resource_url`` lives: the well-known path, suffixed with the
    resource's own path (RFC 9728 section 3.1), on the resource's origin."""
    parts = urlsplit(resource_url)
    return f"{parts.scheme}://{parts.netloc}{PRM_PATH}{parts.path.rstrip('/')}"


def challenge(resource_url: str, error: str | None = None, description: str | None = None, scope: str = "") -> str:
    """``WWW-Authenticate`` for a 401 or 403 in resource-server mode: it names the metadata."""
    return bearer_challenge(
        resource_metadata=metadata_url(resource_url), error=error, description=description, scope=scope
    )


def metadata(
    resource_url: str, issuers: tuple[str, ...], tool_names: list[str], extra_scopes: list[str]
) -> dict[str, Any]:
    return {
        "resource": resource_url,
        "authorization_servers": list(issuers),
        "scopes_supported": [ALL_TOOLS_SCOPE, *(TOOL_SCOPE_PREFIX + n for n in tool_names), *extra_scopes],
        "bearer_methods_supported": ["header"],
        "resource_name": "Skywarden",
        "resource_documentation": "https://github.com/skywarden/skywarden/blob/main/docs/identity.md",
    }


def metadata_handler(document: Callable[[], dict[str, Any]]) -> Handler:
    """``document`` is made for each request: the scopes follow the upstreams as they change."""

    async def handler(request: web.Request) -> web.Response:
        return web.Response(
            body=dumps(document()),
            content_type="application/json",
            headers={"Cache-Control": f"public, max-age={METADATA_CACHE_SECONDS}"},
        )

    return handler
