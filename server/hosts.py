"""``host[:port]`` and ``scheme://host[:port]`` as the Host and Origin headers and the settings
write them: one parser for the Host/Origin check, the HTTPS policy, ``allowed_hosts`` and
``cors_origins``."""

from __future__ import annotations

import ipaddress
import re

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_HOST_NAME = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?", re.ASCII)
MAX_HOST_NAME = 253
MAX_PORT = 65535
DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_host(value: str) -> tuple[str, int | None] | None:
    """(host name, port) of a value that is exactly ``host[:port]`` (RFC 9110 section 7.2), or None.

    The name is lower-cased, without a final dot, an IPv6 literal without its brackets. Refused:
    anything else a URL authority may hold (userinfo ``x@``, a path, a query), spaces, an empty
    value, an empty name, an empty, signed, zero-led or out-of-range port, an IPv6 zone, a name
    longer than DNS allows, anything not ASCII. Total: a Host is attacker input, so any text
    gives an answer."""
    if not value.isascii():
        return None
    if value.startswith("["):
        end = value.find("]")
        name, rest = value[1:end].lower(), value[end + 1 :]
        if end < 0 or "%" in name or not _is_ipv6(name):
            return None
    else:
        colon = value.find(":")
        name, rest = (value, "") if colon < 0 else (value[:colon], value[colon:])
        name = name.lower()
        if not _HOST_NAME.fullmatch(name):
            return None
        name = name.removesuffix(".")
        if len(name) > MAX_HOST_NAME:
            return None
    if not rest:
        return name, None
    digits = rest[1:]
    if rest[0] != ":" or not (digits.isascii() and digits.isdigit()) or len(digits) > 5 or digits[0] == "0":
        return None
    port = int(digits)
    return (name, port) if port <= MAX_PORT else None


def _is_ipv6(text: str) -> bool:
    try:
        ipaddress.IPv6Address(text)
    except ValueError:
        return False
    return True


def hostname_of(host_header: str | None) -> str:
    """The host name of a Host header value, lower-cased; "" when it is absent or malformed."""
    parsed = parse_host(host_header) if host_header else None
    return parsed[0] if parsed is not None else ""


def origin_host(origin: str) -> tuple[str, str] | None:
    """(scheme, host name) of an Origin that is exactly ``http[s]://host[:port]`` (RFC 6454), or None."""
    scheme, sep, authority = origin.partition("://")
    parsed = parse_host(authority) if sep and scheme in ("http", "https") else None
    return (scheme, parsed[0]) if parsed is not None else None


def same_host(scheme: str, first: str, second: str) -> bool:
    """Whether two ``host[:port]`` values name the same host and port for ``scheme`` (its default
    port written or not); False when either is not ``host[:port]``."""
    one, other = parse_host(first), parse_host(second)
    if one is None or other is None:
        return False
    default = DEFAULT_PORTS.get(scheme)
    return one[0] == other[0] and (one[1] or default) == (other[1] or default)


def normal_origin(origin: str) -> str | None:
    """An origin as browsers send it (RFC 6454): scheme and host lower-cased, the scheme's default
    port left out, an IPv6 address in brackets; None unless ``origin`` is exactly
    ``http[s]://host[:port]`` in any case. ``cors_origins`` are kept this way."""
    scheme, sep, authority = origin.partition("://")
    scheme = scheme.lower()
    parsed = parse_host(authority) if sep and scheme in DEFAULT_PORTS else None
    if parsed is None:
        return None
    name, port = parsed
    shown = f"[{name}]" if ":" in name else name
    return f"{scheme}://{shown}" if port in (None, DEFAULT_PORTS[scheme]) else f"{scheme}://{shown}:{port}"
