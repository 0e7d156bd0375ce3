"""Settings: one dataclass, read from CLI flags > environment > config file > defaults.

Every field carries its own parser and help text in ``metadata`` so the CLI,
the environment reader and the config-file reader all share one definition.

Plugins declare settings of their own (``skywarden.tools.setting``); ``server/plugins/settings.py``
describes each as a ``PluginSetting`` and ``load_settings`` reads them from the same sources, by
the same rules, into ``Settings.plugin_settings``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import json
import os
import re
import tomllib
from collections.abc import Callable, Container, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from skywarden.server.extras import install_command, pip_install
from skywarden.server.hosts import normal_origin, parse_host
from skywarden.server.loopback import is_loopback
from skywarden.server.rates import parse_rate
from skywarden.server.upstreams import UpstreamConfig, check_separator, parse_upstreams

ENV_PREFIX = "SKYWARDEN_"
POSTGRES_URL_SHAPE = "postgresql://role:password@host:port/database"
_URL_PASSWORD = re.compile(r"(://[^:/?#@\s]*:)\S*@")
_PASSWORD_PARAMETER = re.compile(r"(password=)[^&\s]*", re.IGNORECASE)


class SettingsError(ValueError):
    """An invalid setting; the message is one line naming the setting."""


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        if isinstance(value, bool):
            raise ValueError(f"must be an integer from {lo} to {hi}")
        try:
            number = int(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: inf
            raise ValueError(f"must be an integer from {lo} to {hi}") from None
        if not lo <= number <= hi:
            raise ValueError(f"must be an integer from {lo} to {hi}")
        return number

    return parse


def _positive_float(value: Any) -> float:
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError("must be a positive number of seconds") from None
    if not number > 0 or number != number or number == float("inf"):
        raise ValueError("must be a positive number of seconds")
    return number


def _bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ValueError("must be true or false")


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


MIN_SECRET_LENGTH = 32


def _secret_text(value: Any) -> str:
    """A secret given inline: empty (not set) or at least MIN_SECRET_LENGTH characters."""
    text = _text(value).strip()
    if text and len(text) < MIN_SECRET_LENGTH:
        raise ValueError(f"needs at least {MIN_SECRET_LENGTH} characters")
    return text


def _optional_path(value: Any) -> str:
    return _text(value).strip()


def _public_url(value: Any) -> str:
    text = _text(value).strip().rstrip("/")
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment or parts.path:
        raise ValueError("must be an https URL with a host and nothing after it, such as https://mcp.example.com")
    return text


def _choice(*choices: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _text(value).strip().lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}")
        return text

    return parse


def _string_list(value: Any) -> tuple[str, ...]:
    if isinstance(value, (list, tuple)):
        items = value
    else:
        items = _text(value).split(",")
    result = []
    for item in items:
        if not isinstance(item, str):
            raise ValueError("must be a list of strings")
        if item.strip():
            result.append(item.strip())
    return tuple(result)


def _admin_commands(value: Any) -> tuple[str, ...]:
    commands = _string_list(value)
    if len(commands) > 100 or any(len(c) > 4096 or "\x00" in c for c in commands):
        raise ValueError("must be at most 100 commands of at most 4096 characters, without NUL")
    return commands


def _admin_env(value: Any) -> tuple[str, ...]:
    patterns = _string_list(value)
    if len(patterns) > 100 or any(not re.fullmatch(r"[A-Za-z0-9_*?]{1,100}", p) for p in patterns):
        raise ValueError("must be at most 100 variable names or patterns of letters, digits, _, * and ?")
    return patterns


def _origins(value: Any) -> tuple[str, ...]:
    """Each origin as a browser sends it (``HTTPS://App.example.com:443`` is
    ``https://app.example.com``), so that comparing strings compares origins."""
    origins: list[str] = []
    for origin in _string_list(value):
        if origin == "*":
            raise ValueError("'*' is not allowed; list each origin (scheme://host[:port])")
        normal = normal_origin(origin)
        if normal is None:
            raise ValueError(f"{origin!r} is not an origin (http[s]://host[:port], nothing else)")
        if normal not in origins:
            origins.append(normal)
    return tuple(origins)


def _host_names(value: Any) -> tuple[str, ...]:
    names = []
    for name in _string_list(value):
        if name == "*":
            names.append(name)
            continue
        parsed = parse_host(name) or parse_host(f"[{name}]")  # an IPv6 address may come without brackets
        if parsed is None or parsed[1] is not None:
            raise ValueError(f"{name!r} is not a host name (no scheme, port or path; '*' for any)")
        names.append(parsed[0])
    return tuple(names)


def _rate(value: Any) -> str:
    text = _text(value).strip()
    parse_rate(text)
    return text


def _networks(value: Any) -> tuple[str, ...]:
    items = _string_list(value)
    for item in items:
        try:
            ipaddress.ip_network(item, strict=False)
        except ValueError:
            raise ValueError(f"{item!r} is not an IP address or network (e.g. 10.0.0.0/8)") from None
    return items


def _redis_url(value: Any) -> str:
    text = _text(value).strip()
    if not text:
        return ""
    _check_redis_url(text)
    try:
        import redis  # noqa: F401
    except ImportError:
        raise ValueError(f"needs the Redis client: {install_command('redis')}") from None
    return text


REDIS_URL_FORM = "redis://[:password@]host[:port][/db] (rediss:// for TLS, unix:///path/to/redis.sock[?db=N])"


def _check_redis_url(text: str) -> None:
    """What redis-py would otherwise take silently or refuse only at the first connection: the
    scheme, a host (a socket path for unix://), a numeric port and a numeric database index."""
    parts = urlsplit(text)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"the scheme must be redis, rediss or unix: {REDIS_URL_FORM}")
    if parts.scheme == "unix":
        if not parts.path.strip("/"):
            raise ValueError(f"a unix:// URL needs the socket's path: {REDIS_URL_FORM}")
        databases = []
    else:
        if not parts.hostname:
            raise ValueError(f"no host: {REDIS_URL_FORM}")
        try:
            _ = parts.port
        except ValueError:
            raise ValueError(f"the port must be a number from 1 to 65535: {REDIS_URL_FORM}") from None
        databases = [parts.path[1:]] if parts.path not in ("", "/") else []
    databases += [value for name, value in parse_qsl(parts.query, keep_blank_values=True) if name == "db"]
    for database in databases:
        if not re.fullmatch(r"[0-9]{1,5}", database):
            raise ValueError(f"the database index must be a number such as 0, not {database[:40]!r}: {REDIS_URL_FORM}")


