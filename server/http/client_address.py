"""Which client an address stands for, wherever a budget or a bound is kept per client.

One host usually holds a whole IPv6 /64 and can pick any address in it for each request, so
counting IPv6 addresses one by one gives a single host as many budgets (and as many counter
entries) as it likes. A client is an IPv4 address or an IPv6 /64; an IPv4-mapped IPv6 address
(``::ffff:203.0.113.7``, as a dual-stack socket reports IPv4 peers) is its IPv4 address.
"""

from __future__ import annotations

import functools
import ipaddress

IPV6_CLIENT_PREFIX = 64


@functools.lru_cache(maxsize=4096)
def client_of(remote: str | None) -> str:
    """The client ``remote`` belongs to: the IPv4 address itself, an IPv6 address's /64 (an
    IPv4-mapped one as IPv4), or the text as given if it is no address ("unknown" if none)."""
    try:
        address = ipaddress.ip_address(remote or "")
    except ValueError:
        return remote or "unknown"
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, IPV6_CLIENT_PREFIX), strict=False))
    return str(address)
