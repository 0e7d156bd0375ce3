"""DNS-rebinding protection: check Host on every request and Origin on /mcp.

A server bound to a loopback address answers only to loopback host names
unless ``allowed_hosts`` says otherwise. A present Origin on /mcp must be in
``cors_origins`` (the list CORS uses) or, on a loopback server, a loopback origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from aiohttp import web

from skywarden.server.errors import FORBIDDEN_HOST, FORBIDDEN_ORIGIN, ApiError
from skywarden.server.http.paths import is_mcp
from skywarden.server.loopback import is_loopback
from skywarden.server.settings import Settings


def _split(url: str) -> tuple[str, str]:
    """(scheme, host name) of a URL or ``//authority``; ("", "") for anything that does not parse.

    Total on purpose: header values are attacker input (unbalanced brackets, bad ports,
    control characters), and every one of them must end in a clean 403, never an exception."""
    try:
        parts = urlsplit(url)
        return parts.scheme, (parts.hostname or "").lower()
    except ValueError:
        return "", ""


def hostname_of(host_header: str | None) -> str:
    """The host name of a Host header value, lower-cased; "" when it is absent or malformed."""
    return _split("//" + (host_header or ""))[1]


@functools.lru_cache(maxsize=1024)  # Host values are client input: bounded, least recently used out
def host_allowed(host_header: str | None, bind_host: str, allowed: tuple[str, ...]) -> bool:
    hostname = hostname_of(host_header)
    if allowed:
        return "*" in allowed or hostname in allowed
    if is_loopback(bind_host):
        return bool(hostname) and is_loopback(hostname)
    return True


def origin_allowed(origin: str, bind_host: str, cors_origins: tuple[str, ...]) -> bool:
    if origin in cors_origins:
        return True
    scheme, hostname = _split(origin)
    return scheme in ("http", "https") and is_loopback(bind_host) and bool(hostname) and is_loopback(hostname)


def host_origin_check(settings: Settings) -> Callable[[web.Request], None]:
    """The edge check (``auth/admission.py``) for these settings."""
    bind_host, allowed_hosts, cors_origins = settings.host, settings.allowed_hosts, settings.cors_origins

    def check_host_origin(request: web.Request) -> None:
        headers = request.headers
        if not host_allowed(headers.get("Host"), bind_host, allowed_hosts):
            raise ApiError(FORBIDDEN_HOST, "This Host is not allowed.")
        origin = headers.get("Origin")
        if origin is not None and is_mcp(request.path) and not origin_allowed(origin, bind_host, cors_origins):
            raise ApiError(FORBIDDEN_ORIGIN, "This Origin is not allowed.")

    return check_host_origin
