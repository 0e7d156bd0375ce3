"""Connections, below the request path: idle and slow-header clients, and the HTTP parser's refusals.

aiohttp closes an idle keep-alive connection only after it served a request, and not one that
never completes a request head (silent, or trickling its headers byte by byte); and when its
parser refuses a request (a NUL in a header, an oversized header, a bad request line) it logs
the raw line, credentials included, and writes no audit event. ``GuardedAppRunner`` serves
the app with a request handler that:

- closes a connection that has no request in progress and has not completed a request head
  for ``idle_timeout`` seconds (from connecting, or since its last answer);
- answers a parser refusal with a problem+json body, records it in the audit log with the
  client address and the kind of error only (never the raw bytes), and closes the connection;
- empties an ``Expect`` header aiohttp would answer itself, before any middleware, so that the
  request path refuses it in the door's format (``http/headers.py``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from aiohttp.web_request import BaseRequest

from skywarden.server.errors import INVALID_REQUEST, KIND_BY_STATUS, ApiError, ErrorKind
from skywarden.server.http.headers import blank_unmet_expectation
from skywarden.server.http.problems import problem_response

# (reason, client address, status) -> None: the audit trail of what never became a request
ConnectionAuditor = Callable[[str, str | None, int], None]

PARSER_DETAIL = "The request could not be parsed as HTTP."


class GuardedRequestHandler(RequestHandler):
    idle_timeout: float
    auditor: ConnectionAuditor

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._last_activity = self._loop.time()
        self._seen_requests = self._request_count
        self._partial_head = False
        self._idle_check = self._loop.call_later(self.idle_timeout, self._check_idle)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self._request_count != self._seen_requests:  # a request head was completed
            self._seen_requests = self._request_count
            self._last_activity = self._loop.time()
            self._partial_head = False
        elif data and not self._request_in_progress:
            self._partial_head = True

    async def _handle_request(self, request: BaseRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(request, *args, **kwargs)
        finally:
            self._last_activity = self._loop.time()

    def _check_idle(self) -> None:
        if self.transport is None or self._force_close:
            return
        now = self._loop.time()
        waited = now - self._last_activity
        if self._request_in_progress or self._messages or waited < self.idle_timeout:
            delay = self.idle_timeout if self._request_in_progress else self.idle_timeout - waited
            self._idle_check = self._loop.call_later(max(delay, 0.01), self._check_idle)
            return
        if self._partial_head or self._request_count == 0:  # silent or trickling: worth a record
            self.auditor("slow_headers" if self._partial_head else "idle_timeout", self._peer(), 408)
        self.force_close()

    def skip_lingering(self) -> None:
        """Close after the current answer without first draining an unread body (aiohttp would
        read it for up to ``lingering_time``): for refused requests, whose upload nobody wants."""
        self._lingering_time = 0.0

    def connection_lost(self, exc: BaseException | None) -> None:
        self._idle_check.cancel()
        super().connection_lost(exc)

    def _peer(self) -> str | None:
        peer = self.transport.get_extra_info("peername") if self.transport is not None else None
        return str(peer[0]) if isinstance(peer, (tuple, list)) and peer else None

    def handle_error(
        self, request: BaseRequest, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        """Replaces aiohttp's own: no raw request line in any log, an audit event, problem+json."""
        kind = KIND_BY_STATUS.get(status) or ErrorKind(status, "Bad request", "bad-request", INVALID_REQUEST)
        self.auditor(f"http_parser:{type(exc).__name__ if exc else 'error'}", self._peer(), status)
        response = problem_response(ApiError(kind, PARSER_DETAIL if status < 500 else kind.title))
        response.force_close()
        return response


class GuardedServer(web.Server):
    idle_timeout: float
    auditor: ConnectionAuditor

    def __call__(self) -> RequestHandler:
        handler = GuardedRequestHandler(self, loop=self._loop, **self._kwargs)
        handler.idle_timeout = self.idle_timeout
        handler.auditor = self.auditor
        return handler


class GuardedAppRunner(web.AppRunner):
    """An AppRunner whose connections are guarded as described above."""

    def __init__(self, app: web.Application, *, idle_timeout: float, auditor: ConnectionAuditor, **kwargs: Any):
        super().__init__(app, **kwargs)
        self._idle_timeout = idle_timeout
        self._auditor = auditor

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        server.__class__ = GuardedServer  # the same object; only how it makes handlers changes
        server.idle_timeout = self._idle_timeout
        server.auditor = self._auditor
        make_request = server.request_factory

        def request_factory(message, *args: Any) -> BaseRequest:
            return make_request(blank_unmet_expectation(message), *args)

        server.request_factory = request_factory
        return server
