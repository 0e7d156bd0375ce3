"""What a plugin may put in a request: the one place its method, URL, headers, query and body are
checked before anything is sent. A refusal is an ``UpstreamError`` with cause ``invalid_request``
that names the part at fault, never a header's value."""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Mapping
from typing import Any

from yarl import URL

from skywarden.server.plugins.ssrf import WEB_SCHEMES
from skywarden.tools.http import UpstreamError
from skywarden.tools.settings import Secret

TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+\Z")  # RFC 9110 token: a method or a header name
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")  # no CR, LF, NUL or other control but tab
# Framing and routing are the client's: a plugin's Content-Length or Host could make one request
# two on a pooled connection, or send it to another site than its URL names.
SET_BY_CLIENT = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "keep-alive", "upgrade", "te", "trailer"}
)
REFUSED_METHODS = frozenset({"CONNECT"})  # a tunnel, not a request
_DIGEST_KEY = secrets.token_bytes(16)  # per process: a digest in a cache key says nothing of the values


def invalid(service: str, url: str, what: str) -> UpstreamError:
    return UpstreamError(f"{service}: the request was not sent: {what}.", url=url, cause="invalid_request")


def checked_method(method: object, service: str, url: str) -> str:
    if not isinstance(method, str) or not TOKEN.match(method):
        raise invalid(service, url, "the method must be an HTTP method name such as GET or POST")
    upper = method.upper()
    if upper in REFUSED_METHODS:
        raise invalid(service, url, f"{upper} is not a method this client sends")
    return upper


def checked_target(url: object, service: str) -> URL:
    """``url`` as a yarl URL: absolute http(s), with a host, without user info (credentials go in
    a header, where they are never logged)."""
    shown = url if isinstance(url, str) else ""
    if not isinstance(url, str):
        raise invalid(service, shown, "the URL must be text")
    try:
        target = URL(url)
        target.port  # noqa: B018 (a port out of range is only found when read)
    except (ValueError, TypeError):
        raise invalid(service, url, "the URL does not parse") from None
    if target.scheme not in WEB_SCHEMES or not target.raw_host:
        raise invalid(service, url, "only http:// and https:// URLs with a host are called")
    if target.raw_user is not None or target.raw_password is not None:
        raise invalid(service, url, "the URL carries credentials (user info); send them in a header instead")
    return target


def checked_headers(headers: object, service: str, url: str) -> dict[str, str]:
    """The headers to send, ``Secret`` values revealed: names are tokens given once (in any case),
    values text or ``Secret`` without line breaks or other control characters."""
    if not isinstance(headers, Mapping):
        raise invalid(service, url, "the headers must be a mapping of names to values")
    sent: dict[str, str] = {}
    seen: set[str] = set()
    for name, value in headers.items():
        if not isinstance(name, str) or not TOKEN.match(name):
            raise invalid(service, url, f"the header name {str(name)[:40]!r} is not a valid header name")
        lower = name.lower()
        if lower in seen:
            raise invalid(service, url, f"the header {name!r} is given twice")
        if lower in SET_BY_CLIENT:
            raise invalid(service, url, f"the header {name!r} is set by the client itself; leave it out")
        seen.add(lower)
        text = value.reveal() if isinstance(value, Secret) else value
        if not isinstance(text, str):
            raise invalid(service, url, f"the value of the header {name!r} must be text or a Secret")
        if CONTROL.search(text):
            raise invalid(service, url, f"the value of the header {name!r} has a line break or control character")
        sent[name] = text
    return sent


def checked_params(params: object, service: str, url: str) -> dict[str, str]:
    if not isinstance(params, Mapping):
        raise invalid(service, url, "the query parameters must be a mapping of names to values")
    found: dict[str, str] = {}
    for name, value in params.items():
        text = value.reveal() if isinstance(value, Secret) else value
        if not isinstance(name, str) or not isinstance(text, str):
            raise invalid(service, url, "query parameter names and values must be text (or a Secret value)")
        found[name] = text
    return found


def encoded_body(json_value: Any, data: object, service: str, url: str) -> tuple[bytes | None, str | None]:
    """(body, its default Content-Type) from a JSON value or raw ``data``; never both."""
    if json_value is not None and data is not None:
        raise invalid(service, url, "give a JSON body or raw data, not both")
    if json_value is not None:
        try:
            text = json.dumps(json_value, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise invalid(service, url, f"the JSON body cannot be encoded ({exc})") from None
        return text.encode(), "application/json"
    if data is None:
        return None, None
    if isinstance(data, str):
        return data.encode(), "text/plain; charset=utf-8"
    if isinstance(data, (bytes, bytearray, memoryview)):
        return bytes(data), "application/octet-stream"
    raise invalid(service, url, "raw data must be bytes or text")


def checked_timeout(timeout: object, limit: float, service: str, url: str) -> float:
    """Seconds for this request: ``timeout`` when given, never more than ``limit`` (the server's)."""
    if timeout is None:
        return limit
    if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise invalid(service, url, "the timeout must be a positive number of seconds")
    return min(float(timeout), limit)


def headers_digest(headers: Mapping[str, str]) -> bytes:
    """A keyed digest of the headers (names in any case, in any order): the part of a cache key
    that says which headers an answer was asked with, without holding their values."""
    digest = hashlib.blake2b(key=_DIGEST_KEY, digest_size=16)
    for name, value in sorted((name.lower(), value) for name, value in headers.items()):
        digest.update(f"{name}\0{value}\n".encode())
    return digest.digest()
