"""Upstream MCP servers as settings: ``[skywarden.upstreams.<name>]`` tables (docs/gateway.md).

One ``UpstreamConfig`` per table: a stdio server (``command``, ``args``, ``cwd``, ``env``) or a
remote one (``url`` over Streamable HTTP, or the older HTTP+SSE with ``transport = "sse"``, and
the ``headers`` that carry the upstream's own credential). A value of ``env`` or ``headers`` is
text, or a secret read when the upstream is started: ``{file = "/run/secrets/x"}`` or
``{env = "NAME"}``, each with an optional ``prefix`` (``"Bearer "``). Only the source is kept
here, never the secret, so settings can be shown and pickled without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any
from urllib.parse import SplitResult, urlsplit

UPSTREAM_NAME = re.compile(r"^[a-z][a-z0-9]*(?:-[a-z0-9]+)*\Z")  # \Z: "$" would let a final newline in
MAX_NAME = 32
SEPARATORS = ("__", "_", "-", "--", ".", "..")
_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}\Z")
_HEADER_VALUE = re.compile(r"^[\t\x20-\x7e]*\Z")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,99}\Z")
_TOOL_NAME = re.compile(r"^[A-Za-z0-9_.\-]{1,128}\Z")
# Hop-by-hop, framing and MCP's own headers: the transport sets them, a configured value may not.
_RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "transfer-encoding",
        "connection",
        "accept",
        "mcp-session-id",
        "mcp-protocol-version",
        "last-event-id",
    }
)
_KEYS = {
    "stdio": {"command", "args", "cwd", "env"},
    "streamable-http": {"url", "headers", "allow_private", "identity_header"},
    "sse": {"url", "headers", "allow_private", "identity_header"},
}
_COMMON = {
    "transport", "enabled", "timeout", "connect_timeout", "max_result_bytes", "tools", "description", "identity"
}  # fmt: skip
DEFAULT_IDENTITY_HEADER = "Skywarden-Caller"
UPSTREAM_SCOPE_PREFIX = "upstream:"  # upstream:<name> grants every tool of that upstream


@dataclass(frozen=True)
class SecretSource:
    """Where a value comes from: the text itself, a file (its first line) or an environment variable."""

    text: str | None = field(default=None, repr=False)  # a header's may be its credential
    file: str | None = None
    env: str | None = None
    prefix: str = ""

    @property
    def secret(self) -> bool:
        return self.text is None

    def describe(self) -> str:
        """What a message may show: never the value."""
        if self.file is not None:
            return f"file {self.file}"
        if self.env is not None:
            return f"environment variable {self.env}"
        return "text"


@dataclass(frozen=True)
class UpstreamConfig:
    name: str
    transport: str  # "stdio", "streamable-http" or "sse"
    command: str = ""
    args: tuple[str, ...] = ()
    cwd: str = ""
    env: Mapping[str, SecretSource] = field(default_factory=lambda: MappingProxyType({}))
    url: str = ""
    headers: Mapping[str, SecretSource] = field(default_factory=lambda: MappingProxyType({}))
    allow_private: bool = False  # loopback and private addresses allowed (else public ones only)
    enabled: bool = True
    timeout: float = 60.0  # seconds a tool call may take upstream
    connect_timeout: float = 30.0  # seconds to start (or reach) the server and list its tools
    max_result_bytes: int = 1024 * 1024
    tools: tuple[str, ...] = ()  # only these of its tools are offered; empty = all
    description: str = ""
    identity: bool = False  # tell the upstream who calls: in _meta, and (HTTP) in identity_header
    identity_header: str = DEFAULT_IDENTITY_HEADER

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable for worker processes (read-only tables as dicts)."""
        values = {name: getattr(self, name) for name in self.__dataclass_fields__}
        values["env"], values["headers"] = dict(self.env), dict(self.headers)
        return _rebuild, (values,)

    def target(self) -> str:
        """What a log line or the console may show of where it runs: the command or the URL without
        its query and credentials."""
        if self.transport == "stdio":
            return self.command
        return origin(self.url) + urlsplit(self.url).path


