"""HTTP framing shared by both eras: body checks, JSON answers, lazily committed SSE, and the
JSON-RPC door's error renderer (registered for /mcp by the app factory)."""

from __future__ import annotations

import base64
import binascii
import functools
import re
from typing import Any

from aiohttp import web

from skywarden.server.errors import INVALID_JSON, NOT_ACCEPTABLE, UNSUPPORTED_MEDIA_TYPE, ApiError
from skywarden.server.http.body import BodyReader
from skywarden.server.http.responses import json_response
from skywarden.server.jsonutil import BodyError, dumps
from skywarden.server.mcp import protocol as p
from skywarden.server.request_state import state_of
from skywarden.tools.contract import ProgressReporter

_B64 = re.compile(r"^=\?base64\?(.*)\?=\Z")


def decode_header_value(value: str | None) -> str | None:
    """Undo the ``=?base64?...?=`` form; a malformed one decodes to None (never matches)."""
    if value is None:
        return None
    match = _B64.match(value)
    if match is None:
        return value
    try:
        raw = base64.b64decode(match.group(1), validate=True)
        return raw.decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def error_answer(
    request_id: Any, error: p.RpcError, status: int, headers: dict[str, str] | None = None
) -> web.Response:
    return json_response(p.error_message(request_id, error), error.status or status, headers)


def rpc_error_answer(request: web.Request, error: ApiError) -> web.Response:
    """The JSON-RPC door's rendering of an ``ApiError`` raised outside a dispatched request
    (``http/errors.py``), with the id of the message once its body was read."""
    return json_response(
        p.error_message(state_of(request).rpc_id, p.rpc_error_from(error)), error.kind.status, error.headers
    )


def accepts(request: web.Request) -> tuple[bool, bool]:
    """(JSON acceptable, SSE acceptable) from the Accept header, wildcards included."""
    return _accepted(request.headers.get("Accept", ""))


@functools.lru_cache(maxsize=256)  # a client sends the same few values; client input, so bounded
def _accepted(accept: str) -> tuple[bool, bool]:
    types = {part.split(";")[0].strip().lower() for part in accept.split(",")}
    wildcard = "*/*" in types
    return (
        wildcard or "application/json" in types or "application/*" in types,
        wildcard or "text/event-stream" in types or "text/*" in types,
    )


async def read_message(request: web.Request, body_reader: BodyReader) -> Any:
    """Check Accept and Content-Type, then parse the body (raising ``ApiError``s the error
    middleware renders as JSON-RPC). Once parsed, the message's id is kept for every later error."""
    json_ok, _ = accepts(request)
    if not json_ok:
        raise ApiError(NOT_ACCEPTABLE, "Accept must include application/json")
    if request.content_type != "application/json":
        raise ApiError(UNSUPPORTED_MEDIA_TYPE, "Content-Type must be application/json")
    body = await body_reader.read(request)
    try:
        message = body_reader.loads(body)
    except BodyError as exc:
        raise ApiError(INVALID_JSON, f"Parse error: {exc.reason}") from None
    state_of(request).rpc_id = p.echo_id(message)
    return message


MAX_PROGRESS_TOKEN = 256  # characters; every progress notification of the call repeats it


def progress_token(params: Any) -> str | int | None:
    """The request's progress token, refused (-32602) when it is longer than a progress
    notification should repeat (a megabyte echoed a thousand times would be a gigabyte)."""
    meta = params.get("_meta") if isinstance(params, dict) else None
    token = meta.get("progressToken") if isinstance(meta, dict) else None
    if not isinstance(token, (str, int)) or isinstance(token, bool):
        return None
    if (len(token) if isinstance(token, str) else token.bit_length()) > MAX_PROGRESS_TOKEN:
        raise p.RpcError(
            p.INVALID_PARAMS,
            f"params._meta.progressToken must be a string of at most {MAX_PROGRESS_TOKEN} characters "
            "or an integer of at most as many bits",
        )
    return token


class EventStream:
    """Answer as SSE only once there is something to stream; otherwise a plain JSON answer."""

    def __init__(self, request: web.Request, headers: dict[str, str]) -> None:
        self.request = request
        self.headers = headers
        self.response: web.StreamResponse | None = None

    async def send(self, message: dict[str, Any]) -> None:
        if self.response is None:
            self.response = web.StreamResponse(
                status=200,
                headers={
                    **self.headers,
                    "Content-Type": "text/event-stream",
                    "Cache-Control": "no-cache, no-transform",
                    "X-Accel-Buffering": "no",
                },
            )
            await self.response.prepare(self.request)
        await self.response.write(b"event: message\ndata: " + dumps(message) + b"\n\n")

    def progress_reporter(self, token: str | int) -> ProgressReporter:
        async def report(progress: float, total: float | None = None, message: str | None = None) -> None:
            params: dict[str, Any] = {"progressToken": token, "progress": progress}
            if total is not None:
                params["total"] = total
            if message is not None:
                params["message"] = message
            await self.send({"jsonrpc": "2.0", "method": "notifications/progress", "params": params})

        return report

    async def finish(self, message: dict[str, Any] | bytes, status: int) -> web.StreamResponse:
        if self.response is None:
            return json_response(message, status, self.headers)
        if isinstance(message, bytes):
            await self.response.write(b"event: message\ndata: " + message + b"\n\n")
        else:
            await self.send(message)
        await self.response.write_eof()
        return self.response
