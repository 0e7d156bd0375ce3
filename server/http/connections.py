"""Connections, below the request path: idle and slow-header clients, and the HTTP parser's refusals.

aiohttp closes an idle keep-alive connection only after it served a request, and not one that
never completes a request head (silent, or trickling its headers byte by byte); and when its
parser refuses a request (a NUL in a header, an oversized header, a bad request line) it logs
the raw line, credentials included, and writes no audit event. ``GuardedAppRunner`` serves
the app with a request handler that:

- closes a connection that has no request in progress and has not completed a request head
  for ``idle_timeout`` seconds (from connecting, or since its last answer);
- answers a parser refusal with a problem+json body, records it in the audit log with the
  client address and the kind of error only (never the raw bytes), and closes the connection:
  431 for a header over ``MAX_HEADER_FIELD_BYTES`` or too many headers, 415 for a
  Content-Encoding aiohttp cannot undo (``br`` or ``zstd`` without their packages), else 400;
- hands a parser error in the body of the request being answered (a broken chunked encoding) to
  that request, whose body reader raises it (``http/body.py``: 400 in the door's format), rather
  than answering the same request twice with two audit events; and never drains a body whose
  reading failed;
- empties an ``Expect`` header aiohttp would answer itself, before any middleware, so that the
  request path refuses it in the door's format (``http/headers.py``).

aiohttp offers no public hook for any of these, so this module uses some of its private names.
``setup.cfg`` pins aiohttp to the minor release they were read from, and
``tests/test_aiohttp_internals.py`` names each one, so that raising the pin fails in CI.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, LineTooLong
from aiohttp.http_parser import RawRequestMessage
from aiohttp.streams import StreamReader
from aiohttp.web_protocol import RequestHandler, RequestPayloadError, _ErrInfo
from aiohttp.web_request import BaseRequest

from skywarden.server.errors import (
    HEADERS_TOO_LARGE,
    INVALID_BODY,
    INVALID_REQUEST,
    KIND_BY_STATUS,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
    ErrorKind,
)
from skywarden.server.http.body import CODINGS
from skywarden.server.http.headers import blank_unmet_expectation
from skywarden.server.http.problems import problem_response

# (reason, client address, status) -> None: the audit trail of what never became a request
ConnectionAuditor = Callable[[str, str | None, int], None]

# aiohttp's limits on one header and on the request line, in bytes. Its LineTooLong names only
# the limit it hit, so the two differ: that is how an over-long header (431) is told apart.
MAX_HEADER_FIELD_BYTES = 8190
MAX_REQUEST_LINE_BYTES = 8192
TOO_MANY_HEADERS = "Too many headers received"  # aiohttp's BadHttpMessage for over max_headers
# Codings aiohttp knows but refuses with the request head when their package is missing; its
# message names them in parentheses ("brotli (br)"), unlike a body that fails to decode.
MISSING_PACKAGE_CODINGS = tuple(c for c in ("br", "zstd") if c not in CODINGS)

PARSER_DETAIL = "The request could not be parsed as HTTP."
LONG_HEADER_DETAIL = f"A request header is longer than {MAX_HEADER_FIELD_BYTES} bytes."
MANY_HEADERS_DETAIL = "The request has too many headers."
CODING_DETAIL = "The body's Content-Encoding cannot be undone here; send it as identity, gzip or deflate."


def parser_refusal(status: int, exc: BaseException | None) -> ApiError:
    """The answer to a request aiohttp's parser refused (never quoting what it read)."""
    if isinstance(exc, LineTooLong) and exc.args[1] == MAX_HEADER_FIELD_BYTES:
        return ApiError(HEADERS_TOO_LARGE, LONG_HEADER_DETAIL)
    if exc is not None and str(exc).endswith(TOO_MANY_HEADERS):
        return ApiError(HEADERS_TOO_LARGE, MANY_HEADERS_DETAIL)
    if isinstance(exc, ContentEncodingError):
        if any(f"({coding})" in str(exc) for coding in MISSING_PACKAGE_CODINGS):  # refused with the head
            return ApiError(UNSUPPORTED_MEDIA_TYPE, CODING_DETAIL)
        return ApiError(INVALID_BODY, "The body is not valid data in its Content-Encoding.")
    kind = KIND_BY_STATUS.get(status) or ErrorKind(status, "Bad request", "bad-request", INVALID_REQUEST)
    return ApiError(kind, PARSER_DETAIL if status < 500 else kind.title)


class GuardedRequestHandler(RequestHandler):
    idle_timeout: float
    auditor: ConnectionAuditor

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._last_activity = self._loop.time()
        self._seen_requests = self._request_count
        self._partial_head = False
        self._idle_check = self._loop.call_later(self.idle_timeout, self._check_idle)

    body: StreamReader | None = None  # the body of the request being answered (or drained)

    def data_received(self, data: bytes) -> None:
        queued = len(self._messages)
        super().data_received(data)
        if len(self._messages) > queued:
            self._give_body_error_to_its_request()
        if self._request_count != self._seen_requests:  # a request head was completed
            self._seen_requests = self._request_count
            self._last_activity = self._loop.time()
            self._partial_head = False
        elif data and not self._request_in_progress:
            self._partial_head = True

    def _give_body_error_to_its_request(self) -> None:
        """A parser error while a body is still arriving is about that body: its reader raises
        it, and nothing more is read from this connection."""
        message, _ = self._messages[-1]
        body = self.body
        if isinstance(message, _ErrInfo) and body is not None and not body.is_eof() and body.exception() is None:
            self._messages.pop()
            body.set_exception(RequestPayloadError(message.message))
            self.skip_lingering()
            self.close()

    async def _handle_request(self, request: BaseRequest, *args: Any, **kwargs: Any) -> Any:
        try:
            return await super()._handle_request(request, *args, **kwargs)
        finally:
            self._last_activity = self._loop.time()
            if request.content.exception() is not None:  # a body that failed to read is not drained
                self.skip_lingering()

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

    def log_exception(self, *args: Any, **kwargs: Any) -> None:
        """aiohttp logs "Unhandled exception" when draining an unread body after the answer fails;
        a body that was not what its headers said only closes the connection (already answered)."""
        if isinstance(kwargs.get("exc_info"), RequestPayloadError):
            return
        super().log_exception(*args, **kwargs)

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
        error = parser_refusal(status, exc)
        self.auditor(f"http_parser:{type(exc).__name__ if exc else 'error'}", self._peer(), error.kind.status)
        response = problem_response(error)
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
        assert isinstance(server, GuardedServer)
        server.idle_timeout = self._idle_timeout
        server.auditor = self._auditor
        make_request = server.request_factory

        def request_factory(
            message: RawRequestMessage, payload: StreamReader, protocol: RequestHandler, *args: Any
        ) -> BaseRequest:
            if isinstance(protocol, GuardedRequestHandler):
                protocol.body = payload
            return make_request(blank_unmet_expectation(message), payload, protocol, *args)

        server.request_factory = request_factory
        return server