@dataclass(frozen=True)
class StoredUpstreams:
    """The upstreams an admin added, as a server reads them from the key store: those it can run,
    and by name why each other one cannot be run."""

    usable: tuple[UpstreamConfig, ...] = ()
    unusable: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))


def origin(url: str) -> str:
    """A URL's scheme, host and port: never its user, path or query, which may hold a credential."""
    parts = urlsplit(url)
    try:
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a URL quoted in a message, not one checked as a setting
        port = ""
    host = parts.hostname or ""
    return f"{parts.scheme}://{f'[{host}]' if ':' in host else host}{port}"


def credentials_owner(name: str) -> str:
    """Whose credentials the log redaction keeps for the upstream ``name`` (``register_owned_secrets``)."""
    return f"upstream:{name}"


def _rebuild(values: dict[str, Any]) -> UpstreamConfig:
    values["env"] = MappingProxyType(values["env"])
    values["headers"] = MappingProxyType(values["headers"])
    return UpstreamConfig(**values)


def parse_upstreams(value: Any) -> tuple[UpstreamConfig, ...]:
    """``[upstreams.<name>]`` tables (TOML), or the same as a JSON object (environment, flag)."""
    if isinstance(value, tuple) and all(isinstance(v, UpstreamConfig) for v in value):
        return value
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise ValueError('must be a JSON object such as {"calc": {"command": "calc-server"}}') from None
    if not isinstance(value, dict):
        raise ValueError("must be a table of upstreams, one table per upstream: [upstreams.<name>]")
    return tuple(parse_upstream(name, table) for name, table in sorted(value.items(), key=lambda item: str(item[0])))


def parse_upstream(name: Any, table: Any) -> UpstreamConfig:
    if not isinstance(name, str) or len(name) > MAX_NAME or not UPSTREAM_NAME.match(name):
        raise ValueError(
            f"upstream name {str(name)[:40]!r} must be lower-case letters and digits, words joined by "
            f"single hyphens, at most {MAX_NAME} characters"
        )
    where = f"upstream {name!r}"
    if not isinstance(table, dict):
        raise ValueError(f"{where} must be a table")
    transport = table.get("transport", "stdio" if "command" in table else "streamable-http" if "url" in table else None)
    if transport is None:
        unknown = sorted(set(table) - set().union(*_KEYS.values()) - _COMMON)
        also = f"; unknown option {str(unknown[0])[:40]!r}" if unknown else ""  # a misspelled command or url?
        raise ValueError(f"{where} needs a command (stdio) or a url (Streamable HTTP or SSE){also}")
    if "transport" not in table and "command" in table and "url" in table:  # which was meant?
        raise ValueError(f"{where} needs a command (stdio) or a url (Streamable HTTP or SSE), not both")
    if not isinstance(transport, str) or transport not in _KEYS:
        raise ValueError(f"{where}: transport must be one of {', '.join(_KEYS)}")
    unknown = sorted(set(table) - _KEYS[transport] - _COMMON)
    if unknown:
        raise ValueError(f"{where}: unknown option {str(unknown[0])[:40]!r} for transport {transport}")
    common: dict[str, Any] = {
        "enabled": _bool(table.get("enabled", True), f"{where}: enabled"),
        "timeout": _seconds(table.get("timeout", 60.0), f"{where}: timeout"),
        "connect_timeout": _seconds(table.get("connect_timeout", 30.0), f"{where}: connect_timeout"),
        "max_result_bytes": _count(table.get("max_result_bytes", 1024 * 1024), f"{where}: max_result_bytes"),
        "tools": _tool_names(table.get("tools", []), f"{where}: tools"),
        "description": _text(table.get("description", ""), f"{where}: description", 1000, empty=True),
        "identity": _bool(table.get("identity", False), f"{where}: identity"),
    }
    if transport == "stdio":
        return UpstreamConfig(
            name,
            transport,
            command=_text(table.get("command"), f"{where}: command", 4096),
            args=tuple(
                _text(a, f"{where}: args", 4096, empty=True) for a in _list(table.get("args", []), f"{where}: args")
            ),
            cwd=_text(table.get("cwd", ""), f"{where}: cwd", 4096, empty=True),
            env=_sources(table.get("env", {}), f"{where}: env", _ENV_NAME, "an environment variable name"),
            **common,
        )
    return UpstreamConfig(
        name,
        transport,
        url=_url(table.get("url"), f"{where}: url"),
        headers=_headers(table.get("headers", {}), f"{where}: headers"),
        allow_private=_bool(table.get("allow_private", False), f"{where}: allow_private"),
        identity_header=_identity_header(table, where),
        **common,
    )


