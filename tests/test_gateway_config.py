"""The gateway's inputs without an upstream running: ``[skywarden.upstreams.<name>]`` tables (and
the same as JSON in SKYWARDEN_UPSTREAMS or --upstreams), ``gateway_separator``, the secrets an
upstream is given, and the tools an upstream lists. Every malformed form gets a one-line answer
naming what is wrong, and never quotes a secret (docs/gateway.md)."""

from __future__ import annotations

import json
import math
import pickle
import secrets
import socket
from collections.abc import Set
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import marshmallow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skywarden.server.app import create_app
from skywarden.server.gateway.credentials import MAX_SECRET_BYTES, MissingSecret, resolve, resolve_all
from skywarden.server.gateway.schema_checks import UpstreamSchema
from skywarden.server.gateway.schema_compile import UnusableTool, compile_schema
from skywarden.server.gateway.tools import (
    MAX_ERROR_TEXT,
    MAX_GROWTH,
    MEMBER_NAMES,
    JsonSchemaArguments,
    bounded_result,
    registered_tool,
)
from skywarden.server.jsonutil import dumps, loads_exact
from skywarden.server.observability.redaction import redact_text
from skywarden.server.plugins.results import ResultMismatch, ResultShape
from skywarden.server.settings import SettingsError, load_settings
from skywarden.server.upstreams import (
    SEPARATORS,
    GrantableNames,
    SecretSource,
    UpstreamConfig,
    check_separator,
    grantable_names,
    parse_upstream,
    parse_upstreams,
)
from skywarden.tools.contract import ToolResult
from tests.support.admin import create_key
from tests.support.json_strategies import json_values
from tests.support.logs import SECRETS, drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc
from tests.support.server_process import free_port

# A header's literal value and a URL's password: no message, repr or log line may show them.
HEADER_SECRET = "hdr-" + secrets.token_urlsafe(24)
PASSWORD = "pw-" + secrets.token_urlsafe(16)
SECRETS.update({HEADER_SECRET, PASSWORD})
HIDDEN = (HEADER_SECRET, PASSWORD)


def local(**options: Any) -> dict[str, Any]:
    return {"command": "calc-server", **options}


def remote(**options: Any) -> dict[str, Any]:
    return {"url": "https://mcp.example.com/mcp", "headers": {"X-Api-Key": HEADER_SECRET}, **options}