def _key_prefix(value: Any) -> str:
    text = _text(value).strip()
    if not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", text):
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return text


def _event_loop(value: Any) -> str:
    choice = _choice("auto", "asyncio", "uvloop")(value)
    if choice == "uvloop":
        try:
            import uvloop  # noqa: F401
        except ImportError:
            raise ValueError(f"uvloop is not installed: {pip_install('uvloop')}, or choose auto or asyncio") from None
    return choice


def _instance_name(value: Any) -> str:
    text = _text(value).strip()
    if text and not re.fullmatch(r"[A-Za-z0-9_.:-]{1,64}", text):
        raise ValueError("must be 1-64 characters of A-Z a-z 0-9 _ . : -")
    return text


def parse_database_url(value: Any) -> str:
    """A key store URL the stores can open: ``sqlite:///path`` or ``postgresql://…`` naming a host."""
    text = _text(value).strip()
    if not text:
        return ""
    if text.startswith("sqlite:///"):
        if not text.removeprefix("sqlite:///"):
            raise ValueError("must name the database file, such as sqlite:///var/lib/skywarden/skywarden.db")
        return text
    if text.startswith(("postgresql://", "postgres://")):
        try:
            import asyncpg  # noqa: F401
        except ImportError:
            raise ValueError(f"needs the PostgreSQL driver: {install_command('postgres')}") from None
        try:
            parts = urlsplit(text)
            parts.port  # noqa: B018  (reading it checks it)
        except ValueError:
            raise ValueError(f"does not parse; it must look like {POSTGRES_URL_SHAPE}") from None
        if not parts.hostname and "host=" not in parts.query:
            raise ValueError("must name a host, such as postgresql://skywarden@127.0.0.1:5432/skywarden")
        return text
    raise ValueError("must be sqlite:///path or postgresql://user@host:port/database")


ASYMMETRIC_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")


def _identity_url(value: Any) -> str:
    """An issuer or resource URL: https, or http on a loopback host (local trials and tests)."""
    text = _text(value).strip()
    if not text:
        return ""
    parts = urlsplit(text)
    if parts.scheme not in {"http", "https"} or not parts.hostname or parts.query or parts.fragment:
        raise ValueError("must be an https URL such as https://login.example.com/tenant/v2.0")
    if parts.scheme == "http" and not is_loopback(parts.hostname):
        raise ValueError("must use https (plain http is accepted only on a loopback host)")
    return text


def _issuers(value: Any) -> tuple[str, ...]:
    issuers = tuple(_identity_url(item) for item in _string_list(value))
    if len(set(issuers)) != len(issuers):
        raise ValueError("lists an issuer twice")
    return issuers


def _algorithms(value: Any) -> tuple[str, ...]:
    algorithms = _string_list(value)
    if not algorithms:
        raise ValueError("must name at least one algorithm")
    for alg in algorithms:
        if alg not in ASYMMETRIC_ALGORITHMS:
            raise ValueError(
                f"{alg[:20]!r} is not accepted: only public-key algorithms ({', '.join(ASYMMETRIC_ALGORITHMS)}), "
                "never none or an HMAC algorithm"
            )
    return algorithms


def _claim_rule(value: Any) -> str:
    text = _text(value).strip()
    claim, sep, wanted = text.partition("=")
    if not sep or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:/-]{0,99}", claim.strip()) or not wanted.strip():
        raise ValueError("must be claim=value, such as roles=Skywarden.Admin or groups=<group id>")
    return f"{claim.strip()}={wanted.strip()}"