def _text(value: Any, where: str, limit: int, empty: bool = False) -> str:
    if not isinstance(value, str) or (not value and not empty):
        raise ValueError(f"{where} must be {'text' if empty else 'non-empty text'}")
    if len(value) > limit or "\x00" in value:
        raise ValueError(f"{where} must be at most {limit} characters, without NUL")
    return value


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or len(value) > 256:
        raise ValueError(f"{where} must be an array (at most 256 items)")
    return value


def _bool(value: Any, where: str) -> bool:
    if not isinstance(value, bool):
        raise ValueError(f"{where} must be true or false")
    return value


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value <= 3600:
        raise ValueError(f"{where} must be a number of seconds above 0, at most 3600")
    return float(value)


def _count(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 1024 <= value <= 64 * 1024 * 1024:
        raise ValueError(f"{where} must be a number of bytes from 1024 to {64 * 1024 * 1024}")
    return value


def _tool_names(value: Any, where: str) -> tuple[str, ...]:
    names = _list(value, where)
    for name in names:
        if not isinstance(name, str) or not _TOOL_NAME.match(name):
            raise ValueError(f"{where}: {str(name)[:40]!r} is not a tool name (letters, digits, _ . -)")
    return tuple(names)


# A host every HTTP client reads alike and can reach: a name (or IPv4 address) of ASCII labels
# of 1 to 63 characters, or a bracketed IPv6 address with nothing after it but a port. Nothing a
# client maps to something else (a fullwidth or ideographic dot, an international name it
# encodes, a percent-escape, a zone), so the address checked is the one reached.
_PLAIN_NAME = re.compile(r"[a-z0-9_-]{1,63}(?:\.[a-z0-9_-]{1,63})*\.?")
_PLAIN_IPV6 = re.compile(r"\[[0-9A-Fa-f:.]+\](?::[0-9]*)?")


def _plain_host(parts: SplitResult) -> bool:
    host = parts.netloc.rpartition("@")[2]
    if host.startswith("["):
        return _PLAIN_IPV6.fullmatch(host) is not None
    return host.isascii() and _PLAIN_NAME.fullmatch(parts.hostname or "") is not None  # hostname: lower-cased


def _url(value: Any, where: str) -> str:
    text = _text(value, where, 2048)
    try:  # urlsplit's and port's messages may quote the URL, its password too: never shown
        parts = urlsplit(text)
        parts.port  # noqa: B018  (checked here, not when the upstream is reached)
    except ValueError:
        raise ValueError(f"{where} must be an http(s) URL (with a port from 0 to 65535, if any)") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where} must be an http(s) URL")
    if parts.username is not None or parts.password is not None:
        raise ValueError(f"{where} must not carry credentials; put the upstream's credential in headers")
    if parts.fragment:
        raise ValueError(f"{where} must not have a fragment")
    if any(c.isspace() or not c.isprintable() for c in text):
        raise ValueError(f"{where} must not hold spaces or control characters (percent-encode them)")
    if not _plain_host(parts):
        raise ValueError(
            f"{where} must name its host in ASCII letters, digits, '-', '_' and '.' or as an IP address "
            "(an international name in its xn-- form)"
        )
    return text


def _source(value: Any, where: str) -> SecretSource:
    if isinstance(value, str):
        if "\x00" in value or len(value) > 8192:
            raise ValueError(f"{where} must be at most 8192 characters, without NUL")
        return SecretSource(text=value)
    if isinstance(value, dict):
        prefix = value.get("prefix", "")
        if not isinstance(prefix, str) or len(prefix) > 100:
            raise ValueError(f"{where}: prefix must be text")
        kinds = sorted(set(value) & {"file", "env"})
        if len(kinds) != 1 or set(value) - {"file", "env", "prefix"}:
            raise ValueError(f'{where} must be text, {{file = "path"}} or {{env = "NAME"}} (with an optional prefix)')
        if kinds == ["env"]:
            name = value["env"]
            if not isinstance(name, str) or not _ENV_NAME.match(name):
                raise ValueError(f"{where}: env must name an environment variable")
            return SecretSource(env=name, prefix=prefix)
        return SecretSource(file=_text(value["file"], f"{where}: file", 4096), prefix=prefix)
    raise ValueError(f'{where} must be text, {{file = "path"}} or {{env = "NAME"}}')