# What a malformed upstream table is, and what the answer says of it.
MALFORMED: list[tuple[str, dict[str, Any], str]] = [
    # names
    ("upper-case name", {"Calc": local()}, "upstream name 'Calc' must be lower-case letters and digits"),
    ("underscore in name", {"my_calc": local()}, "upstream name 'my_calc' must be"),
    ("name too long", {"a" * 33: local()}, "at most 32 characters"),
    ("leading digit", {"1calc": local()}, "upstream name '1calc' must be"),
    ("empty name", {"": local()}, "upstream name '' must be"),
    ("double hyphen", {"my--calc": local()}, "upstream name 'my--calc' must be"),
    ("trailing hyphen", {"calc-": local()}, "upstream name 'calc-' must be"),
    ("newline after name", {"calc\n": local()}, r"upstream name 'calc\n' must be"),
    ("space in name", {"my calc": local()}, "upstream name 'my calc' must be"),
    # the table and its transport
    ("not a table", {"calc": "calc-server"}, "upstream 'calc' must be a table"),
    ("a list, not a table", {"calc": ["calc-server"]}, "upstream 'calc' must be a table"),
    ("neither command nor url", {"calc": {"timeout": 5}}, "upstream 'calc' needs a command (stdio) or a url"),
    ("empty table", {"calc": {}}, "needs a command (stdio) or a url (Streamable HTTP or SSE); got"),
    (
        "unknown transport",
        {"calc": remote(transport="websocket")},
        "transport must be one of stdio, streamable-http, sse",
    ),
    ("transport not text", {"calc": remote(transport=["sse"])}, "transport must be one of"),
    ("transport in capitals", {"calc": remote(transport="SSE")}, "transport must be one of"),
    (
        "headers on stdio",
        {"calc": local(headers={"X-Api-Key": HEADER_SECRET})},
        "unknown option 'headers' for transport stdio",
    ),
    (
        "url on stdio",
        {"calc": local(transport="stdio", url="https://x.example/")},
        "unknown option 'url' for transport stdio",
    ),
    (
        "command and url",
        {"calc": remote(command="calc-server")},
        "needs a command (stdio) or a url (Streamable HTTP or SSE), not both",
    ),
    (
        "command on a url upstream",
        {"calc": remote(transport="streamable-http", command="calc-server")},
        "unknown option 'command' for transport streamable-http",
    ),
    ("env on sse", {"calc": remote(transport="sse", env={"A": "b"})}, "unknown option 'env' for transport sse"),
    ("allow_private on stdio", {"calc": local(allow_private=True)}, "unknown option 'allow_private'"),
    ("unknown option", {"calc": local(retries=3)}, "unknown option 'retries' for transport stdio"),
    # command, args, cwd
    ("command a number", {"calc": {"command": 5}}, "upstream 'calc': command must be non-empty text"),
    ("command empty", {"calc": {"command": ""}}, "command must be non-empty text"),
    ("command a list", {"calc": {"command": ["calc-server", "--stdio"]}}, "command must be non-empty text"),
    ("NUL in command", {"calc": {"command": "calc\x00server"}}, "command must be at most 4096 characters, without NUL"),
    ("command too long", {"calc": {"command": "c" * 4097}}, "command must be at most 4096 characters"),
    ("args not a list", {"calc": local(args="--stdio")}, "args must be an array"),
    ("args a table", {"calc": local(args={"a": "b"})}, "args must be an array"),
    ("non-text item in args", {"calc": local(args=["--port", 8080])}, "upstream 'calc': args must be text"),
    ("NUL in args", {"calc": local(args=["a\x00b"])}, "args must be at most 4096 characters, without NUL"),
    ("too many args", {"calc": local(args=["a"] * 257)}, "at most 256 items"),
    ("cwd a number", {"calc": local(cwd=5)}, "cwd must be text"),
    # env
    ("env not a table", {"calc": local(env="A=b")}, "upstream 'calc': env must be a table"),
    (
        "env key with a hyphen",
        {"calc": local(env={"CALC-TOKEN": "x"})},
        "'CALC-TOKEN' is not an environment variable name",
    ),
    (
        "env key with a leading digit",
        {"calc": local(env={"1TOKEN": "x"})},
        "'1TOKEN' is not an environment variable name",
    ),
    ("env key empty", {"calc": local(env={"": "x"})}, "'' is not an environment variable name"),
    ("newline after env key", {"calc": local(env={"TOKEN\n": "x"})}, r"'TOKEN\n' is not an environment variable name"),
    (
        "env value a number",
        {"calc": local(env={"PORT": 8080})},
        'env.PORT must be text, {file = "path"} or {env = "NAME"}',
    ),
    ("env value a bool", {"calc": local(env={"DEBUG": True})}, "env.DEBUG must be text"),
    (
        "NUL in env value",
        {"calc": local(env={"TOKEN": HEADER_SECRET + "\x00"})},
        "env.TOKEN must be at most 8192 characters, without NUL",
    ),
    ("both file and env", {"calc": local(env={"T": {"file": "/run/t", "env": "T"}})}, "env.T must be text, {file"),
    ("neither file nor env", {"calc": local(env={"T": {"prefix": "Bearer "}})}, "(with an optional prefix)"),
    ("empty source", {"calc": local(env={"T": {}})}, "env.T must be text, {file"),
    ("unknown source key", {"calc": local(env={"T": {"file": "/run/t", "mode": "r"}})}, "(with an optional prefix)"),
    ("source value misspelt", {"calc": local(env={"T": {"files": "/run/t"}})}, "env.T must be text, {file"),
    ("prefix not text", {"calc": local(env={"T": {"env": "T", "prefix": 5}})}, "env.T: prefix must be text"),
    ("prefix too long", {"calc": local(env={"T": {"env": "T", "prefix": "p" * 101}})}, "prefix must be text"),
    (
        "source env not a name",
        {"calc": local(env={"T": {"env": "MY TOKEN"}})},
        "env.T: env must name an environment variable",
    ),
    ("source env a number", {"calc": local(env={"T": {"env": 5}})}, "env must name an environment variable"),
    ("source file empty", {"calc": local(env={"T": {"file": ""}})}, "env.T: file must be non-empty text"),
    ("source file a number", {"calc": local(env={"T": {"file": 5}})}, "file must be non-empty text"),
    # headers
    (
        "headers not a table",
        {"calc": remote(headers=f"X-Api-Key: {HEADER_SECRET}")},
        "upstream 'calc': headers must be a table",
    ),
    (
        "header name with a space",
        {"calc": remote(headers={"X Api Key": HEADER_SECRET})},
        "'X Api Key' is not a header name",
    ),
    ("header name with a colon", {"calc": remote(headers={"X-Api-Key:": HEADER_SECRET})}, "is not a header name"),
    ("header name empty", {"calc": remote(headers={"": HEADER_SECRET})}, "'' is not a header name"),
    ("newline after header name", {"calc": remote(headers={"X-Api-Key\n": HEADER_SECRET})}, "is not a header name"),
    ("header value a number", {"calc": remote(headers={"X-Retries": 3})}, "headers.X-Retries must be text"),
    ("NUL in header value", {"calc": remote(headers={"X-Api-Key": HEADER_SECRET + "\x00"})}, "without NUL"),
    ("header value too long", {"calc": remote(headers={"X-Api-Key": HEADER_SECRET * 300})}, "at most 8192 characters"),
    *(
        (f"reserved header {name}", {"calc": remote(headers={name: HEADER_SECRET})}, f"{name} is set by the transport")
        for name in (
            "Host",
            "Content-Length",
            "Content-Type",
            "Transfer-Encoding",
            "Connection",
            "Accept",
            "Mcp-Session-Id",
            "MCP-Protocol-Version",
            "Last-Event-ID",
            "host",
            "ACCEPT",
        )
    ),
    # url
    ("url not http", {"calc": remote(url="ftp://mcp.example.com/mcp")}, "upstream 'calc': url must be an http(s) URL"),
    ("url without a scheme", {"calc": remote(url="mcp.example.com/mcp")}, "url must be an http(s) URL"),
    ("url without a host", {"calc": remote(url="https:///mcp")}, "url must be an http(s) URL"),
    ("url a number", {"calc": remote(url=8080)}, "url must be non-empty text"),
    ("url empty", {"calc": remote(url="")}, "url must be non-empty text"),
    (
        "url with user and password",
        {"calc": remote(url=f"https://me:{PASSWORD}@mcp.example.com/mcp")},
        "must not carry credentials",
    ),
    (
        "url with a user only",
        {"calc": remote(url=f"https://{PASSWORD}@mcp.example.com/mcp")},
        "must not carry credentials",
    ),
    (
        "url with a password urlsplit refuses",
        {"calc": remote(url=f"https://me:{PASSWORD}\uff03@x.example/")},
        "url must be an http(s) URL",
    ),
    ("url with a fragment", {"calc": remote(url="https://mcp.example.com/mcp#top")}, "url must not have a fragment"),
    ("url with a port out of range", {"calc": remote(url="https://mcp.example.com:99999/mcp")}, "port from 0 to 65535"),
    ("url with a port not a number", {"calc": remote(url="https://mcp.example.com:http/mcp")}, "port from 0 to 65535"),
    ("url with a broken IPv6 host", {"calc": remote(url="http://[::1/mcp")}, "url must be an http(s) URL"),
    *(
        (f"url with the host {host!r}", {"calc": remote(url=f"https://{host}/mcp")}, "url must name its host in ASCII")
        for host in (
            "rebind\u3002example\u3002com",  # ideographic dots: a client reads rebind.example.com
            "rebind\uff0eexample.com",  # a fullwidth dot
            "b\u00fccher.example",  # an international name not in its xn-- form
            "%31%32%37.0.0.1",  # percent-encoded
            "[fe80::1%25lo]",  # an IPv6 zone
            "\u212aelvin.example",  # the Kelvin sign: lower-cased by urllib to an ASCII k
            "a..b",  # an empty label
            ".a",
            "a" * 64 + ".example",  # a label over 63 characters
            "[::1]x",  # after the brackets: httpx and yarl refuse it, urllib reads ::1
            "[v1.abc]",  # an IPvFuture host
        )
    ),
    (
        "url too long",
        {"calc": remote(url="https://mcp.example.com/" + "p" * 2048)},
        "url must be at most 2048 characters",
    ),
    ("allow_private not a bool", {"calc": remote(allow_private="yes")}, "allow_private must be true or false"),
    # limits
    *(
        (
            f"timeout {value!r}",
            {"calc": local(timeout=value)},
            "timeout must be a number of seconds above 0, at most 3600",
        )
        for value in (0, -1, -0.5, True, False, 3601, 1e9, "60", math.nan, math.inf, [60])
    ),
    ("connect_timeout 0", {"calc": local(connect_timeout=0)}, "connect_timeout must be a number of seconds above 0"),
    ("connect_timeout text", {"calc": local(connect_timeout="30s")}, "connect_timeout must be a number of seconds"),
    *(
        (
            f"max_result_bytes {value!r}",
            {"calc": local(max_result_bytes=value)},
            "max_result_bytes must be a number of bytes from 1024 to 67108864",
        )
        for value in (0, 1023, 64 * 1024 * 1024 + 1, 4096.0, "1MB", True, -1)
    ),
    # tools, enabled, description
    ("tools not a list", {"calc": local(tools="add")}, "upstream 'calc': tools must be an array"),
    ("tool name with a space", {"calc": local(tools=["add", "sub tract"])}, "tools: 'sub tract' is not a tool name"),
    ("tool name a pattern", {"calc": local(tools=["calc*"])}, "tools: 'calc*' is not a tool name"),
    ("tool name a number", {"calc": local(tools=[5])}, "tools: '5' is not a tool name"),
    ("tool name empty", {"calc": local(tools=[""])}, "tools: '' is not a tool name"),
    ("tool name too long", {"calc": local(tools=["t" * 129])}, "is not a tool name"),
    ("newline after tool name", {"calc": local(tools=["add\n"])}, r"tools: 'add\n' is not a tool name"),
    ("enabled text", {"calc": local(enabled="yes")}, "upstream 'calc': enabled must be true or false"),
    ("enabled a number", {"calc": local(enabled=1)}, "enabled must be true or false"),
    ("description a number", {"calc": local(description=5)}, "description must be text"),
    ("description too long", {"calc": local(description="d" * 1001)}, "description must be at most 1000 characters"),
]


