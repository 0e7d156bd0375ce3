"""DNS-rebinding protection: check Host on every request and Origin on /mcp.

A Host that is not exactly ``host[:port]`` is a 400 (RFC 9112 section 3.2), as is an HTTP/1.1
request without one; a well-formed Host the settings do not allow is a 403. A request target in
absolute form (``GET http://host/path``, RFC 9112 section 3.2.2) must name the same host as Host
(aiohttp would take the target's host for the request's), with no userinfo: else a 400.

A server bound to a loopback address answers only to loopback host names
unless ``allowed_hosts`` says otherwise. A present Origin on /mcp must be in
``cors_origins`` (the list CORS uses) or, on a loopback server, a loopback origin.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import Enum

from aiohttp import web

from skywarden.server.errors import FORBIDDEN_HOST, FORBIDDEN_ORIGIN, INVALID_HEADER, INVALID_TARGET, ApiError
from skywarden.server.hosts import DEFAULT_PORTS, normal_origin, origin_host, parse_host, same_host
from skywarden.server.http.routes import Door, door_of
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
    if origin in cors_origins or _normal_origin(origin) in cors_origins:  # cors_origins are kept normal
        return True
    parts = origin_host(origin)
    return parts is not None and is_loopback(bind_host) and is_loopback(parts[1])


_normal_origin = functools.lru_cache(maxsize=1024)(normal_origin)  # Origin values are client input


def target_authority(target: str) -> tuple[str, str] | None:
    """(scheme, authority) of a request target that is not in origin form (``/path``): absolute
    form ``scheme://authority/path`` (scheme lower-cased), or authority form ``host:port`` (the
    scheme ""); None for origin form and ``*``."""
    if target.startswith("/") or target == "*":
        return None
    scheme, sep, rest = target.partition("://")
    if not sep:
        return "", target
    end = min((i for i in map(rest.find, "/?#") if i >= 0), default=len(rest))
    return scheme.lower(), rest[:end]


def check_target(target: str, host: str | None) -> str | None:
    """Raise unless a request target in absolute (or authority) form names the host of ``host``
    (the Host header) with no userinfo; return the host name to judge: ``host``, or the target's
    authority when a request (HTTP/1.0) has no Host."""
    found = target_authority(target)
    if found is None:
        return host
    scheme, authority = found
    if "@" in authority:
        raise ApiError(INVALID_TARGET, "The request target must not hold userinfo (user@host).")
    if scheme and scheme not in DEFAULT_PORTS:
        raise ApiError(INVALID_TARGET, "An absolute request target must be an http or https URL.")
    if parse_host(authority) is None:
        raise ApiError(INVALID_TARGET, "The request target's host must be host[:port].")
    if host is None:
        return authority
    if not same_host(scheme, authority, host):
        raise ApiError(INVALID_TARGET, "The request target names another host than the Host header.")
    return host


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
        target = request.raw_path
        if target[:1] != "/":
            host = check_target(target, host)
        verdict = host_verdict(host, bind_host, allowed_hosts)
        if verdict is not allowed:
            if verdict is malformed:
                raise ApiError(INVALID_HEADER, MALFORMED_HOST, audit={"header": "Host"})
            raise ApiError(FORBIDDEN_HOST, "This Host is not allowed.")
        origin = headers.get("Origin")
        if (
            origin is not None
            and door_of(request) is Door.JSON_RPC
            and not origin_allowed(origin, bind_host, cors_origins)
        ):
            raise ApiError(FORBIDDEN_ORIGIN, "This Origin is not allowed.")

    return check_host_origin