def _sources(value: Any, where: str, names: re.Pattern[str], shape: str) -> Mapping[str, SecretSource]:
    if not isinstance(value, dict) or len(value) > 100:
        raise ValueError(f"{where} must be a table (at most 100 entries)")
    found = {}
    for key, entry in value.items():
        if not isinstance(key, str) or not names.match(key):
            raise ValueError(f"{where}: {str(key)[:40]!r} is not {shape}")
        found[key] = _source(entry, f"{where}.{key}")
    return MappingProxyType(found)


def _identity_header(table: dict[str, Any], where: str) -> str:
    name = table.get("identity_header", DEFAULT_IDENTITY_HEADER)
    if not isinstance(name, str) or not _HEADER_NAME.match(name) or name.lower() in _RESERVED_HEADERS:
        raise ValueError(f"{where}: identity_header must be a header name the transport does not set")
    if name.lower() in {h.lower() for h in table.get("headers", {}) if isinstance(h, str)}:
        raise ValueError(f"{where}: identity_header {name} is also one of its headers")
    return name


def _headers(value: Any, where: str) -> Mapping[str, SecretSource]:
    found = _sources(value, where, _HEADER_NAME, "a header name")
    for name, source in found.items():
        if name.lower() in _RESERVED_HEADERS:
            raise ValueError(f"{where}: {name} is set by the transport, not by configuration")
        for part in (source.text, source.prefix):
            if part is not None and not is_header_value(part):
                raise ValueError(f"{where}.{name} must be visible ASCII, spaces and tabs (no line break)")
    return found


def is_header_value(text: str) -> bool:
    """What an HTTP header value may be (RFC 9110 field-value, ASCII only): one for a header
    given as text is checked here, one read from a file or variable when it is read."""
    return _HEADER_VALUE.match(text) is not None


def check_separator(value: Any) -> str:
    if value not in SEPARATORS:
        raise ValueError(f"must be one of {', '.join(repr(s) for s in SEPARATORS)}")
    return str(value)


def upstream_scopes(name: str, separator: str) -> tuple[str, str]:
    """The scope names that grant every tool of an upstream: ``<name><separator>*`` and
    ``upstream:<name>``."""
    return f"{name}{separator}*", f"{UPSTREAM_SCOPE_PREFIX}{name}"


def upstream_grants(upstreams: Iterable[UpstreamConfig | str], separator: str) -> list[str]:
    """``upstream_scopes`` of every upstream (by config or name; enabled or not, connected or not)."""
    return [grant for name in _names(upstreams) for grant in upstream_scopes(name, separator)]


def _names(upstreams: Iterable[UpstreamConfig | str]) -> list[str]:
    return [u if isinstance(u, str) else u.name for u in upstreams]


class GrantableNames(frozenset[str]):
    """What a key's or token's scopes may name: the names given, and any tool name under a
    configured upstream's prefix (``calc__add`` while ``calc`` is down or before it listed it)."""

    prefixes: tuple[str, ...] = ()

    def __contains__(self, name: object) -> bool:
        if frozenset.__contains__(self, name):
            return True
        return (
            isinstance(name, str)
            and bool(_TOOL_NAME.match(name))
            and any(name.startswith(p) and len(name) > len(p) and name[-1] != "*" for p in self.prefixes)
        )


def grantable_names(names: Any, upstreams: Iterable[UpstreamConfig | str], separator: str) -> GrantableNames:
    upstream_names = _names(upstreams)
    found = GrantableNames({*names, *upstream_grants(upstream_names, separator)})
    found.prefixes = tuple(f"{name}{separator}" for name in upstream_names)
    return found