def _toml_value(value: Any) -> str:
    """``value`` as a TOML value on one line (JSON's strings, numbers and arrays are TOML's)."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {_toml_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    return json.dumps(value)


def toml_upstreams(upstreams: dict[str, Any]) -> str:
    """A config file declaring ``upstreams`` as operators write it: a table per upstream."""
    lines = ["[skywarden]", 'log_level = "info"', "[skywarden.upstreams]"]
    lines += [f"{json.dumps(name)} = {_toml_value(t)}" for name, t in upstreams.items() if not isinstance(t, dict)]
    for name, table in upstreams.items():
        if isinstance(table, dict):
            lines.append(f"[skywarden.upstreams.{json.dumps(name)}]")
            lines += [f"{json.dumps(key)} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"


def settings_error(source: str, upstreams: Any, tmp_path: Path) -> str:
    """The message of the SettingsError that loading ``upstreams`` from ``source`` must raise."""
    with pytest.raises(SettingsError) as info:
        if source == "flag":
            load_settings(cli={"upstreams": upstreams}, environ={})
        elif source == "environment":
            load_settings(environ={"SKYWARDEN_UPSTREAMS": json.dumps(upstreams)})
        else:
            config = tmp_path / "skywarden.toml"
            config.write_text(toml_upstreams(upstreams), encoding="utf-8")
            load_settings(environ={}, config_path=config)
    return str(info.value)


SOURCES = {"flag": "--upstreams", "environment": "SKYWARDEN_UPSTREAMS", "config": "config file"}


def assert_clear(message: str, source: str, says: str) -> None:
    assert message.startswith(f"invalid setting upstreams ({SOURCES[source]}): "), message
    assert says in message, message
    assert message.endswith("; got ***"), message  # the value is never shown: it may hold a credential
    assert "\n" not in message and len(message) < 400, message
    assert not any(hidden in message for hidden in HIDDEN), message


@pytest.mark.parametrize("source", ["flag", "environment", "config"])
@pytest.mark.parametrize(("upstreams", "says"), [pytest.param(u, s, id=i) for i, u, s in MALFORMED])
def test_a_malformed_upstream_is_refused_saying_what_is_wrong(source, upstreams, says, tmp_path):
    # a correct upstream beside it, with its literal credential: the answer is about the wrong one
    upstreams = {"zz-witness": remote(), **upstreams}
    assert_clear(settings_error(source, upstreams, tmp_path), source, says)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("calc", "must be a JSON object such as"),
        ('{"calc": ', "must be a JSON object such as"),
        ("{'calc': {'command': 'x'}}", "must be a JSON object such as"),
        pytest.param("[" * 100_000 + "]" * 100_000, "must be a JSON object such as", id="nested too deep for json"),
        ('[{"calc": {"command": "x"}}]', "must be a table of upstreams"),
        ('"calc"', "must be a table of upstreams"),
        ("null", "must be a table of upstreams"),
        ("42", "must be a table of upstreams"),
        pytest.param(
            f'{{"calc": {{"url": "https://me:{PASSWORD}@h.example/"}}}}',
            "must not carry credentials",
            id="a password in a url",  # not the value: it would show in the test's name
        ),
    ],
)
@pytest.mark.parametrize("source", ["flag", "environment"])
def test_json_that_is_no_object_of_upstreams_is_refused(source, text, says):
    with pytest.raises(SettingsError) as info:
        if source == "flag":
            load_settings(cli={"upstreams": text}, environ={})
        else:
            load_settings(environ={"SKYWARDEN_UPSTREAMS": text})
    assert_clear(str(info.value), source, says)


def test_a_config_file_whose_upstreams_are_no_table_is_refused(tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text('[skywarden]\nupstreams = ["calc"]\n')
    assert_clear(settings_error_from(config), "config", "must be a table of upstreams")


def settings_error_from(config: Path) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, config_path=config)
    return str(info.value)


CONFIG_FILE = """\
[skywarden]
gateway_separator = "."

[skywarden.upstreams.calc]
command = "/usr/local/bin/calc-server"
args = ["--stdio", "--precision", "10"]
cwd = "/srv/calc"
timeout = 5
tools = ["add", "sub"]

[skywarden.upstreams.calc.env]
CALC_MODE = "fast"
CALC_TOKEN = {{file = "/run/secrets/calc"}}

[skywarden.upstreams.search]
url = "https://search.example.com/mcp?tenant=7"
connect_timeout = 2.5
max_result_bytes = 4096
description = "Search"

[skywarden.upstreams.search.headers]
Authorization = {{env = "SEARCH_TOKEN", prefix = "Bearer "}}
X-Api-Key = "{secret}"

