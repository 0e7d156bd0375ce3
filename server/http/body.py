"""Reading a request body, the one place it is read: coding, content type, size, time and nesting checks.

aiohttp undoes a ``Content-Encoding`` of ``gzip`` or ``deflate`` as the body arrives, a chunk
at a time (so a small compressed body never grows past ``max_body_bytes`` in memory: the read
stops there with a 413), and leaves any other coding as it is. So the edge check here refuses
every other coding with a 415 before a byte is read, and ``read_body`` turns a body that is not
what its headers say (not gzip after all, a broken chunked encoding) into a 400 in the door's
format instead of an unhandled error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.compression_utils import HAS_BROTLI, HAS_ZSTD
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.web_protocol import RequestPayloadError

from skywarden.server.errors import (
    INVALID_BODY,
    INVALID_JSON,
    PAYLOAD_TOO_LARGE,
    REQUEST_TIMEOUT,
    UNSUPPORTED_MEDIA_TYPE,
    ApiError,
)
from skywarden.server.jsonutil import BodyError, loads_guarded

MAX_REASON_SHOWN = 300  # parser messages quote the input; keep them short


# The codings aiohttp undoes (br and zstd only with their optional packages installed).
CODINGS = ("identity", "gzip", "deflate", *(("br",) if HAS_BROTLI else ()), *(("zstd",) if HAS_ZSTD else ()))


@dataclass(frozen=True, slots=True)
class BodyReader:
    """Reads request bodies within the limits the app factory gives it from the settings:
    ``timeout`` (``body_timeout``) and ``max_json_depth``; handlers receive it from the factory."""

    timeout: float
    max_json_depth: int

    async def read(self, request: web.Request) -> bytes:
        """The body, decoded from its Content-Encoding, within ``timeout`` (slow senders get
        408) and ``max_body_bytes`` (413, counted after decoding); one that is not in its coding
        or whose framing is broken is a 400 ``invalid-body``."""
        try:
            if request.content.is_eof():  # the whole body is already here: nothing to wait for
                return await request.read()
            async with asyncio.timeout(self.timeout):  # no extra task, unlike wait_for
                return await request.read()
        except TimeoutError:
            raise ApiError(
                REQUEST_TIMEOUT, "The request body arrived too slowly.", headers={"Connection": "close"}
            ) from None
        except (RequestPayloadError, HttpProcessingError):
            raise ApiError(INVALID_BODY, _unreadable(request), headers={"Connection": "close"}) from None

    def loads(self, body: bytes) -> Any:
        """Parse a JSON body no deeper than ``max_json_depth`` (raises ``jsonutil.BodyError``)."""
        return loads_guarded(body, self.max_json_depth)

    async def read_json(self, request: web.Request, *, allow_empty: bool = False) -> Any:
        """Return the parsed JSON body or raise an ApiError (400/408/413/415). With ``allow_empty``
        an absent or blank body reads as ``{}`` (a body of ``null`` stays ``None``)."""
        if not request.body_exists:
            if allow_empty:
                return {}
            raise ApiError(INVALID_BODY, "A JSON body is required.")
        if not is_json_content_type(request):
            raise ApiError(
                UNSUPPORTED_MEDIA_TYPE,
                f"Send the body as application/json, not {request.content_type or 'no content type'}.",
            )
        body = await self.read(request)
        if not body.strip() and allow_empty:
            return {}
        try:
            return self.loads(body)
        except BodyError as exc:
            raise ApiError(INVALID_JSON, exc.reason[:MAX_REASON_SHOWN]) from None


def _unreadable(request: web.Request) -> str:
    coding = request.headers.get("Content-Encoding", "").lower()
    if coding and coding != "identity":
        return f"The body is not valid {coding} data, as its Content-Encoding says."
    return "The body could not be read: its framing (chunked transfer coding) is broken."


def check_content_coding(request: web.Request) -> None:
    """An edge check (``auth/admission.py``): a Content-Encoding the server can undo, or none.
    Any other (``compress``, ``x-gzip``, two codings, an unknown one) would reach the handler
    still encoded; refused with a 415 before a byte is read."""
    codings = request.headers.getall("Content-Encoding", ())
    if not codings or (len(codings) == 1 and codings[0].lower() in CODINGS):
        return
    raise ApiError(
        UNSUPPORTED_MEDIA_TYPE,
        f"Send the body in one Content-Encoding of {', '.join(CODINGS)}, or none.",
        headers={"Accept-Encoding": ", ".join(CODINGS)},
    )


def body_size_check(limit: int) -> Callable[[web.Request], None]:
    """An edge check (``auth/admission.py``): refuse an announced body over ``limit``
    (``max_body_bytes``) at once, before authentication and before a byte of it is read (a body
    without Content-Length is cut off at the same size as it is read)."""

    def check_body_size(request: web.Request) -> None:
        length = request.content_length
        if length is not None and length > limit:
            raise ApiError(PAYLOAD_TOO_LARGE, f"The body may be at most {limit} bytes.")

    return check_body_size


def unread_body(request: web.Request) -> bool:
    """A body the handler never read: answering and keeping the connection would mean reading it."""
    return request.body_exists and not request.content.is_eof()


def is_json_content_type(request: web.Request) -> bool:
    ctype = request.content_type
    return ctype == "application/json" or (ctype.startswith("application/") and ctype.endswith("+json"))
