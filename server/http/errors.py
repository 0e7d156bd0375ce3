"""The one place an error becomes an answer, in the format of the door it came through.

Every middleware and handler raises ``ApiError`` (or lets anything else
escape); this middleware renders it with the renderer of the door its route declares
(``http/routes.py``), from ``DoorRenderers``, which the app factory fills: problem+json
unless a door registered its own (JSON-RPC, ``mcp/wire.rpc_error_answer``). Nothing else builds an error
answer from scratch, and no stack trace ever reaches a client.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import TYPE_CHECKING

import structlog
from aiohttp import web

from skywarden.server.errors import INTERNAL, INVALID_REQUEST, KIND_BY_STATUS, ApiError, ErrorKind
from skywarden.server.http.body import unread_body
from skywarden.server.http.problems import problem_answer
from skywarden.server.http.routes import Door, door_of

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

log = structlog.get_logger("skywarden.server")

_PASS_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate", "Location")
_DETAILS = {
    404: "No route matches this path.",
    413: "The request body is too large.",
}


def from_http_exception(exc: web.HTTPException) -> ApiError:
    """aiohttp's own refusals (no route, method not allowed, body too large) as table rows."""
    kind = KIND_BY_STATUS.get(exc.status) or ErrorKind(exc.status, exc.reason or "Error", "error", INVALID_REQUEST)
    detail = _DETAILS.get(exc.status)
    if exc.status == 405:
        detail = f"{exc.method if isinstance(exc, web.HTTPMethodNotAllowed) else 'This method'} is not allowed here."
    headers = {h: exc.headers[h] for h in _PASS_HEADERS if h in exc.headers}
    return ApiError(kind, detail or kind.title, headers=headers)


Renderer = Callable[[web.Request, ApiError], web.Response]


class DoorRenderers:
    """Which renderer answers an error at which door: a door registers its own format (the app
    factory registers JSON-RPC for ``Door.JSON_RPC``); the door of a request is its route's rule
    (``routes.door_of``), and a door with no renderer of its own gets ``default``."""

    def __init__(self, default: Renderer = problem_answer) -> None:
        self.default = default
        self._by_door: dict[Door, Renderer] = {}

    def register(self, door: Door, renderer: Renderer) -> None:
        self._by_door[door] = renderer

    def for_request(self, request: web.Request) -> Renderer:
        return self._by_door.get(door_of(request), self.default)


INTERNAL_DETAIL = "The server failed to answer; the error was logged with this request id."


def error_middleware_for(renderers: DoorRenderers, note_refusal: Callable[[web.Request, ApiError], None]) -> Middleware:
    """Step 3. ``note_refusal`` records the error's audit reason (``observability/audit.py``)."""

    def error_answer(request: web.Request, error: ApiError) -> web.Response:
        """Render ``error`` for the door of ``request`` and note its audit reason. A refused request
        whose body was never read closes its connection instead of draining an upload nobody wants."""
        note_refusal(request, error)
        response = renderers.for_request(request)(request, error)
        if unread_body(request):
            response.force_close()
            skip_lingering = getattr(request.protocol, "skip_lingering", None)  # a guarded connection
            if skip_lingering is not None:
                skip_lingering()
        return response

    @web.middleware
    async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
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

    return error_middleware
