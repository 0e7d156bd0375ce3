"""Client address and scheme behind a reverse proxy.

``X-Forwarded-For`` and ``X-Forwarded-Proto`` are believed only when the peer
is one of ``trusted_proxies``; the client is then the right-most address in
the chain that is not itself a trusted proxy. Everyone else's headers are
ignored, so a client cannot spoof its address (rate limits, audit) or claim
HTTPS. (aiohttp-remotes' strict variant requires every request to come through
the proxy; this one also serves direct clients.)
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypedDict

from aiohttp import web

from skywarden.server.request_state import open_state

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(items: Iterable[str]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(item, strict=False) for item in items)


def _trusted(address: str | None, networks: tuple[Network, ...]) -> bool:
    if not address:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in net for net in networks)


def forwarded_client(request: web.Request, networks: tuple[Network, ...]) -> tuple[str | None, str | None]:
    """(client address, scheme) the trusted chain vouches for; (None, None) when it vouches for nothing."""
    if not networks or not _trusted(request.remote, networks):
        return None, None
    chain = [part.strip() for value in request.headers.getall("X-Forwarded-For", ()) for part in value.split(",")]
    client = None
    for address in reversed(chain):
        if "%" in address:  # a scoped IPv6 address (fe80::1%eth0): any zone would make a new client
            break
        try:
            ipaddress.ip_address(address)
        except ValueError:
            break  # a garbled hop: stop believing the chain here
        client = address
        if not _trusted(address, networks):
            break
    proto = request.headers.get("X-Forwarded-Proto", "").split(",")[0].strip().lower()
    return client, proto if proto in ("http", "https") else None


class _Overrides(TypedDict, total=False):
    """What ``Request.clone`` replaces for a request that came through a trusted proxy."""

    remote: str
    scheme: str


def proxy_middleware_for(networks: tuple[Network, ...]) -> Middleware:
    """Step 0, the outermost middleware when ``trusted_proxies`` is set: it makes the request's
    state, which the clone it hands on shares (``request_state``)."""

    @web.middleware
    async def trusted_proxy_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = open_state(request)
        client, scheme = forwarded_client(request, networks)
        if client is not None or scheme is not None:
            overrides: _Overrides = {}
            if client is not None:
                overrides["remote"] = client
            if scheme is not None:
                overrides["scheme"] = scheme
                state.forwarded_https = scheme == "https"
            request = request.clone(**overrides)
        return await handler(request)

    return trusted_proxy_middleware