[skywarden.upstreams.old-one]
url = "http://10.0.0.5:8931/sse"
transport = "sse"
allow_private = true
enabled = false
"""


def test_upstreams_from_a_config_file_as_operators_write_them(tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text(CONFIG_FILE.format(secret=HEADER_SECRET))
    s = load_settings(environ={}, config_path=config)
    assert s.gateway_separator == "."
    calc, old, search = s.upstreams  # by name
    assert (calc.name, calc.transport, calc.command, calc.args) == (
        "calc",
        "stdio",
        "/usr/local/bin/calc-server",
        ("--stdio", "--precision", "10"),
    )
    assert (calc.cwd, calc.timeout, calc.connect_timeout, calc.tools) == ("/srv/calc", 5.0, 30.0, ("add", "sub"))
    assert dict(calc.env) == {
        "CALC_MODE": SecretSource(text="fast"),
        "CALC_TOKEN": SecretSource(file="/run/secrets/calc"),
    }
    assert calc.env["CALC_TOKEN"].secret and not calc.env["CALC_MODE"].secret
    assert (search.transport, search.url, search.connect_timeout, search.max_result_bytes) == (
        "streamable-http",
        "https://search.example.com/mcp?tenant=7",
        2.5,
        4096,
    )
    assert search.headers["Authorization"] == SecretSource(env="SEARCH_TOKEN", prefix="Bearer ")
    assert search.headers["X-Api-Key"] == SecretSource(text=HEADER_SECRET)
    assert search.target() == "https://search.example.com/mcp"  # no query: it may hold a credential
    assert (old.transport, old.allow_private, old.enabled) == ("sse", True, False)
    assert old.target() == "http://10.0.0.5:8931/sse"


def test_upstreams_without_the_skywarden_table_and_from_json(tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text('[upstreams.calc]\ncommand = "calc-server"\n')
    assert load_settings(environ={}, config_path=config).upstreams == (UpstreamConfig("calc", "stdio", "calc-server"),)
    from_json = load_settings(environ={"SKYWARDEN_UPSTREAMS": json.dumps({"calc": {"command": "calc-server"}})})
    assert from_json.upstreams == (UpstreamConfig("calc", "stdio", "calc-server"),)
    assert load_settings(environ={"SKYWARDEN_UPSTREAMS": "  "}).upstreams == ()
    assert load_settings(environ={"SKYWARDEN_UPSTREAMS": "{}"}).upstreams == ()
    assert load_settings(environ={}).upstreams == ()


def test_a_flag_replaces_the_upstreams_of_the_environment_and_the_file(tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text('[skywarden.upstreams.calc]\ncommand = "calc-server"\n')
    env = {"SKYWARDEN_UPSTREAMS": json.dumps({"search": {"url": "https://s.example/mcp"}})}
    assert [u.name for u in load_settings(environ=env, config_path=config).upstreams] == ["search"]
    flag = {"upstreams": json.dumps({"other": {"command": "o"}})}
    assert [u.name for u in load_settings(cli=flag, environ=env, config_path=config).upstreams] == ["other"]


# gateway_separator


@pytest.mark.parametrize("separator", SEPARATORS)
def test_every_listed_separator_is_accepted(separator):
    assert load_settings(environ={"SKYWARDEN_GATEWAY_SEPARATOR": separator}).gateway_separator == separator
    assert check_separator(separator) == separator


@pytest.mark.parametrize("separator", ["", " ", "/", ":", "___", "---", "...", "__ ", "a", "\n", "\x00"])
def test_another_separator_is_refused(separator):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={"SKYWARDEN_GATEWAY_SEPARATOR": separator})
    message = str(info.value)
    assert message.startswith("invalid setting gateway_separator (SKYWARDEN_GATEWAY_SEPARATOR): must be one of")
    assert "'__', '_', '-', '--', '.', '..'" in message and "\n" not in message


@pytest.mark.parametrize("separator", [5, 0.5, ["__"], True, {"a": "__"}])
def test_a_separator_that_is_no_text_is_refused(separator, tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text(f"[skywarden]\ngateway_separator = {_toml_value(separator)}\n")
    with pytest.raises(SettingsError, match=r"^invalid setting gateway_separator \(config file\): must be one of"):
        load_settings(environ={}, config_path=config)


@pytest.mark.parametrize("enabled", [True, False])
async def test_an_upstream_whose_name_holds_the_separator_is_refused_when_the_app_is_built(make_settings, enabled):
    settings = make_settings(upstreams={"my-calc": local(enabled=enabled)}, gateway_separator="-")
    with pytest.raises(SettingsError) as info:
        create_app(settings)
    message = str(info.value)
    assert message.startswith("invalid setting upstreams:") and "\n" not in message
    assert "'my-calc'" in message and "'-'" in message and "gateway_separator" in message


@pytest.mark.parametrize("separator", ["__", "_", "--", ".", ".."])
def test_a_hyphenated_name_is_fine_with_any_other_separator(separator):
    s = load_settings(cli={"upstreams": {"my-calc": local()}, "gateway_separator": separator}, environ={})
    assert s.upstreams[0].name == "my-calc"


# settings with upstreams, shown and handed to worker processes


def gateway_settings(tmp_path: Path):
    return load_settings(
        cli={
            "upstreams": {
                "calc": local(
                    args=["--stdio"], env={"MODE": "fast", "TOKEN": {"file": str(tmp_path / "t")}}, tools=["add"]
                ),
                "search": remote(
                    headers={"X-Api-Key": HEADER_SECRET, "Authorization": {"env": "T", "prefix": "Bearer "}}
                ),
            },
            "gateway_separator": ".",
        },
        environ={},
    )


def test_settings_with_upstreams_survive_pickling_for_worker_processes(tmp_path):
    s = gateway_settings(tmp_path)
    again = pickle.loads(pickle.dumps(s))
    assert again == s and again.upstreams == s.upstreams and again.gateway_separator == "."
    calc, search = again.upstreams
    assert calc.env["TOKEN"] == SecretSource(file=str(tmp_path / "t")) and calc.tools == ("add",)
    assert search.headers["X-Api-Key"].text == HEADER_SECRET
    with pytest.raises(TypeError):
        search.headers["X-Api-Key"] = SecretSource(text="other")  # type: ignore[index]  # still read-only
    with pytest.raises(TypeError):
        calc.env["MODE"] = SecretSource(text="slow")  # type: ignore[index]


def test_no_repr_shows_a_literal_header_value(tmp_path):
    s = gateway_settings(tmp_path)
    assert "upstreams='***'" in repr(s)
    for shown in (
        repr(s),
        str(s),
        repr(s.upstreams),
        repr(s.upstreams[1].headers),
        repr(pickle.loads(pickle.dumps(s))),
    ):
        assert HEADER_SECRET not in shown
    assert "X-Api-Key" in repr(s.upstreams[1])  # the names still show


# what a key's scopes may name


CONFIGS = parse_upstreams({"calc": local(), "off": local(enabled=False)})


@pytest.mark.parametrize(
    "name",
    [
        "calc__*",
        "upstream:calc",
        "calc__add",
        "calc__anything",
        "calc__a.b-c_d",
        "calc__" + "x" * 122,
        "off__x",
        "upstream:off",
        "get_forecast",
    ],
)
def test_a_configured_upstream_grants_its_prefix_and_any_tool_under_it(name):
    names = grantable_names(["get_forecast"], CONFIGS, "__")
    assert isinstance(names, GrantableNames) and isinstance(names, Set)
    assert name in names


@pytest.mark.parametrize(
    "name",
    [
        "calc__",
        "calc_",
        "calc",
        "other__x",
        "upstream:other",
        "upstream:",
        "calc__a*b",
        "calc__x*",
        "calc__*x",
        "calc__a b",
        "calc__x\n",
        "calc__" + "x" * 123,  # 129 characters
        "Calc__x",
        "calc-x",
        "",
        5,
        None,
        ("calc__x",),
        b"calc__x",
    ],
)
def test_other_names_are_not_grantable(name):
    assert name not in grantable_names(["get_forecast"], CONFIGS, "__")


def test_the_prefix_follows_the_separator():
    names = grantable_names([], CONFIGS, "-")
    assert all(name in names for name in ("calc-*", "upstream:calc", "calc-add", "off-x"))
    assert not any(name in names for name in ("calc__add", "calc__*", "calc-"))
    assert "x" not in grantable_names([], (), "__")


@pytest.fixture
async def gateway_down(make_client, make_settings):
    """A server whose upstream ``calc`` is down: nothing listens where it is (no process started)."""
    upstream = {"url": f"http://127.0.0.1:{free_port()}/mcp", "allow_private": True, "connect_timeout": 0.2}
    return await make_client(make_settings(upstreams={"calc": upstream}))


@pytest.mark.parametrize(
    ("enabled", "why"),
    [(True, "the upstream calc is unavailable"), (False, "the upstream calc is disabled")],
)
async def test_a_tool_of_an_upstream_not_up_is_refused_saying_why(make_client, make_settings, enabled, why):
    upstream = {"url": f"http://127.0.0.1:{free_port()}/mcp", "allow_private": True, "connect_timeout": 0.2}
    client = await make_client(make_settings(upstreams={"calc": {**upstream, "enabled": enabled}}))
    rest = await client.post("/api/mcp/tools/calc__add", json={"a": 1})
    assert rest.status == 404 and (await rest.json())["detail"] == f"Unknown tool: calc__add ({why})"
    for path, name in (("/mcp", "calc__add"), ("/mcp/u/calc", "add")):
        message = modern_rpc("tools/call", {"name": name, "arguments": {}})
        answer = await (await client.post(path, json=message, headers=modern_headers(message))).json()
        assert answer["error"]["message"] == f"Unknown tool: {name} ({why})", answer
    plain = await client.post("/api/mcp/tools/nope__add", json={})
    assert (await plain.json())["detail"] == "Unknown tool: nope__add"  # no upstream of that name


async def test_a_remote_upstream_that_cannot_be_reached_is_named_by_its_origin(
    make_client, make_settings, aiohttp_server
):
    from aiohttp import web

    from skywarden.server.appkeys import GATEWAY

    port = free_port()
    nowhere = {"url": f"http://127.0.0.1:{port}/mcp?token=in-the-url", "allow_private": True, "connect_timeout": 0.5}
    not_mcp = await aiohttp_server(web.Application())  # answers 404 to everything
    wrong_path = {"url": str(not_mcp.make_url("/")), "allow_private": True, "connect_timeout": 2}
    client = await make_client(make_settings(upstreams={"nowhere": nowhere, "wrong": wrong_path}))
    connections = client.server.app[GATEWAY].connections
    refused = connections["nowhere"].figures.last_error
    assert refused.startswith(f"http://127.0.0.1:{port}: ") and "in-the-url" not in refused, refused
    not_found = connections["wrong"].figures.last_error
    assert not_found.startswith(f"http://127.0.0.1:{not_mcp.port}: ") and "such as /mcp?" in not_found, not_found


async def test_a_remote_upstream_that_never_answers_is_named_by_its_origin(make_client, make_settings):
    from skywarden.server.appkeys import GATEWAY

    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
        port = silent.getsockname()[1]
        url = f"http://127.0.0.1:{port}/sse?token=in-the-url"
        upstream = {"url": url, "transport": "sse", "allow_private": True, "connect_timeout": 0.3}
        client = await make_client(make_settings(upstreams={"quiet": upstream}))
        reason = client.server.app[GATEWAY].connections["quiet"].figures.last_error
    assert reason == f"http://127.0.0.1:{port}: no answer within connect_timeout (0.3 s)"


async def check_key_scopes(client) -> None:
    for scopes in (["calc__add"], ["upstream:calc"], ["calc__*"], ["calc__not-listed-yet", "get_forecast"]):
        assert (await create_key(client.admin, scopes=scopes))["scopes"] == scopes
    for scopes in (["nope__x"], ["calc__add", "nope__x"], ["calc__"], ["upstream:nope"], ["calc__a*"]):
        answer = await client.admin.post("/api/admin/keys", json={"name": "k", "scopes": scopes})
        assert answer.status == 422, await answer.text()
        expected = "No upstream named 'nope'" if scopes[-1] == "upstream:nope" else f"Unknown tool: {scopes[-1]}"
        assert expected in await answer.text()


async def test_keys_may_be_scoped_to_an_upstream_that_never_connected(gateway_down):
    ready = await (await gateway_down.anonymous.get("/api/health/ready")).json()
    assert ready["upstreams"] == {"calc": "down"}  # and the server is ready all the same
    await check_key_scopes(gateway_down)


@pytest.mark.slow
async def test_keys_may_be_scoped_to_a_stdio_upstream_whose_command_is_missing(make_client, make_settings, tmp_path):
    upstream = {"command": str(tmp_path / "no-such-server"), "connect_timeout": 1}
    client = await make_client(make_settings(upstreams={"calc": upstream}))
    await check_key_scopes(client)


# an upstream's secrets, read when it starts

VARIABLE = "SKYWARDEN_TEST_UPSTREAM_SECRET"


def fresh_secret() -> str:
    value = "sec-" + secrets.token_urlsafe(24)
    SECRETS.add(value)
    return value


def test_text_is_used_as_it_is():
    assert resolve(SecretSource(text="fast")) == "fast"
    assert resolve_all({"MODE": SecretSource(text="fast"), "EMPTY": SecretSource(text="")}, "calc") == {
        "MODE": "fast",
        "EMPTY": "",
    }


def test_a_variable_is_read_prefixed_and_redacted_from_logs(monkeypatch):
    value = fresh_secret()
    monkeypatch.setenv(VARIABLE, value)
    assert resolve(SecretSource(env=VARIABLE)) == value
    assert resolve(SecretSource(env=VARIABLE, prefix="Bearer ")) == "Bearer " + value
    line = redact_text(f"upstream said {value}!")
    assert value not in line and "[REDACTED]" in line


@pytest.mark.parametrize("set_to", [None, "", "two\nlines-of-secret", "cr\rinside-a-secret"])
def test_a_variable_unset_or_unusable_is_a_missing_secret_naming_it(monkeypatch, set_to):
    if set_to is None:
        monkeypatch.delenv(VARIABLE, raising=False)
    else:
        monkeypatch.setenv(VARIABLE, set_to)
    with pytest.raises(MissingSecret) as info:
        resolve(SecretSource(env=VARIABLE, prefix="Bearer "))
    message = str(info.value)
    assert message.startswith(f"environment variable {VARIABLE} is "), message
    assert "\n" not in message and (not set_to or set_to not in message)


def test_a_file_gives_its_first_line_prefixed_and_redacted_from_logs(tmp_path):
    value, other = fresh_secret(), fresh_secret()
    path = tmp_path / "secret"
    for content in (value, value + "\n", f"{value}\n{other}\n", f"{value}\r\n{other}"):
        path.write_text(content)
        assert resolve(SecretSource(file=str(path))) == value
    assert resolve(SecretSource(file=str(path), prefix="Bearer ")) == "Bearer " + value
    assert value not in redact_text(f"Authorization: Token {value}")
    path.write_bytes(b"x" * MAX_SECRET_BYTES)
    assert resolve(SecretSource(file=str(path))) == "x" * MAX_SECRET_BYTES


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "cannot be read: No such file or directory"),
        (b"x" * (MAX_SECRET_BYTES + 1), f"is larger than {MAX_SECRET_BYTES} bytes"),
        (b"", "is empty or holds a line break or NUL"),
        (b"\n\n", "is empty or holds a line break or NUL"),
        (b"  \n", "is empty or holds a line break or NUL"),
        (b"\nsecret-on-line-two", "is empty or holds a line break or NUL"),  # the first line is empty
        (b"\xff\xfesecret-in-latin-1 \xe9", "is not UTF-8 text"),
        (b"secret\x00-with-nul", "is empty or holds a line break or NUL"),
    ],
)
def test_a_file_missing_too_big_empty_or_not_text_is_a_missing_secret_naming_it(tmp_path, content, says):
    path = tmp_path / "secret"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(MissingSecret) as info:
        resolve(SecretSource(file=str(path)))
    message = str(info.value)
    assert message == f"file {path} {says}", message
    assert "secret-" not in message.replace(str(path), "")


def test_a_directory_is_no_secret_file(tmp_path):
    with pytest.raises(MissingSecret, match=rf"^file {tmp_path} cannot be read: "):
        resolve(SecretSource(file=str(tmp_path)))


# an upstream's tools as Skywarden's

CALC = UpstreamConfig("calc", "stdio", command="calc-server")
ADD_SCHEMA = {
    "type": "object",
    "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
    "required": ["a", "b"],
}


async def no_forward(tool: str, arguments: dict[str, Any], context: Any) -> ToolResult:
    raise AssertionError("not called")


def listed(**fields: Any) -> dict[str, Any]:
    return {"name": "add", "inputSchema": ADD_SCHEMA, **fields}


async def test_an_upstream_tool_becomes_a_prefixed_tool_that_forwards_its_own_name():
    calls = []

    async def forward(tool: str, arguments: dict[str, Any], context: Any) -> ToolResult:
        calls.append((tool, arguments, context))
        return ToolResult(content=[{"type": "text", "text": "42"}])

    tool = registered_tool(CALC, ".", listed(description="Add two integers.", title="Add"), forward)
    assert (tool.name, tool.title, tool.description, tool.upstream) == ("calc.add", "Add", "Add two integers.", "calc")
    assert tool.grants == {"*", "calc.add", "calc.*", "upstream:calc"}
    assert tool.input_schema == ADD_SCHEMA and tool.output_schema is None
    assert (await tool.invoke({"a": 1, "b": 2}, "ctx")).content[0]["text"] == "42"
    assert calls == [("add", {"a": 1, "b": 2}, "ctx")]


def test_annotations_keep_only_mcps_fields():
    annotations = {"title": "Add", "readOnlyHint": True, "idempotentHint": True, "openWorldHint": False}
    odd = {**annotations, "destructiveHint": False, "x-vendor": "secret", "audience": ["user"], "priority": 1}
    tool = registered_tool(CALC, "__", listed(annotations=odd), no_forward)
    assert dict(tool.annotations) == {**annotations, "destructiveHint": False}
    for not_a_table in (["readOnlyHint"], "readOnlyHint", 5, None):
        assert dict(registered_tool(CALC, "__", listed(annotations=not_a_table), no_forward).annotations) == {}


def listening_socket() -> socket.socket:
    """A loopback port that records whether anything connected (the kernel accepts for it)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    server.setblocking(False)
    return server


