"""The Host parser (``server/hosts.py``): exactly ``host[:port]``, nothing else a URL authority
may hold; the same parser for Origin, ``allowed_hosts`` and ``cors_origins``."""

from __future__ import annotations

import ipaddress
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skywarden.server.hosts import origin_host, parse_host
from skywarden.server.settings import SettingsError, load_settings
from tests.test_header_bytes import send

_label = st.text(string.ascii_letters + string.digits, min_size=1, max_size=20)
dns_names = st.lists(_label, min_size=1, max_size=4).map(".".join)
ipv4 = st.builds(lambda n: str(ipaddress.IPv4Address(n)), st.integers(0, 2**32 - 1))
ipv6 = st.builds(lambda n: str(ipaddress.IPv6Address(n)), st.integers(0, 2**128 - 1))
ports = st.one_of(st.none(), st.integers(1, 65535))


def _host(name: str, port: int | None, bracket: bool = False) -> str:
    shown = f"[{name}]" if bracket else name
    return shown if port is None else f"{shown}:{port}"


@given(name=st.one_of(dns_names, ipv4), port=ports)
def test_a_name_or_ipv4_address_and_a_port_parse_back(name, port):
    assert parse_host(_host(name, port)) == (name.lower(), port)
    assert parse_host(_host(name, port).upper()) == (name.lower(), port)


@given(address=ipv6, port=ports)
def test_an_ipv6_literal_parses_without_its_brackets(address, port):
    assert parse_host(_host(address, port, bracket=True)) == (address.lower(), port)
    assert parse_host(address) is None  # brackets required


@given(
    name=dns_names, port=ports, at=st.integers(0, 300), junk=st.sampled_from(list("@/?#\\ \t%,;[]<>\"'{}|^`!$&()*+=~"))
)
def test_any_character_outside_a_host_name_anywhere_is_refused(name, port, at, junk):
    text = _host(name, port)
    at = at % (len(text) + 1)
    assert parse_host(text[:at] + junk + text[at:]) is None


@given(name=dns_names, port=st.one_of(st.integers(65536, 10**8), st.just(0)))
def test_ports_outside_1_to_65535_are_refused(name, port):
    assert parse_host(f"{name}:{port}") is None


@given(text=st.text(max_size=80))
def test_any_text_gets_an_answer_and_what_parses_is_clean(text):
    parsed = parse_host(text)
    if parsed is not None:
        name, port = parsed
        assert name and name.isascii() and name == name.lower() and not name.endswith(".")
        assert port is None or 1 <= port <= 65535
        assert parse_host(_host(name, port, bracket=":" in name)) == parsed  # its own writing parses the same


@pytest.mark.parametrize(
    "value",
    [
        "x@127.0.0.1",
        "user:pass@localhost",
        "@localhost",
        "localhost/",
        "localhost/path",
        "localhost?x",
        "localhost#x",
        "local host",
        " localhost",
        "",
        ":8000",
        "localhost:",
        "localhost:0",
        "localhost:08000",
        "localhost:+80",
        "localhost:-1",
        "localhost:99999",
        "localhost:80:80",
        "::1",
        "[::1",
        "[::1]x",
        "[::1]:",
        "[127.0.0.1]",
        "[fe80::1%eth0]",
        "a..b",
        "-a.example",
        "a" * 64 + ".example",
        ".".join(["a" * 60] * 5),
        "\u212aocalhost",  # KELVIN SIGN lower-cases to an ASCII k
        "localhost\x00",
    ],
)
def test_not_host_port(value):
    assert parse_host(value) is None


def test_origins():
    assert origin_host("http://localhost:3000") == ("http", "localhost")
    assert origin_host("https://[::1]") == ("https", "::1")
    for value in ("null", "http://x@localhost", "http://localhost/", "ftp://localhost", "http:/localhost", "localhost"):
        assert origin_host(value) is None


# -- through HTTP: the class answers 400 at both doors, before anything else ------------------------


@pytest.mark.parametrize(
    "host", [b"x@127.0.0.1", b"127.0.0.1/x", b"127.0.0.1:0", b"127.0.0.1:99999", b"local host", b"", b"[::1"]
)
async def test_a_host_that_is_not_host_port_is_a_400_at_both_doors(client, host):
    for path, method in (("/api/mcp/tools", "GET"), ("/mcp", "POST"), ("/api/health", "GET")):
        body = b"{}" if method == "POST" else b""
        headers = [(b"Host", host), (b"X-API-Key", client.api_key.encode()), (b"Content-Length", b"%d" % len(body))]
        answer = await send(client.server.port, method, path, headers, body)
        assert answer.status == 400, (host, path, answer.body)
        if path == "/mcp":
            assert answer.json()["error"]["code"] == -32600 and "Host" in answer.json()["error"]["message"]
        else:
            assert answer.json()["type"].endswith("/invalid-header") and "host[:port]" in answer.json()["detail"]


async def test_an_http_1_1_request_without_host_is_a_400_and_1_0_is_judged_as_before(client):
    import asyncio

    for version, status in ((b"HTTP/1.1", b" 400 "), (b"HTTP/1.0", b" 403 ")):  # loopback server: no Host, no name
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(b"GET /api/health " + version + b"\r\nConnection: close\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer[8:13] == status, answer[:200]


async def test_an_origin_with_userinfo_or_a_path_is_not_a_loopback_origin(client):
    from tests.mcp_helpers import modern_headers, modern_rpc

    message = modern_rpc("tools/list")
    for origin in ("http://x@localhost", "http://localhost/x", "http://localhost:0", "http://localhost"):
        resp = await client.post("/mcp", json=message, headers={**modern_headers(message), "Origin": origin})
        assert resp.status == (200 if origin == "http://localhost" else 403), origin


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("allowed_hosts", "mcp.example.com:443"),
        ("allowed_hosts", "https://mcp.example.com"),
        ("allowed_hosts", "x@mcp.example.com"),
        ("allowed_hosts", "mcp.example.com/"),
        ("cors_origins", "http://x@localhost:3000"),
        ("cors_origins", "http://localhost:3000/app"),
        ("cors_origins", "http://localhost:0"),
    ],
)
def test_settings_that_name_hosts_use_the_same_parser(name, value):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={f"SKYWARDEN_{name.upper()}": value})
    assert f"SKYWARDEN_{name.upper()}" in str(info.value) and "\n" not in str(info.value)


def test_allowed_hosts_are_kept_as_the_check_compares_them():
    settings = load_settings(environ={"SKYWARDEN_ALLOWED_HOSTS": "MCP.Example.com., *, [::1]"})
    assert settings.allowed_hosts == ("mcp.example.com", "*", "::1")
