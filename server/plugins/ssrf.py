"""The SSRF guard of plugins' HTTP clients: which addresses a request may reach.

A request goes to a public address, or to one inside ``upstream_allowed_networks``, unless the
plugin's operator configured its origin (one of the plugin's URL settings): then it goes where
that origin's name points. The check is made on the addresses actually connected to: an IP
literal before the request, a name in the resolver (``GuardedResolver``), so a name that
resolves to a public address when checked and a private one when connected to (DNS rebinding)
cannot slip through.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from aiohttp.abc import AbstractResolver, ResolveResult
from yarl import URL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Origin = tuple[str, str, int]  # (scheme, host as yarl writes it for the wire, port)

NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # the well-known prefix: the last 32 bits are an IPv4 address
# Special-purpose blocks (IANA registries) that this Python's ``is_global`` may still call global.
NOT_PUBLIC = tuple(
    ipaddress.ip_network(block) for block in ("192.0.0.0/24", "192.88.99.0/24", "3fff::/20", "5f00::/16")
)
WEB_SCHEMES = frozenset({"http", "https"})


class BlockedAddress(Exception):
    """No address of ``host`` may be connected to. Not an ``OSError``: aiohttp lets it through
    as it is, rather than as a connection error."""

    def __init__(self, host: str) -> None:
        super().__init__(host)
        self.host = host


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet: not loopback, private, link-local,
    unique-local, site-local, multicast, unspecified, reserved or shared (100.64.0.0/10), and
    not an IPv6 form that carries such an IPv4 address (IPv4-mapped, NAT64, 6to4). Teredo and
    the deprecated IPv4-compatible form are refused outright."""
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return is_public(address.ipv4_mapped)
        if address in NAT64:
            return is_public(ipaddress.IPv4Address(int(address) & 0xFFFF_FFFF))
        if address.sixtofour is not None:
            return is_public(address.sixtofour)
        if address.teredo is not None or address.is_site_local:
            return False
    return address.is_global and not (
        any(address in block for block in NOT_PUBLIC)
        or address.is_multicast
        or address.is_reserved
        or address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_unspecified
    )


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(value, strict=False) for value in values)


@dataclass(frozen=True, slots=True)
class AddressPolicy:
    """Public addresses, and those inside ``allowed`` (the operator's ``upstream_allowed_networks``)."""

    allowed: tuple[IPNetwork, ...] = ()

    def allows(self, text: str) -> bool:
        """Whether the address written ``text`` may be connected to (a name is not an address: no)."""
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            return False
        if is_public(address):
            return True
        plain = address.ipv4_mapped if isinstance(address, ipaddress.IPv6Address) else None
        return any(address in network or (plain is not None and plain in network) for network in self.allowed)


def literal_address(host: str) -> bool:
    """Whether ``host`` (as yarl gives it: IPv6 without brackets) is an IP address, which
    aiohttp connects to without asking the resolver."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class GuardedResolver(AbstractResolver):
    """A resolver that keeps only the addresses ``policy`` allows, and refuses a name that has
    none (``BlockedAddress``). Wraps another resolver (aiohttp's default unless given)."""

    def __init__(self, policy: AddressPolicy, inner: AbstractResolver) -> None:
        self._policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        found = await self._inner.resolve(host, port, family)
        allowed = [result for result in found if self._policy.allows(result["host"])]
        if not allowed:
            raise BlockedAddress(host)
        return allowed

    async def close(self) -> None:
        await self._inner.close()


def origin_of(url: URL) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL; None for anything else."""
    host = url.raw_host
    port = url.port
    if url.scheme not in WEB_SCHEMES or not host or port is None:
        return None
    return url.scheme, host, port


def origins(values: Iterable[object]) -> frozenset[Origin]:
    """The origins of those ``values`` that are http(s) URLs with a host; other values are ignored
    (a plugin's settings may be passed whole)."""
    found = set()
    for value in values:
        if not isinstance(value, str):
            continue
        try:
            origin = origin_of(URL(value.strip()))
        except (ValueError, TypeError):
            continue
        if origin is not None:
            found.add(origin)
    return frozenset(found)