def connected(server: socket.socket) -> bool:
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return False
    return True


@pytest.mark.parametrize("which", ["inputSchema", "outputSchema"])
def test_a_schema_with_a_remote_ref_is_unusable_and_nothing_is_fetched(which):
    server = listening_socket()
    try:
        url = f"http://127.0.0.1:{server.getsockname()[1]}/schema.json"
        schema = {"type": "object", "properties": {"a": {"$ref": url}}}
        with pytest.raises(UnusableTool) as info:
            registered_tool(CALC, "__", listed(**{which: schema}), no_forward)
        assert "is not a JSON Schema Skywarden can check" in str(info.value) and "\n" not in str(info.value)
        assert not connected(server)
    finally:
        server.close()


@pytest.mark.parametrize("schema", [None, [], "object", 5, True])
@pytest.mark.parametrize("which", ["inputSchema", "outputSchema"])
def test_a_schema_that_is_no_object_makes_the_tool_unusable(which, schema):
    tool = listed(**{which: schema})
    if which == "outputSchema" and schema is None:
        assert registered_tool(CALC, "__", tool, no_forward).output_schema is None  # none given: fine
        return
    what = "input schema" if which == "inputSchema" else "output schema"
    with pytest.raises(UnusableTool, match=f"^its {what} is not a JSON object$"):
        registered_tool(CALC, "__", tool, no_forward)


@pytest.mark.parametrize(
    "schema", [{"type": 5}, {"pattern": "["}, {"$ref": "#/nope"}, {"$schema": "https://example.com/meta"}]
)
def test_a_schema_jsonschema_cannot_compile_is_unusable(schema):
    with pytest.raises(UnusableTool, match=r"^its input schema is not a JSON Schema Skywarden can check: ") as info:
        compile_schema(schema, "input schema")
    assert "\n" not in str(info.value) and len(str(info.value)) < 300


@pytest.mark.parametrize("which", ["inputSchema", "outputSchema"])
@pytest.mark.parametrize(
    "where",
    [
        lambda p: {"type": "string", "pattern": p},
        lambda p: {"type": "object", "patternProperties": {p: {}}},
        lambda p: {"type": "object", "propertyNames": {"pattern": p}},
        lambda p: {"type": "array", "items": {"$ref": "#/$defs/word"}, "$defs": {"word": {"pattern": p}}},
    ],
)
def test_a_pattern_too_costly_to_check_leaves_its_tool_out_saying_so(which, where):
    # unbounded, this pattern held the event loop for seconds per string it was matched against
    over = r'is not a "regex" \(invalid, or over the bound of 200000 bytes compiled\)$'
    with pytest.raises(UnusableTool, match=over):
        registered_tool(CALC, "__", listed(**{which: where("[a-y]{20000}[0-9]")}), no_forward)