def _table(value: Any, example: str, shape: str) -> dict[Any, Any]:
    """A TOML table, or the same as a JSON object in the environment."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except (ValueError, RecursionError):  # RecursionError: nested too deep
            raise ValueError(f"must be a JSON object such as {example}") from None
    if not isinstance(value, dict):
        raise ValueError(f"must be a table of {shape}")
    return value


def _scope_map(value: Any) -> Mapping[str, tuple[str, ...]]:
    """Token scope -> tool names (``*`` = every tool)."""
    value = _table(value, '{"weather": ["get_forecast", "get_alerts"]}', "token scope = [tool names]")
    mapping: dict[str, tuple[str, ...]] = {}
    for scope, tools in value.items():
        if not isinstance(scope, str) or not re.fullmatch(r"[\x21\x23-\x5b\x5d-\x7e]{1,100}", scope):
            raise ValueError(f"scope {str(scope)[:40]!r} is not a valid OAuth scope token")
        if not isinstance(tools, list) or not tools or not all(isinstance(t, str) and t for t in tools):
            raise ValueError(f"scope {scope!r} must map to a non-empty list of tool names")
        mapping[scope] = tuple(tools)
    return MappingProxyType(mapping)


def _table_value(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (isinstance(value, list) and all(isinstance(v, scalar) for v in value))


def _tool_settings(value: Any) -> Mapping[str, Mapping[str, Any]]:
    """``[skywarden.tool_settings.<group>]`` tables in TOML, or the same as a JSON object in the environment."""
    value = _table(value, '{"mytool": {"base_url": "..."}}', "tables (one per settings group)")
    groups: dict[str, Mapping[str, Any]] = {}
    for group, entries in value.items():
        if not isinstance(group, str) or not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", group):
            raise ValueError(f"group {str(group)[:40]!r} must be lower-case letters, digits and _")
        if not isinstance(entries, dict) or not all(_table_value(v) for v in entries.values()):
            raise ValueError(f"group {group!r} must be a table of strings, numbers, booleans or arrays of them")
        groups[group] = MappingProxyType(dict(entries))
    return MappingProxyType(groups)


def _setting(default: Any, parse: Callable[[Any], Any], help: str, secret: bool = False) -> Any:
    return field(default=default, metadata={"parse": parse, "help": help, "secret": secret})


@dataclass(frozen=True)
class Settings:
    host: str = _setting("127.0.0.1", _text, "address to listen on")
    port: int = _setting(8080, _int_range(0, 65535), "TCP port to listen on (0 = any free port)")
    data_dir: str = _setting("./.skywarden", _text, "folder for the SQLite database and generated secrets")
    database_url: str = _setting(
        "",
        parse_database_url,
        "key store URL: sqlite:///path or postgresql://user@host:port/db; empty = sqlite:///<data_dir>/skywarden.db",
    )
    upstream_timeout: float = _setting(
        10.0,
        _positive_float,
        "total timeout of one request to a plugin's HTTP API, seconds (gateway upstreams: their own timeout)",
    )
    upstream_max_connections: int = _setting(
        20, _int_range(1, 1000), "connection pool size for the HTTP APIs plugins call"
    )
    upstream_max_bytes: int = _setting(
        4 * 1024 * 1024,
        _int_range(1024, 256 * 1024 * 1024),
        "largest answer of a plugin's HTTP API accepted, bytes (gateway upstreams: max_result_bytes)",
    )
    upstream_cache_entries: int = _setting(
        512, _int_range(0, 100_000), "answers of the HTTP APIs plugins call kept in the cache"
    )
    upstream_allowed_networks: tuple[str, ...] = _setting(
        (),
        _networks,
        "comma-separated addresses/networks plugins and gateway upstreams may reach besides public ones "
        "(e.g. 10.0.0.0/8); a plugin's own URL settings are always allowed; read at start",
    )
    tool_result_cache_entries: int = _setting(
        1024,
        _int_range(0, 100_000),
        "results of cache_results tools kept while their upstream answers are fresh; 0 = off",
    )
    instance_name: str = _setting(
        "", _instance_name, "this instance's name in every log line; empty = <host name>:<process id>"
    )
    log_level: str = _setting("info", _choice("debug", "info", "warning", "error"), "log level")
    log_format: str = _setting("json", _choice("json", "console"), "log format: json lines or console")
    log_file: str = _setting("", _optional_path, "append logs to this file (reopened if rotated away); empty = stdout")
    audit_log_file: str = _setting("", _optional_path, "send audit events to this file instead of the main log")
    metrics_enabled: bool = _setting(True, _bool, "serve Prometheus metrics at /metrics (admin or metrics token)")
    metrics_token: str = _setting(
        "", _secret_text, "read-only token for /metrics (prefer metrics_token_file)", secret=True
    )
    metrics_token_file: str = _setting("", _optional_path, "file holding the read-only metrics token")
    secret: str = _setting("", _secret_text, "server secret for key hashing (prefer secret_file)", secret=True)
    secret_file: str = _setting("", _optional_path, "file holding the server secret; generated in data_dir if unset")
    admin_token: str = _setting("", _secret_text, "admin credential (prefer admin_token_file)", secret=True)
    admin_token_file: str = _setting("", _optional_path, "file holding the admin token")
    key_environment: str = _setting("live", _choice("live", "test", "dev"), "environment part of new key prefixes")
    key_cache_ttl: float = _setting(
        300.0, _positive_float, "seconds a verified key stays cached at most (changes reach the cache sooner)"
    )
    key_cache_entries: int = _setting(
        100_000, _int_range(1, 10_000_000), "verified keys kept in memory at most (about 0.6 KB each)"
    )
    cors_origins: tuple[str, ...] = _setting(
        (), _origins, "comma-separated origins allowed for CORS and the /mcp Origin check"
    )
    allowed_hosts: tuple[str, ...] = _setting(
        (), _host_names, "Host names to answer to (* = any); empty = loopback names when bound to loopback"
    )
    tls_cert: str = _setting("", _optional_path, "PEM certificate (chain) to serve HTTPS directly")
    tls_key: str = _setting("", _optional_path, "PEM private key for tls_cert")
    require_https: bool = _setting(
        False, _bool, "refuse plain HTTP (GET/HEAD are redirected to public_url, or to an allowed https host)"
    )
    public_url: str = _setting(
        "", _public_url, "the server's public https URL (e.g. https://mcp.example.com): where plain HTTP is redirected"
    )
    trusted_proxies: tuple[str, ...] = _setting(
        (), _networks, "proxy addresses/networks whose X-Forwarded-For/-Proto are believed"
    )
    redis_url: str = _setting(
        "",
        _redis_url,
        "Redis shared by every instance: rate limits, MCP sessions, key-change broadcast; empty = in-process",
    )
    redis_key_prefix: str = _setting("skywarden", _key_prefix, "prefix of every Redis key this deployment writes")
    rate_limit_when_unavailable: str = _setting(
        "open",
        _choice("open", "closed"),
        "Redis unreachable: keyed requests go through without their own limit (open) or get 503 (closed); "
        "the per-address limits on wrong or missing credentials are counted in the process either way",
    )
    rate_limit: str = _setting(
        "120/minute", _rate, "default per-key limit (notation: docs/security.md#rate-limits); empty = none"
    )
    oidc_issuers: tuple[str, ...] = _setting(
        (), _issuers, "comma-separated OpenID issuers whose access tokens are trusted (docs/identity.md)"
    )
    oidc_algorithms: tuple[str, ...] = _setting(
        ASYMMETRIC_ALGORITHMS, _algorithms, "signature algorithms accepted on access tokens (public-key ones only)"
    )
    oidc_leeway: float = _setting(30.0, _positive_float, "seconds of clock skew allowed on exp, nbf and iat")
    oidc_max_token_bytes: int = _setting(8000, _int_range(256, 8000), "largest access token accepted, bytes")
    oidc_jwks_cooldown: float = _setting(
        30.0, _positive_float, "seconds between two fetches of an issuer's keys (unknown key id, or issuer down)"
    )
    admin_oidc_audience: str = _setting(
        "", _text, "audience of admin access tokens (e.g. api://skywarden); empty = admin sign-in by token only"
    )
    admin_oidc_rule: str = _setting(
        "roles=Skywarden.Admin", _claim_rule, "claim=value an admin's access token must carry (list or string claim)"
    )
    oauth_resource_url: str = _setting(
        "", _identity_url, "this server's OAuth resource URL (e.g. https://mcp.example.com/mcp); empty = OAuth off"
    )
    oauth_scope_map: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={
            "parse": _scope_map,
            "help": "extra token scope -> tool names (besides tools and tool:<name>); TOML table or JSON",
            "secret": False,
        },
    )
    oauth_rate_limit: str = _setting("", _rate, "per-subject limit of OAuth callers; empty = rate_limit")
    console_enabled: bool = _setting(True, _bool, "serve the admin console at /admin (docs/console.md)")
    console_oidc_client_id: str = _setting(
        "", _text, "client id for console single sign-on (code + PKCE) with the first oidc_issuers; empty = off"
    )
    console_oidc_client_secret: str = _setting(
        "", _secret_text, "client secret for console sign-on, if the provider wants one", secret=True
    )
    auth_failure_limit: str = _setting(
        "20/minute", _rate, "wrong credentials allowed per client IP before 429 (valid keys always pass); empty = none"
    )
    unauthenticated_limit: str = _setting(
        "300/minute", _rate, "requests without any credential allowed per client IP before 429; empty = none"
    )
    max_concurrent_calls: int = _setting(8, _int_range(1, 10_000), "tool calls one key may run at once")
    body_timeout: float = _setting(30.0, _positive_float, "seconds a client may take to send a request body")
    idle_timeout: float = _setting(
        15.0, _positive_float, "seconds a connection may stay open without completing a request head, then closed"
    )
    max_body_bytes: int = _setting(1024 * 1024, _int_range(1024, 64 * 1024 * 1024), "largest request body, bytes")
    max_json_depth: int = _setting(32, _int_range(2, 1000), "deepest JSON nesting accepted in a request body")
    session_idle_timeout: float = _setting(1800.0, _positive_float, "seconds an idle MCP session lives")
    max_sessions: int = _setting(10_000, _int_range(1, 10_000_000), "live MCP sessions at most (about 2 KB each)")
    max_sessions_per_key: int = _setting(100, _int_range(1, 10_000_000), "live MCP sessions one key may hold")
    max_streams_per_key: int = _setting(
        8, _int_range(1, 10_000), "change streams (tools list_changed) one key may hold open on an instance"
    )
    max_batch_size: int = _setting(
        50, _int_range(1, 10_000), "JSON-RPC messages in one batch (2025-03-26); a larger batch is refused whole"
    )
    shutdown_timeout: float = _setting(30.0, _positive_float, "seconds in-flight requests get on shutdown")
    plugin_hook_timeout: float = _setting(
        30.0,
        _positive_float,
        "seconds each plugin start-up or shutdown hook may take (a slower start-up hook stops the start)",
    )
    event_loop: str = _setting(
        "auto", _event_loop, "event loop: uvloop when it is installed (auto), uvloop (required), or asyncio"
    )
    workers: int = _setting(
        1, _int_range(1, 64), "server processes sharing the port (one per core); >1 wants redis_url to share state"
    )
    tool_settings: Mapping[str, Mapping[str, Any]] = field(
        default_factory=lambda: MappingProxyType({}),
        metadata={
            "parse": _tool_settings,
            "help": "tool plugins' settings by plugin: TOML tables [skywarden.tool_settings.NAME], or a JSON object",
            "secret": True,  # it may hold plugins' secrets: an error never quotes it
        },
    )
    upstreams: tuple[UpstreamConfig, ...] = field(
        default=(),
        metadata={
            "parse": parse_upstreams,
            "help": "upstream MCP servers behind this one (docs/gateway.md): TOML tables [skywarden.upstreams.NAME], "
            "or a JSON object",
            "secret": True,  # it may hold an upstream's credential: an error never quotes it
        },
    )
    gateway_separator: str = _setting(
        "__", check_separator, "what joins an upstream's name and its tool's name: <upstream>__<tool>"
    )
    openapi_upstream_tools: bool = _setting(
        False,
        _bool,
        "document each upstream tool as its own operation in the public OpenAPI document (anyone may "
        "read its name and schemas); off: only keys see them, at GET /api/mcp/tools",
    )
    upstream_admin_commands: tuple[str, ...] = _setting(
        (),
        _admin_commands,
        "commands an admin may start as stdio upstreams through the admin API, console or CLI "
        "(comma-separated, exactly as given; * = any); empty = remote upstreams only",
    )
    upstream_admin_env: tuple[str, ...] = _setting(
        (),
        _admin_env,
        "environment variable names an admin may give such a stdio upstream (comma-separated; shell "
        "patterns such as CALC_*); never a loader or interpreter variable (LD_*, PYTHON*, NODE_OPTIONS, ...)",
    )
    # Not settings of their own (no flag, no variable): what load_settings made of the plugins' settings.
    plugin_settings: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))
    deprecations: tuple[Deprecation, ...] = ()

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{Path(self.data_dir).resolve() / 'skywarden.db'}"

    def group(self, name: str) -> Mapping[str, Any]:
        """A class-form tool's settings group: the ``<name>_*`` fields without the prefix, then
        ``tool_settings[name]``. A plugin sees these and nothing else of the server's settings."""
        prefix = name + "_"
        values = {f.name[len(prefix) :]: getattr(self, f.name) for f in setting_fields() if f.name.startswith(prefix)}
        values.update(self.tool_settings.get(name, {}))
        return MappingProxyType(values)

    def __reduce__(self) -> tuple[Any, ...]:
        """Picklable (worker processes get their settings this way): read-only tables as dicts."""
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        values["tool_settings"] = {group: dict(entries) for group, entries in self.tool_settings.items()}
        values["oauth_scope_map"] = {scope: list(tools) for scope, tools in self.oauth_scope_map.items()}
        values["plugin_settings"] = {plugin: dict(checked) for plugin, checked in self.plugin_settings.items()}
        return _rebuild_settings, (values,)

    def __repr__(self) -> str:
        shown = []
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.metadata.get("secret") and value:
                value = "***"
            shown.append(f"{f.name}={_shown(value)}")
        return f"Settings({', '.join(shown)})"


