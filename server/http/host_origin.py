"""DNS-rebinding protection: check Host on every request and Origin on /mcp.

A Host that is not exactly ``host[:port]`` is a 400 (RFC 9112 section 3.2), as is an HTTP/1.1
request without one; a well-formed Host the settings do not allow is a 403.

A server bound to a loopback address answers only to loopback host names
unless ``allowed_hosts`` says otherwise. A present Origin on /mcp must be in
``cors_origins`` (the list CORS uses) or, on a loopback server, a loopback origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum

from aiohttp import web

from skywarden.server.errors import FORBIDDEN_HOST, FORBIDDEN_ORIGIN, INVALID_HEADER, ApiError
from skywarden.server.hosts import origin_host, parse_host
from skywarden.server.http.paths import is_mcp
from skywarden.server.loopback import is_loopback
from skywarden.server.settings import Settings


class HostVerdict(Enum):
    ALLOWED = "allowed"
    NOT_ALLOWED = "not allowed"
    MALFORMED = "malformed"


@functools.lru_cache(maxsize=1024)  # Host values are client input: bounded, least recently used out
def host_verdict(host_header: str | None, bind_host: str, allowed: tuple[str, ...]) -> HostVerdict:
    if host_header is None:
        hostname = ""
    else:
        parsed = parse_host(host_header)
        if parsed is None:
            return HostVerdict.MALFORMED
        hostname = parsed[0]
    if allowed:
        ok = "*" in allowed or hostname in allowed
    elif is_loopback(bind_host):
        ok = bool(hostname) and is_loopback(hostname)
    else:
        ok = True
    return HostVerdict.ALLOWED if ok else HostVerdict.NOT_ALLOWED


def origin_allowed(origin: str, bind_host: str, cors_origins: tuple[str, ...]) -> bool:
    if origin in cors_origins:
        return True
    parts = origin_host(origin)
    return parts is not None and is_loopback(bind_host) and is_loopback(parts[1])


MALFORMED_HOST = "The Host header must be host[:port]: a host name or IP address and an optional port 1-65535."


def host_origin_check(settings: Settings) -> Callable[[web.Request], None]:
    """The edge check (``auth/admission.py``) for these settings."""
    bind_host, allowed_hosts, cors_origins = settings.host, settings.allowed_hosts, settings.cors_origins
    allowed, malformed = HostVerdict.ALLOWED, HostVerdict.MALFORMED

    def check_host_origin(request: web.Request) -> None:
        headers = request.headers
        host = headers.get("Host")
        if host is None and request.version >= (1, 1):
            raise ApiError(INVALID_HEADER, "An HTTP/1.1 request must carry a Host header.", audit={"header": "Host"})
        verdict = host_verdict(host, bind_host, allowed_hosts)
        if verdict is not allowed:
            if verdict is malformed:
                raise ApiError(INVALID_HEADER, MALFORMED_HOST, audit={"header": "Host"})
            raise ApiError(FORBIDDEN_HOST, "This Host is not allowed.")
        origin = headers.get("Origin")
        if origin is not None and is_mcp(request.path) and not origin_allowed(origin, bind_host, cors_origins):
            raise ApiError(FORBIDDEN_ORIGIN, "This Origin is not allowed.")

    return check_host_origin
