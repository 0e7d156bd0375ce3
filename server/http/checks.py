"""Edge checks: look at a request's line and headers before anything reads or authenticates it.

Each check is a plain function in the module of its concern (Host/Origin, the HTTPS policy,
the announced body size) that raises an ``ApiError`` (or a redirect) and returns nothing. The
app factory lists them in order; they run in one middleware, so a request pays one layer for
all of them rather than one per check.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from aiohttp.typedefs import Middleware

EdgeCheck = Callable[[web.Request], None]


def edge_checks_middleware(checks: Sequence[EdgeCheck]) -> Middleware:
    ordered = tuple(checks)

    @web.middleware
    async def edge_checks(request: web.Request, handler):
        for check in ordered:
            check(request)
        return await handler(request)

    return edge_checks
