"""Step 1 of the request path: a request id bound into the structlog context (opened and closed
by the audit middleware, step 2, so both take one layer).

Requests on one keep-alive connection run in one task, so the binding is undone when the
request ends (a token reset) rather than cleared when the next begins (structlog's
``clear_contextvars`` walks a copy of the whole context, on every request)."""

from __future__ import annotations

import contextvars
import os
import re

import structlog
from aiohttp import web

from skywarden.server.appkeys import REQUEST_ID

# structlog's own context variable for ``request_id``, as bind_contextvars would create it
_REQUEST_ID_VAR = next(iter(structlog.contextvars.bind_contextvars(request_id=None).values())).var
structlog.contextvars.unbind_contextvars("request_id")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")


def request_id_for(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if given and _VALID_ID.match(given) else os.urandom(16).hex()


def open_request_context(request: web.Request) -> tuple[str, contextvars.Token]:
    """The request's id (kept on the request and bound into the structlog context) and the token
    that undoes the binding; the audit middleware opens and closes it around the whole request."""
    request_id = request_id_for(request)
    request[REQUEST_ID] = request_id
    return request_id, _REQUEST_ID_VAR.set(request_id)


def close_request_context(token: contextvars.Token) -> None:
    _REQUEST_ID_VAR.reset(token)
