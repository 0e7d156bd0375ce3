"""Fixed files served from memory: read once when the app is built, answered as plain bytes.

aiohttp's static file handler answers conditional and range requests (``If-Match``,
``Range``, ...) itself, with bare 304/412/416 answers outside the door's error format and
a 404 with an empty body; the few files Skywarden serves are small and never change while
it runs, so they are answered whole instead, and a name that is not one of them is a 404
in problem+json like any other.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.Response]]


def asset_handler(folder: Path, content_types: Mapping[str, str], headers: Mapping[str, str]) -> Handler:
    """A handler for ``.../{name}`` that answers each file named in ``content_types`` (name ->
    media type) from ``folder``, with ``headers``."""
    files = {name: (folder / name).read_bytes() for name in content_types}

    async def asset(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in files:
            raise web.HTTPNotFound()
        kind = content_types[name]
        charset = "utf-8" if kind.startswith("text/") or kind.endswith(("javascript", "+xml")) else None
        return web.Response(body=files[name], content_type=kind, charset=charset, headers=headers)

    return asset
