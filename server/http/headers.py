"""Every request header the server reads, and the check they all pass before any of them is used.

aiohttp hands header values on as text decoded from UTF-8 with ``surrogateescape``: a byte that
is not valid UTF-8 (``\\xe9`` alone) becomes a lone surrogate, which breaks whatever later
encodes it (hashing a key, ``hmac.compare_digest``, a JSON answer that echoes it). Its parsers
already refuse every control byte but HTAB; what they let through beyond ASCII is any byte
from 0x80 to 0xFF. So one rule covers the whole class: a header in ``READ_HEADERS`` whose
value holds a byte above 0x7F is refused with a 400 that names the header, before
authentication and before any of them is read (the first edge check, ``auth/admission.py``).
No header the server reads is meant to hold anything but ASCII: keys, tokens, host names,
origins, media types, MCP routing headers (whose non-ASCII values are Base64-encoded by the
client) and request ids all are. Headers the server never reads (``User-Agent``, ``Referer``,
...) are left alone, and so is ``Cookie``: a browser sends the cookies of every application on
the same host name, whatever its port, and one of theirs holding UTF-8 must not refuse our
requests (a reader of a cookie of ours treats a value that is not ASCII as absent).
``tests/test_header_bytes.py`` holds this list to the code.

``Expect`` is read by aiohttp before any middleware runs: an expectation other than
``100-continue`` got a plain-text 417 (and a 500 when not ASCII) that no middleware saw.
``blank_unmet_expectation`` hides such a value from aiohttp (the guarded connections of
``http/connections.py`` apply it to every request), and the check here refuses it with a 417
in the door's format.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import hdrs, web
from aiohttp.http_parser import RawRequestMessage
from multidict import CIMultiDict, CIMultiDictProxy

from skywarden.server.errors import EXPECTATION_FAILED, INVALID_HEADER, ApiError

READ_HEADERS = (
    # credentials (auth/authenticate.py)
    "X-API-Key",
    "Authorization",
    # the request line's context: Host/Origin, CORS (aiohttp-cors), request id
    "Host",
    "Origin",
    "Access-Control-Request-Method",
    "Access-Control-Request-Headers",
    "X-Request-ID",
    # MCP transport (mcp/)
    "MCP-Protocol-Version",
    "Mcp-Session-Id",
    "Mcp-Method",
    "Mcp-Name",
    "Last-Event-ID",
    # console sign-on (console/sso.py): which site a request comes from, and whether it is a navigation
    "Sec-Fetch-Site",
    "Sec-Fetch-Mode",
    # bodies and answers (http/body.py, mcp/wire.py, aiohttp)
    "Accept",
    "Content-Type",
    "Content-Length",
    "Content-Encoding",
    "Transfer-Encoding",
    "Expect",
    "Connection",
    "Upgrade",
    # conditional and range requests on the API docs' static files (aiohttp's FileResponse)
    "Accept-Encoding",
    "If-Match",
    "If-None-Match",
    "If-Modified-Since",
    "If-Unmodified-Since",
    "If-Range",
    "Range",
)
FORWARDED_HEADERS = ("X-Forwarded-For", "X-Forwarded-Proto")  # read only from trusted_proxies
# read, but not refused for bytes beyond ASCII (see above): its one reader, console/binding.py,
# takes only an ASCII value of a cookie of ours and treats anything else as absent
READ_UNGUARDED = ("Cookie",)
CONTINUE = "100-continue"


def header_text_check(trusted_proxies: bool) -> Callable[[web.Request], None]:
    """The edge check (``auth/admission.py``, first of all): every header the server reads is
    ASCII, and an ``Expect`` asks for nothing but ``100-continue``. Cheap on the usual request:
    one ``bytes.isascii`` per header; names are looked at only for a value that fails it."""
    read = {name.lower().encode(): name for name in READ_HEADERS + (FORWARDED_HEADERS if trusted_proxies else ())}

    def check_header_text(request: web.Request) -> None:
        for name, value in request.raw_headers:
            if not value.isascii():
                shown = read.get(name.lower())
                if shown is not None:
                    raise ApiError(
                        INVALID_HEADER,
                        f"The {shown} header must be ASCII text; it holds bytes above 0x7F.",
                        audit={"header": shown},
                    )
        if hdrs.EXPECT in request.headers and not _only_continue(request.headers):
            raise ApiError(EXPECTATION_FAILED, f"The only expectation this server meets is Expect: {CONTINUE}.")

    return check_header_text


def _only_continue(headers: CIMultiDictProxy[str]) -> bool:
    return all(value.lower() == CONTINUE for value in headers.getall(hdrs.EXPECT, ()))


def blank_unmet_expectation(message: RawRequestMessage) -> RawRequestMessage:
    """``message`` with an ``Expect`` other than ``100-continue`` emptied, so that aiohttp (which
    reads it before any middleware) lets the request through to ``check_header_text``. The raw
    headers keep the bytes as sent."""
    headers = message.headers
    if hdrs.EXPECT not in headers or _only_continue(headers):
        return message
    blanked = CIMultiDict(headers)
    blanked[hdrs.EXPECT] = ""
    return message._replace(headers=CIMultiDictProxy(blanked))
