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

# structlog's own context variable for ``request_id``, as bind_contextvars would create it
_REQUEST_ID_VAR = next(iter(structlog.contextvars.bind_contextvars(request_id=None).values())).var
structlog.contextvars.unbind_contextvars("request_id")
_VALID_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}\Z")


class _RandomIds:
    """128-bit random ids (as hex) from ``os.urandom`` drawn many at a time: one system call per
    ``BATCH`` ids instead of one per request. A forked child starts a batch of its own."""

    BATCH = 256
    HEX_DIGITS = 32

    def __init__(self) -> None:
        self._digits = ""
        self._at = 0

    def reset(self) -> None:
        self._digits, self._at = "", 0

    def next(self) -> str:
        at = self._at
        if at >= len(self._digits):
            self._digits, at = os.urandom(self.BATCH * self.HEX_DIGITS // 2).hex(), 0
        self._at = at + self.HEX_DIGITS
        return self._digits[at : at + self.HEX_DIGITS]


_random_ids = _RandomIds()
os.register_at_fork(after_in_child=_random_ids.reset)


def request_id_for(request: web.Request) -> str:
    given = request.headers.get("X-Request-ID", "")
    return given if given and _VALID_ID.match(given) else _random_ids.next()


def open_request_context(request: web.Request) -> tuple[str, contextvars.Token[str | None]]:
    """The request's id (bound into the structlog context) and the token that undoes the binding;
    the audit middleware opens and closes it around the whole request and keeps the id in the
    request's state."""
    request_id = request_id_for(request)
    return request_id, _REQUEST_ID_VAR.set(request_id)


def close_request_context(token: contextvars.Token[str | None]) -> None:
    _REQUEST_ID_VAR.reset(token)
