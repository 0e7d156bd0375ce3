"""The Host parser (``server/hosts.py``): exactly ``host[:port]``, nothing else a URL authority
may hold; the same parser for Origin, ``allowed_hosts`` and ``cors_origins``."""

from __future__ import annotations

import ipaddress
import json
import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skywarden.server.errors import ApiError
from skywarden.server.hosts import DEFAULT_PORTS, origin_host, parse_host
from skywarden.server.settings import SettingsError, load_settings
from tests.support.logs import drain_logs
from tests.support.raw_http import send

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
    from tests.support.mcp_helpers import modern_headers, modern_rpc

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


# -- a request target in absolute form names the Host's host, with no userinfo (RFC 9112 3.2.2) ----

REFUSED_TARGETS = [
    "http://evil.com{path}",
    "http://x@localhost{path}",
    "http://localhost@evil.com{path}",
    "http://evil.com:80@localhost{path}",
    "http://:@localhost{path}",
    "http://127.0.0.1{path}",  # loopback too, but not the Host's name
    "http://[::1]{path}",
    "http://localhost:8080{path}",
    "https://localhost:80{path}",  # a Host without a port is 443 for https
    "http://local%68ost{path}",
    "http://localhost:0{path}",
    "http://localhost:080{path}",
    "ftp://localhost{path}",
    "ws://localhost{path}",
]
ACCEPTED_TARGETS = [
    "http://localhost{path}",
    "http://LOCALHOST{path}",
    "HTTP://localhost{path}",
    "http://localhost.{path}",
    "http://localhost:80{path}",
    "https://localhost:443{path}",
]


async def _through_both_doors(client, target_template: str, host: bytes = b"localhost"):
    from tests.support.mcp_helpers import modern_headers, modern_rpc

    message = modern_rpc("tools/list", id=5)
    body = json.dumps(message).encode()
    rest = [(b"Host", host), (b"X-API-Key", client.api_key.encode())]
    mcp = rest + [(k.encode(), v.encode()) for k, v in modern_headers(message).items()]
    mcp += [(b"Content-Type", b"application/json"), (b"Content-Length", b"%d" % len(body))]
    return (
        await send(client.server.port, "GET", target_template.format(path="/api/mcp/tools"), rest),
        await send(client.server.port, "POST", target_template.format(path="/mcp"), mcp, body),
        await send(client.server.port, "GET", target_template.format(path="/api/health"), rest[:1]),
    )


@pytest.mark.parametrize("target", REFUSED_TARGETS)
async def test_an_absolute_target_naming_another_host_or_userinfo_is_a_400_at_both_doors(client, target):
    rest, mcp, public = await _through_both_doors(client, target)
    for answer in (rest, public):
        assert answer.status == 400 and answer.json()["type"].endswith("/invalid-request-target"), answer.body
        assert "evil" not in answer.json()["detail"]
    assert (
        mcp.status == 400
        and mcp.json()["error"]["code"] == -32600
        and "request target" in mcp.json()["error"]["message"]
    )
    audited = [e for e in drain_logs() if e.get("request_id") == rest.headers["x-request-id"] and e.get("audit")]
    assert audited[0]["reason"] == "request_target"


@pytest.mark.parametrize("target", ACCEPTED_TARGETS)
async def test_an_absolute_target_naming_the_hosts_host_is_served(client, target):
    assert [a.status for a in await _through_both_doors(client, target)] == [200, 200, 200]


async def test_an_absolute_target_is_judged_with_the_host_header_port(client):
    port = client.server.port
    rest, mcp, _ = await _through_both_doors(client, f"http://127.0.0.1:{port}{{path}}", f"127.0.0.1:{port}".encode())
    assert (rest.status, mcp.status) == (200, 200)
    rest, mcp, _ = await _through_both_doors(client, f"http://127.0.0.1:{port}{{path}}", b"127.0.0.1")
    assert (rest.status, mcp.status) == (400, 400)


@given(
    target=st.tuples(st.sampled_from(["http", "https"]), st.one_of(dns_names, ipv4), ports),
    header=st.tuples(st.one_of(dns_names, ipv4), ports),
)
def test_a_target_and_a_host_agree_exactly_when_they_name_one_host_and_port(target, header):
    from skywarden.server.http.host_origin import check_target

    scheme, name, port = target
    same = name.lower() == header[0].lower() and (port or DEFAULT_PORTS[scheme]) == (header[1] or DEFAULT_PORTS[scheme])
    try:
        check_target(f"{scheme}://{_host(name, port)}/api/health", _host(*header))
    except ApiError:
        assert not same
    else:
        assert same


async def test_an_absolute_target_without_a_host_header_is_judged_as_the_host(client):
    import asyncio

    for target, status in ((b"http://localhost/api/health", b" 200 "), (b"http://evil.com/api/health", b" 403 ")):
        reader, writer = await asyncio.open_connection("127.0.0.1", client.server.port)
        writer.write(b"GET " + target + b" HTTP/1.0\r\n\r\n")
        answer = await reader.read()
        writer.close()
        assert answer[8:13] == status, answer[:200]


# -- cors_origins: kept as browsers send origins, compared as origins ------------------------------


def test_cors_origins_are_kept_normal():
    settings = load_settings(
        environ={
            "SKYWARDEN_CORS_ORIGINS": "https://App.example.com, HTTPS://app.example.com:443, http://[::1]:80, "
            "http://Dev.Example.com:8080"
        }
    )
    assert settings.cors_origins == ("https://app.example.com", "http://[::1]", "http://dev.example.com:8080")


async def test_an_origin_written_otherwise_in_cors_origins_is_allowed(make_client, make_settings):
    from tests.support.mcp_helpers import modern_headers, modern_rpc

    client = await make_client(make_settings(cors_origins="https://App.Example.com:443"))
    message = modern_rpc("tools/list")
    for origin, status in (
        ("https://app.example.com", 200),
        ("https://app.example.com:443", 200),
        ("https://app.example.com:8443", 403),
        ("http://app.example.com", 403),
    ):
        resp = await client.post("/mcp", json=message, headers={**modern_headers(message), "Origin": origin})
        assert resp.status == status, origin
    preflight = await client.anonymous.options(
        "/mcp", headers={"Origin": "https://app.example.com", "Access-Control-Request-Method": "POST"}
    )
    assert preflight.headers.get("Access-Control-Allow-Origin") == "https://app.example.com"