@pytest.mark.parametrize(
    ("pattern", "matching", "other"),
    [
        (r"^[a-z][a-z0-9-]{0,62}$", "calc-1", "Calc"),
        (r"^\w{1,256}$", "hello_1", "two words"),
        (r"^(?=.*[A-Z]).{8,}$", "longEnough", "short"),  # lookahead: the backtracking engine
        (r"^(\d{3})-\1$", "123-123", "123-124"),  # a backreference
        (r"[a-y]{2500}[0-9]", "a" * 2500 + "7", "a" * 2500),  # the largest repetition of its kind within the bound
    ],
)
def test_patterns_within_the_bounds_check_as_written(pattern, matching, other):
    check = compile_schema({"type": "string", "pattern": pattern}, "input schema")
    assert check.is_valid(matching) and not check.is_valid(other)


def answering(result: ToolResult) -> Any:
    async def forward(tool: str, arguments: dict[str, Any], context: Any) -> ToolResult:
        return result

    return forward


async def test_a_result_with_structured_content_only_gets_its_json_as_text_too():
    schema = {"type": "object", "properties": {"total": {"type": "integer"}}}
    tool = registered_tool(CALC, "__", listed(outputSchema=schema), answering(ToolResult([], structured={"total": 3})))
    result = tool.shape(await tool.invoke({"a": 1, "b": 2}, None))
    assert result.content == [{"type": "text", "text": '{"total":3}'}] and result.structured == {"total": 3}
    written = ToolResult([{"type": "text", "text": "three"}], structured={"total": 3})
    tool = registered_tool(CALC, "__", listed(outputSchema=schema), answering(written))
    assert await tool.invoke({"a": 1, "b": 2}, None) is written


async def test_an_output_schema_is_checked_as_compiled_with_its_bounds():
    pattern = {"type": "object", "properties": {"w": {"type": "string", "pattern": r"^(?=.*\d)\w+$"}}}
    good = ToolResult(content=[{"type": "text", "text": "a1"}], structured={"w": "a1"})
    tool = registered_tool(CALC, "__", listed(outputSchema=pattern), answering(good))
    assert tool.shape(await tool.invoke({"a": 1, "b": 2}, None)) is good
    bad = registered_tool(CALC, "__", listed(outputSchema=pattern), answering(ToolResult([], structured={"w": "ab"})))
    with pytest.raises(ResultMismatch) as info:
        await bad.invoke({"a": 1, "b": 2}, None)
    assert info.value.failures == [{"instance_path": "/w", "schema_path": "/properties/w/pattern"}]


def test_a_tool_without_an_input_schema_is_unusable():
    with pytest.raises(UnusableTool, match="input schema is not a JSON object"):
        registered_tool(CALC, "__", {"name": "add"}, no_forward)


@pytest.mark.parametrize("name", ["add two", "x" * 123, "add\n", "ädd", "add/sub", "a*", "", None, 5, ["add"]])
def test_a_name_that_makes_no_valid_tool_name_is_unusable(name):
    with pytest.raises(UnusableTool) as info:
        registered_tool(CALC, "__", listed(name=name), no_forward)
    message = str(info.value)
    assert message == "it has no name" or message.endswith(
        "is no valid tool name (letters, digits, _ . -; at most 128)"
    )
    assert "\n" not in message and len(message) < 300


def test_a_name_of_128_characters_in_all_is_fine():
    assert registered_tool(CALC, "__", listed(name="x" * 122), no_forward).name == "calc__" + "x" * 122


NESTED_SCHEMA = {
    "type": "object",
    "properties": {
        "a": {"type": "integer"},
        "b": {
            "type": "object",
            "properties": {"c": {"type": "string"}, "items": {"type": "array", "items": {"type": "integer"}}},
        },
    },
    "required": ["a"],
    "additionalProperties": False,
}


def check(schema: dict[str, Any], data: Any) -> dict[str, list[str]]:
    with pytest.raises(marshmallow.ValidationError) as info:
        JsonSchemaArguments(UpstreamSchema(schema, compile_schema(schema, "input schema"))).load(data)
    errors = info.value.messages
    assert isinstance(errors, dict)
    return errors


def test_arguments_are_checked_against_the_input_schema_the_first_error_by_field_path():
    arguments = JsonSchemaArguments(UpstreamSchema(NESTED_SCHEMA, compile_schema(NESTED_SCHEMA, "input schema")))
    valid = {"a": 1, "b": {"c": "x", "items": [1, 2]}}
    loaded = arguments.load(valid)
    assert loaded == valid and loaded is not valid
    assert check(NESTED_SCHEMA, {"a": "one", "b": {"c": 5, "items": [1, "two"]}}) == {
        "a": ['"one" is not of type "integer"']
    }
    assert check(NESTED_SCHEMA, {"a": 1, "b": {"c": "x", "items": [1, "two"]}}) == {
        "b.items.1": ['"two" is not of type "integer"']
    }
    assert check(NESTED_SCHEMA, {}) == {"a": ['"a" is a required property']}
    assert set(check(NESTED_SCHEMA, {"a": 1, "extra": True, "more": 2})) == {"extra"}
    assert "_schema" in check(NESTED_SCHEMA, ["a"])


def test_a_missing_or_unexpected_member_is_named_by_its_path_and_bounded():
    deep = {
        "type": "object",
        "properties": {"o": {"type": "object", "required": ["x"], "additionalProperties": False}},
        "additionalProperties": False,
    }
    assert check(deep, {"o": {"y": 1}}) == {"o.x": ['"x" is a required property']}
    flat = {"type": "object", "properties": {"x": {}}, "additionalProperties": False}
    assert set(check(flat, {"x": 1, **{f"k{i}": 1 for i in range(50)}})) == {"k0"}
    assert set(check(flat, {"x": 1, "z" * 1000: 1})) == {"z" * MAX_ERROR_TEXT}


def test_only_the_first_error_is_asked_for_and_cut_to_two_hundred_characters():
    many = {"type": "object", "properties": {f"p{i}": {"type": "integer"} for i in range(40)}}
    assert check(many, {f"p{i}": "x" for i in range(40)}) == {"p0": ['"x" is not of type "integer"']}
    long_enum = {"type": "object", "properties": {"a": {"enum": ["v" * 500, "w" * 500]}}}
    messages = check(long_enum, {"a": "x" * 1000})["a"]
    assert len(messages) == 1 and len(messages[0]) == MAX_ERROR_TEXT


class NoErrorList:
    """A compiled schema whose ``iter_errors`` may not be used: jsonschema-rs makes every error
    before it yields one (an array of 300,000 ``{}`` against five required names: 1.5 million
    errors, 14 s and 2.7 GB for one request)."""

    def __init__(self, schema: dict[str, Any]) -> None:
        self.compiled = compile_schema(schema, "input schema")

    def is_valid(self, data: Any) -> bool:
        return self.compiled.is_valid(data)

    def validate(self, data: Any) -> None:
        self.compiled.validate(data)

    def iter_errors(self, data: Any) -> Any:
        raise AssertionError("every error was asked for")


ROWS = {
    "type": "object",
    "properties": {"rows": {"type": "array", "items": {"type": "object", "required": ["a", "b", "c", "d", "e"]}}},
}


def test_arguments_with_a_million_errors_are_refused_by_the_first_and_never_all_made():
    rows = {"rows": [{}] * 20_000}  # 60 KB of JSON: 100,000 errors
    with pytest.raises(marshmallow.ValidationError) as info:
        JsonSchemaArguments(UpstreamSchema(ROWS, NoErrorList(ROWS))).load(rows)
    assert info.value.messages == {"rows.0.a": ['"a" is a required property']}
    assert check(ROWS, rows) == {"rows.0.a": ['"a" is a required property']}


def test_a_result_with_many_failures_logs_the_first_and_never_makes_all():
    shape = ResultShape(None, None, False, validator=NoErrorList({"type": "object", **ROWS}))
    with pytest.raises(ResultMismatch) as info:
        shape(ToolResult(content=[], structured={"rows": [{}] * 20_000}))
    assert info.value.failures == [{"instance_path": "/rows/0", "schema_path": "/properties/rows/items/required"}]