def _read_only(tables: Mapping[str, Mapping[str, Any]]) -> Mapping[str, Mapping[str, Any]]:
    return MappingProxyType({name: MappingProxyType(dict(entries)) for name, entries in tables.items()})


def _rebuild_settings(values: dict[str, Any]) -> Settings:
    return Settings(
        **{
            **values,
            "tool_settings": _tool_settings(values["tool_settings"]),
            "oauth_scope_map": _scope_map(values["oauth_scope_map"]),
            "plugin_settings": _read_only(values["plugin_settings"]),
        }
    )


_SETTING_FIELDS = tuple(f for f in dataclasses.fields(Settings) if "parse" in f.metadata)


def setting_fields() -> tuple[dataclasses.Field[Any], ...]:
    """The fields that are settings (each with a flag, a variable and a config key)."""
    return _SETTING_FIELDS


def default_of(f: dataclasses.Field[Any]) -> Any:
    if f.default is not dataclasses.MISSING:
        return f.default
    if callable(f.default_factory):
        return f.default_factory()
    raise TypeError(f"setting {f.name} has no default")


def env_name(name: str) -> str:
    return ENV_PREFIX + name.upper()


def flag_name(name: str) -> str:
    return "--" + name.replace("_", "-")


def hide_url_passwords(text: str) -> str:
    """``text`` with the password of any URL in it (``user:password@``, ``password=``) as ***."""
    return _URL_PASSWORD.sub(r"\1***@", _PASSWORD_PARAMETER.sub(r"\1***", text))


