"""Serving the console: its page, its assets (in the package; no CDN) and what the page needs
to know before sign-in (this server's own tool names, whether single sign-on is offered). None
of it is secret: an upstream's tools, which may be internal, are read by the signed-in page from
the admin API."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from skywarden.server.http.assets import asset_handler
from skywarden.server.http.paths import CONSOLE_PATH
from skywarden.server.http.routes import PUBLIC, add_route
from skywarden.server.jsonutil import dumps

STATIC = Path(__file__).resolve().parent / "static"
NO_CACHE = {"Cache-Control": "no-cache"}
ASSETS = {"app.js": "text/javascript", "style.css": "text/css", "icon.svg": "image/svg+xml"}


def add_routes(app: web.Application, tool_names: Callable[[], list[str]], sso: bool) -> None:
    """``tool_names``: what a key's scopes may name of this server's own tools, now."""
    page = (STATIC / "index.html").read_bytes()

    async def index(request: web.Request) -> web.Response:
        return web.Response(body=page, content_type="text/html", charset="utf-8", headers=NO_CACHE)

    async def console_config(request: web.Request) -> web.Response:
        config = dumps({"tools": tool_names(), "sso": sso})
        return web.Response(body=config, content_type="application/json", headers=NO_CACHE)

    async def to_page(request: web.Request) -> web.Response:
        raise web.HTTPFound(CONSOLE_PATH)

    add_route(app, "GET", CONSOLE_PATH, index, rule=PUBLIC, allow_head=True)
    add_route(app, "GET", CONSOLE_PATH + "/", to_page, rule=PUBLIC, allow_head=True)
    assets = asset_handler(STATIC, ASSETS, NO_CACHE)
    add_route(app, "GET", CONSOLE_PATH + "/static/{name}", assets, rule=PUBLIC, allow_head=True)
    add_route(app, "GET", CONSOLE_PATH + "/config.json", console_config, rule=PUBLIC, allow_head=True)