def test_a_schema_given_through_the_registered_tool_checks_its_arguments():
    tool = registered_tool(CALC, "__", listed(), no_forward)
    assert tool.arguments_schema.load({"a": 1, "b": 2}) == {"a": 1, "b": 2}
    with pytest.raises(marshmallow.ValidationError) as info:
        tool.arguments_schema.load({"a": 1, "b": "2"})
    assert info.value.messages == {"b": ['"2" is not of type "integer"']}


def test_a_result_over_its_limit_is_an_error_naming_the_limit():
    small = ToolResult(content=[{"type": "text", "text": "42"}], structured={"total": 42})
    assert bounded_result(small, 1024, "calc") is small
    for big in (
        ToolResult(content=[{"type": "text", "text": "x" * 2000}]),
        ToolResult(content=[{"type": "text", "text": "ok"}], structured={"rows": ["y" * 100] * 20}),
    ):
        answer = bounded_result(big, 1024, "calc")
        assert answer.is_error and answer.structured is None
        text = answer.content[0]["text"]
        assert "calc" in text and "limit of 1024" in text and "x" * 20 not in text


def test_a_small_answer_is_passed_without_being_measured_again():
    big = ToolResult(content=[{"type": "text", "text": "x" * 2000}])
    assert bounded_result(big, 1024, "calc", read=150) is big  # 150 bytes read cannot grow past 1024
    assert bounded_result(big, 1024, "calc", read=300).is_error  # 300 could: it is measured, and is over


def _shortest_literal(value: float) -> bytes:
    """The shortest JSON number an upstream could write for ``value`` (``1e15`` for 10**15)."""
    forms = [repr(value)]
    for digits in range(17):
        mantissa, _, exponent = f"{value:.{digits}e}".partition("e")
        mantissa = mantissa.rstrip("0").rstrip(".") if "." in mantissa else mantissa
        forms.append(f"{mantissa}e{int(exponent)}")
    return min((f.encode() for f in forms if float(f) == value), key=len)


def _written_tightly(value: Any) -> bytes:
    """``value`` as JSON in as few bytes as a writer could use."""
    if isinstance(value, float):
        return _shortest_literal(value)
    if isinstance(value, list):
        return b"[" + b",".join(map(_written_tightly, value)) + b"]"
    if isinstance(value, dict):
        return b"{" + b",".join(dumps(k) + b":" + _written_tightly(v) for k, v in value.items()) + b"}"
    return dumps(value)


# the floats whose shortest literal grows most when written back (1e15: 4.5x), and the ones that
# would grow more if orjson ever wrote plain digits further (1e17-1e20)
_GROWING = [1e15, -1e15, 1e16, 1e17, 1e18, 1e19, -1e20, 1e5, 2e-5, 5e-324]
_GROWING_FLOATS = st.lists(st.sampled_from(_GROWING), max_size=30)


@given(
    content=json_values,
    structured=json_values | st.none(),
    floats=_GROWING_FLOATS,
    error=st.booleans(),
)
@settings(max_examples=300, deadline=None)
def test_no_result_grows_past_what_bounded_result_assumes(
    content: Any, structured: Any, floats: list[float], error: bool
) -> None:
    """An answer of ``read`` bytes is never measured again when ``read * MAX_GROWTH + MEMBER_NAMES``
    fits the limit: that must bound what Skywarden writes of any result, however tightly the
    upstream wrote it (floats at their shortest, no spaces)."""
    result: dict[str, Any] = {"content": [{"type": "text", "text": "t", "x": content, "n": floats}]}
    if structured is not None:
        result["structuredContent"] = structured
    if error:
        result["isError"] = True
    raw = b'{"id":"a","result":' + _written_tightly(result) + b"}"
    read = loads_exact(raw)["result"]
    written = len(dumps({"content": read.get("content") or [], "structuredContent": read.get("structuredContent")}))
    assert written <= len(raw) * MAX_GROWTH + MEMBER_NAMES


# parse_upstreams answers anything with upstreams or a ValueError

_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_OPTIONS = sorted(
    {"command", "args", "cwd", "env", "url", "headers", "allow_private", "transport", "enabled", "timeout"}
    | {"connect_timeout", "max_result_bytes", "tools", "description"}
)
_TEXTS = st.sampled_from(
    [
        "stdio",
        "sse",
        "streamable-http",
        "calc-server",
        "https://h.example/mcp",
        "http://u:p@h/",
        "http://h:70000/",
        "add",
        "",
    ]
)
_SOURCE = st.one_of(
    st.text(max_size=8),
    _JSON,
    st.dictionaries(st.sampled_from(["file", "env", "prefix", "other"]), _TEXTS | _JSON, max_size=3),
)
_ENTRIES = st.dictionaries(
    st.sampled_from(["X-Api-Key", "Host", "TOKEN", "1X", "a b", ""]) | st.text(max_size=6), _SOURCE, max_size=3
)
_TABLES = (
    st.dictionaries(
        st.sampled_from(_OPTIONS) | st.text(max_size=6),
        st.one_of(_JSON, _TEXTS, _ENTRIES, st.lists(_TEXTS, max_size=3), st.floats(0, 4000), st.integers(0, 10**8)),
        max_size=6,
    )
    | _JSON
)
_NEAR_VALID = st.builds(  # a correct table with an option or two changed: reaches past the first check
    lambda base, changes: {**base, **changes},
    st.sampled_from(
        [local(), remote(), {"url": "http://10.0.0.1:8931/sse", "transport": "sse"}, local(env={"T": {"env": "T"}})]
    ),
    st.dictionaries(
        st.sampled_from(_OPTIONS), st.one_of(_JSON, _TEXTS, _ENTRIES, st.lists(_TEXTS, max_size=3)), max_size=2
    ),
)
_GOOD_NAMES = st.sampled_from(["calc", "my-calc", "a1", "search"])
_NAMES = _GOOD_NAMES | st.sampled_from(["Calc", "a" * 33, "", "calc\n", "my_calc"]) | st.text(max_size=6)
_NEARLY = st.dictionaries(_GOOD_NAMES, _NEAR_VALID, min_size=1, max_size=3)
_UPSTREAMS = st.one_of(
    _NEARLY,
    _NEARLY.map(json.dumps),
    st.dictionaries(_NAMES, _NEAR_VALID | _TABLES, max_size=3),
    st.dictionaries(_NAMES, _TABLES, max_size=3).map(json.dumps),
    _JSON,
    st.text(max_size=20),
)


_HOST_CHARACTERS = st.sampled_from(
    [*"abcXYZ019.-_:[]%@", "\u3002", "\uff0e", "\uff61", "\u00fc", "\u0130", "\u200b", "\u00df", "K", "\u212a"]
)


@given(host=st.text(_HOST_CHARACTERS, min_size=1, max_size=12))
@settings(max_examples=300, deadline=None, database=None)
def test_an_accepted_url_names_the_host_every_client_reaches(host):
    """The host checked and pinned (urllib's reading) is the one httpx (the SDK's client) and
    yarl (aiohttp's) connect to: a URL any of them reads otherwise is refused."""
    import httpx2
    import yarl

    url = f"https://{host}:8443/mcp"
    try:
        (config,) = parse_upstreams({"calc": {"url": url}})
    except ValueError:
        return
    checked = urlsplit(config.url).hostname
    assert httpx2.URL(config.url).raw_host.decode("ascii").lower() == checked
    if ":" not in checked:  # an IPv6 literal is an address: nothing to resolve or pin
        assert yarl.URL(config.url).raw_host == checked


@given(value=_UPSTREAMS)
@settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
def test_parse_upstreams_answers_upstreams_or_a_value_error(value):
    try:
        found = parse_upstreams(value)
    except ValueError as exc:
        assert "\n" not in str(exc) and len(str(exc)) < 400
        return
    assert isinstance(found, tuple) and all(isinstance(c, UpstreamConfig) for c in found)
    for config in found:
        config.target()  # what a log line shows of it can be made
        assert parse_upstream(config.name, _as_table(config)) == config
    assert pickle.loads(pickle.dumps(found)) == found