def _shown(value: Any) -> str:
    return repr(hide_url_passwords(value) if isinstance(value, str) else value)


def _invalid(name: str, source: str, reason: object, value: Any, secret: bool) -> SettingsError:
    shown = "***" if secret else _shown(value)
    return SettingsError(f"invalid setting {name} ({source}): {reason}; got {shown}")


def _parse_one(f: dataclasses.Field[Any], value: Any, source: str) -> Any:
    try:
        return f.metadata["parse"](value)
    except ValueError as exc:
        raise _invalid(f.name, source, exc, value, bool(f.metadata.get("secret"))) from None


def read_config_file(path: str | os.PathLike[str], names: Container[str] = frozenset()) -> dict[str, Any]:
    """The settings a TOML file gives: its top level, or its ``[skywarden]`` table. With that
    table, the top-level keys that are settings (``names``) count too: a ``[skywarden.upstreams.x]``
    table makes a ``[skywarden]`` table, and a file may hold other tools' keys beside it. A table
    setting given in both places (``upstreams``) is merged; any one name given twice is refused."""
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError:
        raise SettingsError(f"invalid setting config: file {str(path)!r} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"invalid setting config: {str(path)!r} is not valid TOML: {exc}") from None
    except UnicodeDecodeError:
        raise SettingsError(f"invalid setting config: {str(path)!r} is not UTF-8 text") from None
    except RecursionError:
        raise SettingsError(f"invalid setting config: {str(path)!r} nests arrays or tables too deep") from None
    section = data.get("skywarden")
    if section is None:
        return data
    if not isinstance(section, dict):
        raise SettingsError("invalid setting config: [skywarden] must be a table")
    merged = dict(section)
    for name, value in data.items():
        if name == "skywarden" or name not in names:
            continue
        inside = merged.get(name)
        if inside is None:
            merged[name] = value
        elif isinstance(inside, dict) and isinstance(value, dict) and not inside.keys() & value.keys():
            merged[name] = value | inside
        else:
            both = isinstance(inside, dict) and isinstance(value, dict)
            where = f"{name}.{sorted(inside.keys() & value.keys())[0]}" if both else name
            raise SettingsError(f"invalid setting {where} (config file): set both at the top level and in [skywarden]")
    return merged


CONFIG, ENVIRONMENT, FLAG = 1, 2, 3  # where a value came from, by precedence


@dataclass(frozen=True)
class PluginSetting:
    """One setting a plugin declares, as the readers see it (``server/plugins/settings.py`` makes
    them from the plugin's settings dataclass)."""

    plugin: str
    field: str
    help: str
    parse: Callable[[Any], Any]  # a raw value (text, a TOML value) -> the checked one; ValueError says why not
    default: Any = dataclasses.MISSING  # the checked default; MISSING: the setting is required
    secret: bool = False  # also read from a file (<name>_file); its value is never shown
    alias: str | None = None  # an older full name, still accepted with a warning
    kind: str = ""  # what a value looks like ("integer", "http(s) URL"), for --help and the reference

    @property
    def name(self) -> str:
        return f"{self.plugin}_{self.field}"

    @property
    def required(self) -> bool:
        return self.default is dataclasses.MISSING

    def spellings(self) -> dict[str, tuple[bool, bool]]:
        """Every full name this setting answers to -> (it is the old name, it names a file)."""
        names = {self.name: (False, False)}
        if self.alias:
            names[self.alias] = (True, False)
        if self.secret:
            names[self.name + "_file"] = (False, True)
            if self.alias:
                names[self.alias + "_file"] = (True, True)
        return names


@dataclass(frozen=True)
class PluginSettings:
    """What one plugin reads from the settings: the settings it declares, or (``table``, a
    class-form tool's ``settings_group``) the table ``[tool_settings.<name>]`` as it is given."""

    name: str
    title: str  # names the plugin in --help and the reference, e.g. "acme (acme-tools 1.2)"
    settings: tuple[PluginSetting, ...] = ()
    table: bool = False


@dataclass(frozen=True)
class Deprecation:
    """A plugin setting given under its old name (its alias); logged once at start-up."""

    old: str
    new: str
    source: str  # where the old name was given
    overridden_by: str = ""  # where the new name was given too: then the old one is ignored

    def __str__(self) -> str:
        if self.overridden_by:
            return (
                f"setting {self.old} ({self.source}) is deprecated and ignored: "
                f"{self.new} is set too ({self.overridden_by}) and wins"
            )
        return (
            f"setting {self.old} ({self.source}) is deprecated: use {self.new} "
            f"({flag_name(self.new)}, {env_name(self.new)}); the old name will be removed in a future release"
        )


@dataclass(frozen=True)
class _Given:
    setting: PluginSetting
    rank: int
    source: str
    old: bool
    file: bool
    raw: Any


class _PluginReader:
    """The plugins' settings as the sources give them, then checked (``resolve``)."""

    def __init__(self, plugins: Sequence[PluginSettings] | None) -> None:
        self.plugins = plugins or ()
        self.registry_known = plugins is not None
        self.names: dict[str, tuple[PluginSetting, bool, bool]] = {
            name: (setting, *how)
            for p in self.plugins
            for setting in p.settings
            for name, how in setting.spellings().items()
        }
        self.table_groups = {p.name for p in self.plugins if p.table}
        self.given: list[_Given] = []
        self._tables: dict[str, tuple[int, Mapping[str, Any]]] = {}

    def add(self, name: str, raw: Any, rank: int, source: str) -> None:
        setting, old, file = self.names[name]
        if file and raw == "":  # an empty <name>_file is no file, as for the server's own *_file settings
            return
        self.given.append(_Given(setting, rank, source, old, file, raw))

    def add_tables(self, tables: Mapping[str, Mapping[str, Any]], rank: int, source: str) -> None:
        """``[tool_settings.<group>]``: a class-form group's table is kept whole (a group given by a
        source of higher precedence replaces it); an entry ``x`` of another group is the setting
        ``<group>_x`` (a plugin's setting, or an old name)."""
        for group, entries in tables.items():
            if group in self.table_groups or not self.registry_known:
                if rank >= self._tables.get(group, (0, {}))[0]:
                    self._tables[group] = (rank, entries)
                continue
            if not any(name.startswith(group + "_") for name in self.names):
                readers = sorted({*self.table_groups, *(p.name for p in self.plugins if p.settings)})
                raise SettingsError(
                    f"invalid setting tool_settings ({source}): no plugin reads [tool_settings.{group}] "
                    f"(plugins with settings: {', '.join(readers) or 'none'})"
                )
            for key, value in entries.items():
                name, where = f"{group}_{key}", ", ".join(filter(None, (source, f"tool_settings.{group}.{key}")))
                if name not in self.names:
                    raise SettingsError(f"invalid setting {name} ({where}): unknown setting")
                self.add(name, value, rank, where)

    def raw_tables(self) -> dict[str, Mapping[str, Any]]:
        return {group: entries for group, (_, entries) in sorted(self._tables.items())}

    def resolve(self) -> tuple[dict[str, dict[str, Any]], list[Deprecation]]:
        """Each plugin's checked values, every field included (defaults for those not given), and
        the old names used. The new name wins over the old one wherever each was given."""
        checked: dict[str, dict[str, Any]] = {}
        deprecations = []
        for plugin in self.plugins:
            values = checked[plugin.name] = {}
            for setting in plugin.settings:
                given = [g for g in self.given if g.setting is setting]
                for value in given:  # every value is checked, as the server's own are, even one that is overridden
                    if not value.file:
                        _check(value)
                new, old = [g for g in given if not g.old], [g for g in given if g.old]
                chosen = _highest(new or old)
                if chosen is None:
                    if setting.required:
                        raise SettingsError(_missing(setting))
                    values[setting.field] = setting.default
                    continue
                values[setting.field] = _check(chosen)
                if old:
                    used = max(old, key=lambda g: g.rank)
                    deprecations.append(
                        Deprecation(used.setting.alias or "", setting.name, used.source, chosen.source if new else "")
                    )
        return checked, deprecations


def _highest(given: list[_Given]) -> _Given | None:
    """The value from the source of highest precedence; two spellings there (``x`` and ``x_file``,
    or a name and its tool_settings entry) are refused."""
    if not given:
        return None
    top = max(g.rank for g in given)
    first, *others = [g for g in given if g.rank == top]
    if others:
        raise SettingsError(
            f"invalid setting {first.setting.name}: given twice ({first.source} and {others[0].source}); give it once"
        )
    return first


def _check(given: _Given) -> Any:
    setting, raw, source = given.setting, given.raw, given.source
    if given.file:
        name = setting.name + "_file"
        if not isinstance(raw, str):
            raise _invalid(name, source, "must be the path of a file", raw, secret=False)
        try:
            raw = Path(raw).read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SettingsError(
                f"invalid setting {name} ({source}): cannot read {given.raw!r} ({exc.strerror or type(exc).__name__})"
            ) from None
        except UnicodeDecodeError:
            raise SettingsError(f"invalid setting {name} ({source}): {given.raw!r} is not UTF-8 text") from None
        source = f"{source}: {given.raw}"
    try:
        return setting.parse(raw)
    except ValueError as exc:
        raise _invalid(setting.name, source, exc, raw, setting.secret) from None


def _missing(setting: PluginSetting) -> str:
    ways = [flag_name(setting.name), env_name(setting.name), setting.name]
    if setting.secret:
        ways.append(setting.name + "_file")
    return f"missing setting {setting.name}: set {', '.join(ways[:-1])} or {ways[-1]}"


def plugin_values(plugin: PluginSettings, settings: Settings) -> Mapping[str, Any]:
    """The plugin's checked values (every field): those ``load_settings`` kept, or, for settings
    read without the plugin known (built directly, or by ``load_settings`` without ``plugins``),
    its ``[tool_settings.<name>]`` table checked now. SettingsError names a bad or missing one."""
    kept = settings.plugin_settings.get(plugin.name)
    if kept is not None:
        return kept
    reader = _PluginReader([plugin])
    reader.add_tables({plugin.name: settings.tool_settings.get(plugin.name, {})}, CONFIG, "")
    checked, _ = reader.resolve()
    return MappingProxyType(checked[plugin.name])


def load_settings(
    cli: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    config_path: str | os.PathLike[str] | None = None,
    plugins: Sequence[PluginSettings] | None = None,
    *,
    check_plugins: bool = True,
    cli_source: Callable[[str], str] = flag_name,
) -> Settings:
    """Build Settings; raises SettingsError naming the first bad setting.

    ``plugins`` (``server/plugins/settings.py`` describes a registry's) makes their settings
    known: each is read from the same sources by the same precedence, checked, and kept in
    ``plugin_settings``; a ``[tool_settings.<group>]`` no plugin reads is refused. Without
    ``plugins`` the registry is unknown: ``tool_settings`` is kept as given and the runtime
    checks a plugin's table when it is built. ``check_plugins=False`` knows the plugins' names
    but neither checks nor keeps their values (commands that do not run tools). ``cli_source``
    names where a ``cli`` value came from in an error (the flag, unless a caller says otherwise)."""
    environ = os.environ if environ is None else environ
    cli = cli or {}
    known = {f.name: f for f in setting_fields()}
    reader = _PluginReader(plugins)
    values: dict[str, Any] = {}

    def take(name: str, value: Any, rank: int, source: str) -> None:
        if name == "tool_settings":
            reader.add_tables(_parse_one(known[name], value, source), rank, source)
        elif name in known:
            values[name] = _parse_one(known[name], value, source)
        elif name in reader.names:
            reader.add(name, value, rank, source)
        else:
            raise SettingsError(f"invalid setting {name}{f' ({source})' if rank == CONFIG else ''}: unknown setting")

    config_path = config_path or environ.get(ENV_PREFIX + "CONFIG") or None
    if config_path:
        for name, value in read_config_file(config_path, known.keys() | reader.names).items():
            take(name, value, CONFIG, "config file")
    for name in (*known, *reader.names):
        if env_name(name) in environ:
            take(name, environ[env_name(name)], ENVIRONMENT, env_name(name))
    for name, value in cli.items():
        if value is not None:
            take(name, value, FLAG, cli_source(name))

    values["tool_settings"] = _read_only(reader.raw_tables())
    if plugins is not None and check_plugins:
        checked, deprecations = reader.resolve()
        values["plugin_settings"] = _read_only(checked)
        values["deprecations"] = tuple(deprecations)
    settings = Settings(**values)
    _check_identity(settings)
    return settings


def _check_identity(settings: Settings) -> None:
    """Settings that only make sense together."""
    if (settings.admin_oidc_audience or settings.oauth_resource_url) and not settings.oidc_issuers:
        which = "admin_oidc_audience" if settings.admin_oidc_audience else "oauth_resource_url"
        raise SettingsError(f"invalid setting {which}: it needs oidc_issuers (the issuers whose tokens are trusted)")
    if settings.console_oidc_client_id and not settings.admin_oidc_audience:
        raise SettingsError(
            "invalid setting console_oidc_client_id: console sign-on needs admin_oidc_audience (and oidc_issuers)"
        )


def _default_text(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "(empty)"
    if value is None or value == "":
        return "(unset)"
    return str(value)


def markdown_table() -> str:
    """The table of the server's own settings in the README (``python -m skywarden.server.cli.reference``
    prints it with the built-in plugins' tables)."""
    rows = ["| Setting | Environment | Default | Meaning |", "|---|---|---|---|"]
    for f in setting_fields():
        rows.append(f"| `{f.name}` | `{env_name(f.name)}` | `{_default_text(default_of(f))}` | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"


def plugin_markdown_table(plugin: PluginSettings) -> str:
    """A plugin's settings as a table like ``markdown_table``'s."""
    rows = ["| Setting | Environment | Default | Meaning |", "|---|---|---|---|"]
    for s in plugin.settings:
        if s.required:
            default = "(required)"
        else:
            default = "(unset)" if s.secret and not s.default else f"`{_default_text(s.default)}`"
        also = [f"or `{s.name}_file`, a file holding it"] if s.secret else []
        if s.alias:
            also.append(f"formerly `{s.alias}`")
        meaning = f"{s.help} ({'; '.join([s.kind, *also])})" if s.kind or also else s.help
        rows.append(f"| `{s.name}` | `{env_name(s.name)}` | {default} | {meaning} |")
    return "\n".join(rows) + "\n"