def _as_table(config: UpstreamConfig) -> dict[str, Any]:
    """The table ``config`` was parsed from, as far as it matters."""
    table: dict[str, Any] = {
        "transport": config.transport,
        "enabled": config.enabled,
        "timeout": config.timeout,
        "connect_timeout": config.connect_timeout,
        "max_result_bytes": config.max_result_bytes,
        "tools": list(config.tools),
        "description": config.description,
    }

    def source(s: SecretSource) -> Any:
        if s.text is not None:
            return s.text
        return {"file": s.file, "prefix": s.prefix} if s.file is not None else {"env": s.env, "prefix": s.prefix}

    if config.transport == "stdio":
        table.update(command=config.command, args=list(config.args), cwd=config.cwd)
        table["env"] = {k: source(v) for k, v in config.env.items()}
    else:
        table.update(url=config.url, allow_private=config.allow_private)
        table["headers"] = {k: source(v) for k, v in config.headers.items()}
    return table


def test_keys_of_any_kind_are_answered_with_a_value_error():
    with pytest.raises(ValueError, match="upstream name '1' must be"):
        parse_upstreams({1: local(), "calc": local()})
    with pytest.raises(ValueError, match="upstream name 'None' must be"):
        parse_upstreams({None: local()})


def test_parsed_upstreams_pass_through():
    found = parse_upstreams({"calc": local()})
    assert parse_upstreams(found) is found
    with pytest.raises(ValueError, match="must be a table of upstreams"):
        parse_upstreams((1, 2))


def test_a_scope_map_naming_an_upstream_tool_is_not_reported_unknown():
    from skywarden.server.identity.service import unknown_mapped_tools
    from skywarden.server.upstreams import UpstreamConfig

    names = grantable_names(["get_alerts"], (UpstreamConfig("calc", "stdio", command="x"),), "__")
    mapped = {"ops": ("calc__add", "upstream:calc", "get_alerts", "nope__x", "*")}
    assert unknown_mapped_tools(mapped, names) == {"ops": ["nope__x"]}


@pytest.mark.parametrize(
    ("version", "page"),
    [
        ("2025-06-18", {}),
        ("2025-11-25", {"nextCursor": "2"}),
        ("2026-07-28", {"resultType": "complete", "ttlMs": 0, "cacheScope": "private"}),
    ],
)
def test_one_listed_tool_is_checked_as_the_revision_spoken_checks_a_page(version, page):
    from pydantic import ValidationError

    from skywarden.server.gateway.connection import _check_for_revision

    _check_for_revision(version, {**page, "tools": [listed()]})  # passes
    odd = listed(inputSchema={"type": "string"})
    with pytest.raises(ValidationError, match=r"tools\.0\.inputSchema\.type"):
        _check_for_revision(version, {**page, "tools": [odd]})
    _check_for_revision("1999-01-01", {"tools": ["not even a tool"]})  # unknown: not here


async def test_a_tool_listed_again_unchanged_is_not_compiled_again_and_a_changed_one_is(monkeypatch):
    from skywarden.server.gateway import connection
    from skywarden.server.plugins.ssrf import AddressPolicy

    compiled = []
    real = connection.registered_tool
    monkeypatch.setattr(connection, "registered_tool", lambda *args: compiled.append(args[2]["name"]) or real(*args))
    published = []
    upstream = connection.UpstreamConnection(
        CALC, "__", lambda config, tools: published.append([t.name for t in tools]), AddressPolicy()
    )
    one, true = ({"type": "object", "properties": {"k": {"const": value}}} for value in (1, True))
    bad = listed(name="bad", inputSchema={"type": "object", "properties": {"p": {"pattern": "["}}})
    await upstream._publish([listed(), listed(name="sub", inputSchema=one), bad])
    await upstream._publish([listed(), listed(name="sub", inputSchema=one, description="changed"), bad])
    await upstream._publish([listed(), listed(name="sub", inputSchema=one, description="changed"), bad])
    await upstream._publish(
        [listed(), listed(name="sub", inputSchema=true, description="changed"), bad]
    )  # 1 is no true
    assert compiled == ["add", "sub", "bad", "sub", "sub"]  # a refused tool listed again is not compiled again
    assert published == [["calc__add", "calc__sub"]] * 4


async def test_a_listing_gives_the_event_loop_its_turn_after_each_tool_it_compiles(monkeypatch):
    import asyncio

    from skywarden.server.gateway import connection
    from skywarden.server.plugins.ssrf import AddressPolicy

    seen: list[str] = []
    real = connection.registered_tool
    monkeypatch.setattr(connection, "registered_tool", lambda *args: seen.append(args[2]["name"]) or real(*args))
    upstream = connection.UpstreamConnection(
        CALC, "__", lambda config, tools: seen.append("published"), AddressPolicy()
    )

    async def other_work() -> None:
        while True:
            seen.append("turn")
            await asyncio.sleep(0)

    other = asyncio.create_task(other_work())
    await asyncio.sleep(0)
    await upstream._publish([listed(name="a"), listed(name="b"), listed(name="c")])
    other.cancel()
    assert [step for step in seen if step != "turn"] == ["a", "b", "c", "published"]
    assert "turn" in seen[seen.index("a") : seen.index("b")] and "turn" in seen[seen.index("b") : seen.index("c")]


async def test_one_listing_at_a_time_so_the_last_begun_is_the_last_published():
    import asyncio
    from types import SimpleNamespace

    from skywarden.server.gateway import connection
    from skywarden.server.plugins.ssrf import AddressPolicy

    running, most, gates = [0], [0], [asyncio.Event(), asyncio.Event()]
    listings = iter([[listed(description="older")], [listed(description="newer")]])

    class Tool(dict):
        def model_dump(self, **_: Any) -> dict:
            return dict(self)

    async def list_tools(cursor: Any = None, cache_mode: str = "") -> Any:
        tools = next(listings)
        running[0] += 1
        most[0] = max(most[0], running[0])
        await gates[1 if tools[0]["description"] == "older" else 0].wait()
        running[0] -= 1
        return SimpleNamespace(tools=[Tool(t) for t in tools], next_cursor=None)

    published = []
    upstream = connection.UpstreamConnection(
        CALC, "__", lambda config, tools: published.append(tools[0].description), AddressPolicy()
    )
    upstream._client = client = SimpleNamespace(list_tools=list_tools, protocol_version="2026-07-28")
    first = asyncio.create_task(upstream._relist(client))
    second = asyncio.create_task(upstream._relist(client))
    for _ in range(5):  # turns of the loop (no time passes): both tasks go as far as they can
        await asyncio.sleep(0)
    gates[0].set()  # the newer listing would end first, were both under way
    for _ in range(5):
        await asyncio.sleep(0)
    gates[1].set()
    await asyncio.gather(first, second)
    assert most == [1] and published == ["older", "newer"]


async def test_the_patterns_of_a_tool_and_of_a_listing_are_bounded_in_number(monkeypatch):
    from skywarden.server.gateway import connection
    from skywarden.server.gateway.schema_compile import MAX_TOOL_PATTERNS, pattern_count
    from skywarden.server.plugins.ssrf import AddressPolicy

    def patterned(count: int, name: str = "add") -> dict:
        properties = {f"p{i}": {"type": "string", "pattern": f"^a{{{i + 1}}}$"} for i in range(count)}
        return listed(name=name, inputSchema={"type": "object", "properties": properties})

    assert pattern_count({"patternProperties": {"^x": {}, "^y": {"pattern": "z"}}}, [{"pattern": "q"}]) == 4
    registered_tool(CALC, "__", patterned(MAX_TOOL_PATTERNS), no_forward)
    with pytest.raises(UnusableTool, match=f"^its schemas hold 257 patterns, more than {MAX_TOOL_PATTERNS}$"):
        registered_tool(CALC, "__", patterned(MAX_TOOL_PATTERNS + 1), no_forward)

    monkeypatch.setattr(connection, "MAX_LISTING_PATTERNS", 5)
    published = []
    upstream = connection.UpstreamConnection(
        CALC, "__", lambda config, tools: published.append([t.name for t in tools]), AddressPolicy()
    )
    await upstream._publish(
        [patterned(3, "first"), patterned(3, "second"), patterned(0, "plain"), patterned(2, "last")]
    )
    assert published == [["calc__first", "calc__plain", "calc__last"]]
    left_out = [e for e in drain_logs() if e.get("event") == "upstream tool left out" and e.get("tool") == "second"]
    assert left_out and left_out[-1]["reason"] == "its patterns would pass the bound of 5 for one upstream"
