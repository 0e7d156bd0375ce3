"""Every byte of every header the server reads, sent raw over a loopback socket.

aiohttp decodes header values from UTF-8 with ``surrogateescape`` and lets through any byte
from 0x80 to 0xFF (and HTAB); every other control byte is refused by its parser. Whatever
arrives, in whichever header, on whichever route: never a 5xx, an answer in the door's format
(JSON-RPC at /mcp, problem+json elsewhere; a parser refusal is problem+json at either), an
audit event for it, and a header the server reads refused by name when it is not ASCII. The
key path is tried cached (the key was used before) and uncached. A deterministic table of byte
classes covers every header at both doors; a small hypothesis run adds arbitrary bytes.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skywarden.server.appkeys import AUTHENTICATOR
from skywarden.server.errors import ApiError
from skywarden.server.http.headers import FORWARDED_HEADERS, READ_HEADERS, READ_UNGUARDED
from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS, drain_logs
from tests.support.mcp_helpers import ACCEPT_BOTH, MODERN, modern_rpc
from tests.support.raw_http import Answer, send

UNREAD_HEADERS = ("User-Agent", "Cookie", "Referer", "X-Junk")
ALL_HEADERS = READ_HEADERS + FORWARDED_HEADERS + UNREAD_HEADERS
BYTE_CLASSES = {
    "lone 0xE9": b"\xe9",
    "0x80": b"\x80",
    "0xFF": b"\xff",
    "encoded surrogate U+DCE9": b"\xed\xb3\xa9",
    "overlong slash": b"\xc0\xaf",
    "beyond U+10FFFF": b"\xf4\x90\x80\x80",
    "valid UTF-8 (e-acute, RTL override)": "\u00e9\u202e".encode(),
    "HTAB inside": b"\tx",
    "long ASCII": b"A" * 7000,
    "long 0xFF": b"\xff" * 7000,
}


@dataclass
class Route:
    name: str
    method: str
    path: str
    credential: tuple[str, str] | None  # (header, value template: {key} or {admin})
    body: bytes = b""
    extra: tuple[tuple[str, str], ...] = ()
    status: int = 200  # the answer without a fuzzed header

    @property
    def mcp(self) -> bool:
        return self.path == "/mcp"


_LIST = modern_rpc("tools/list", id=7)
ROUTES = [
    Route("REST", "GET", "/api/mcp/tools", ("X-API-Key", "{key}")),
    Route(
        "MCP",
        "POST",
        "/mcp",
        ("X-API-Key", "{key}"),
        json.dumps(_LIST).encode(),
        (
            ("Content-Type", "application/json"),
            ("Accept", ACCEPT_BOTH),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/list"),
        ),
    ),
    Route("admin", "GET", "/api/admin/keys", ("Authorization", "Bearer {admin}")),
    Route("metrics", "GET", "/metrics", ("Authorization", "Bearer {admin}")),
    Route("health", "GET", "/api/health", None),
    Route("docs", "GET", "/api/docs", None),
    Route("docs asset", "GET", "/api/docs/static/swagger-ui.css", None),
    Route("console", "GET", "/admin", None),
    Route("probe", "GET", "/.well-known/oauth-protected-resource", None, status=404),
    Route("no route", "GET", "/nope", ("X-API-Key", "{key}"), status=404),
]
DOORS = ROUTES[:2]

# A plausible value for each header, so that only the appended bytes are wrong.
BASE_VALUES = {
    "X-API-Key": "{key}",
    "Authorization": "Bearer {key}",
    "Host": "localhost",
    "Origin": "http://localhost",
    "Accept": ACCEPT_BOTH,
    "Content-Type": "application/json",
    "MCP-Protocol-Version": MODERN,
    "Mcp-Method": "tools/list",
    "Mcp-Name": "get_alerts",
    "X-Request-ID": "req-1",
    "X-Forwarded-For": "203.0.113.9",
    "X-Forwarded-Proto": "https",
    "Expect": "100-continue",
    "Connection": "keep-alive",
    "Accept-Encoding": "gzip",
    "Range": "bytes=0-10",
    "Cookie": "theirs=1",
}


@dataclass
class Target:
    port: int
    key: str
    app: object
    baseline: dict[str, int]
    request_ids: dict[str, int]
    parser_refusals: int = 0


@pytest.fixture
async def target(make_client, make_settings) -> Target:
    client = await make_client(
        make_settings(trusted_proxies="127.0.0.1", rate_limit="", unauthenticated_limit="", auth_failure_limit="")
    )
    SECRETS.add(client.api_key)
    found = Target(client.server.port, client.api_key, client.server.app, {}, {})
    for route in ROUTES:  # every route answers without a fuzzed header; this also caches the key
        found.baseline[route.name] = (await _send(found, route, None, b"", cached=True)).status
        assert found.baseline[route.name] == route.status, route.name
    return found


def _fill(template: str, target: Target) -> str:
    return template.format(key=target.key, admin=ADMIN_TOKEN)


async def _send(target: Target, route: Route, header: str | None, extra: bytes, cached: bool) -> Answer:
    headers: dict[str, bytes] = {"Host": b"localhost"}
    if route.credential is not None:
        headers[route.credential[0]] = _fill(route.credential[1], target).encode()
    for name, value in route.extra:
        headers[name] = value.encode()
    if route.body:
        headers["Content-Length"] = str(len(route.body)).encode()
    if header is not None:
        if header == "Authorization" and route.credential and route.credential[0] == "X-API-Key":
            del headers["X-API-Key"]  # the key moves to Authorization: Bearer
        base = headers.get(header) or _fill(BASE_VALUES.get(header, "x"), target).encode()
        headers[header] = base + extra
    if not cached:
        target.app[AUTHENTICATOR].forget_all()
    return await send(
        target.port, route.method, route.path, list((k.encode(), v) for k, v in headers.items()), route.body
    )


def _check(target: Target, route: Route, header: str | None, extra: bytes, answer: Answer) -> None:
    where = f"{route.name} {header} {extra[:12]!r}"
    assert answer.status < 500, (where, answer.body[:300])
    request_id = answer.headers.get("x-request-id")
    if request_id is None:  # refused by aiohttp's parser, before the request path
        assert 400 <= answer.status < 500 and answer.headers["content-type"].startswith("application/problem+json")
        target.parser_refusals += 1
        return
    target.request_ids[request_id] = answer.status
    if answer.status >= 400:
        if route.mcp:
            assert answer.headers["content-type"].startswith("application/json"), where
            error = answer.json()
            assert error["jsonrpc"] == "2.0" and error["error"]["message"] and "result" not in error, where
        else:
            kind = answer.headers.get("content-type", "")
            assert kind.startswith("application/problem+json"), (where, answer.status)
            assert answer.json()["status"] == answer.status, where
    if header in UNREAD_HEADERS or header is None:
        assert answer.status == target.baseline[route.name], where
    elif not extra.isascii():
        assert answer.status == 400, where
        message = answer.json()["error"]["message"] if route.mcp else answer.json()["detail"]
        assert f"The {header} header" in message, where


def _check_audit(target: Target, connection_events_before: int) -> None:
    events = drain_logs()
    audited = {e["request_id"]: e["status"] for e in events if e.get("audit") and e.get("event") == "request"}
    missing = {rid: status for rid, status in target.request_ids.items() if audited.get(rid) != status}
    assert not missing, list(missing.items())[:5]
    connection = [e for e in events if e.get("event") == "connection" and e.get("reason", "").startswith("http_parser")]
    assert len(connection) - connection_events_before >= target.parser_refusals
    assert not [e for e in events if e.get("event") == "unhandled error" and e.get("request_id") in target.request_ids]


def _parser_events() -> int:
    return sum(1 for e in drain_logs() if e.get("event") == "connection" and e.get("reason", "").startswith("http_"))


async def test_every_byte_class_in_every_header_at_both_doors_cached_and_uncached(target):
    before = _parser_events()
    for index, header in enumerate(ALL_HEADERS):
        for route in DOORS:
            for extra in BYTE_CLASSES.values():
                # credentials both ways; every other header alternates, so each way meets every class
                for cached in (True, False) if header in ("X-API-Key", "Authorization") else (index % 2 == 0,):
                    _check(target, route, header, extra, await _send(target, route, header, extra, cached))
    _check_audit(target, before)


async def test_every_header_on_every_route(target):
    """Every header on every route with one byte class each (a different one per route), and
    every byte class in the credential and Host headers of every route."""
    before = _parser_events()
    classes = list(BYTE_CLASSES.values())
    for r, route in enumerate(ROUTES[2:]):
        for h, header in enumerate(ALL_HEADERS):
            extra = classes[(h + r) % len(classes)]
            _check(target, route, header, extra, await _send(target, route, header, extra, cached=h % 2 == 0))
        for header in ("X-API-Key", "Authorization", "Host"):
            for extra in classes[:7]:
                _check(target, route, header, extra, await _send(target, route, header, extra, cached=False))
    _check_audit(target, before)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    route=st.sampled_from(ROUTES),
    header=st.sampled_from(READ_HEADERS + FORWARDED_HEADERS),
    extra=st.binary(min_size=1, max_size=64).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"") or b"\x80"),
    cached=st.booleans(),
)
async def test_any_bytes_in_a_header_the_server_reads(target, route, header, extra, cached):
    answer = await _send(target, route, header, extra, cached)
    assert answer.status < 500, answer.body[:300]
    if "x-request-id" in answer.headers and answer.status >= 400:
        expected = "application/json" if route.mcp else "application/problem+json"
        assert answer.headers["content-type"].startswith(expected)
        if not extra.isascii():
            assert answer.status == 400


async def test_an_unmet_expectation_is_refused_in_the_door_format(target):
    """aiohttp answers ``Expect`` itself, before any middleware; here it reaches the request path."""
    for route in (ROUTES[0], ROUTES[1], ROUTES[4], ROUTES[-1]):
        for expectation in ([b"nothing-we-know"], [b"100-continue-please"], [b""], [b"100-continue", b"and-more"]):
            headers = [(b"Host", b"localhost"), *((b"Expect", value) for value in expectation)]
            if route.credential is not None:
                headers.append((route.credential[0].encode(), _fill(route.credential[1], target).encode()))
            headers += [(k.encode(), v.encode()) for k, v in route.extra]
            if route.body:
                headers.append((b"Content-Length", str(len(route.body)).encode()))
            answer = await send(target.port, route.method, route.path, headers, route.body)
            assert answer.status == 417, (route.name, expectation, answer.body)
            if route.mcp:
                assert answer.json()["error"]["code"] == -32600
            else:
                assert answer.json()["type"].endswith("/expectation-failed")
    continued = await _send(target, ROUTES[1], "Expect", b"", cached=True)  # Expect: 100-continue
    assert continued.status == 200


def test_a_header_is_refused_by_name_without_echoing_it():
    from skywarden.server.http.headers import header_text_check

    class Fake:
        raw_headers = ((b"X-Api-KEY", b"skw_live_secret\xe9"),)
        headers: dict[str, str] = {}

    with pytest.raises(ApiError) as info:
        header_text_check(False)(Fake())
    assert "X-API-Key" in info.value.detail and "secret" not in info.value.detail
    Fake.raw_headers = ((b"X-Forwarded-For", b"\xe9"), (b"User-Agent", b"caf\xc3\xa9"))
    header_text_check(False)(Fake())  # not read without trusted proxies, and never User-Agent


# -- the list of headers the server reads is the code's ----------------------------------------------

SERVER = Path(__file__).resolve().parents[1] / "server"
_NAME = r"([\w.]+|\"[^\"]*\"|'[^']*')"


def _constants() -> dict[str, str]:
    """Header-name constants the server's code passes around (``p.SESSION_HEADER``, ``hdrs.ORIGIN``)."""
    from aiohttp import hdrs

    from skywarden.server.mcp import protocol

    found = {f"hdrs.{n}": str(v) for n, v in vars(hdrs).items() if n.isupper() and isinstance(v, str)}
    found.update({f"p.{n}": v for n, v in vars(protocol).items() if n.endswith("_HEADER") and isinstance(v, str)})
    return found


def _reads(text: str) -> list[tuple[str, int]]:
    """(name expression, line) of every request header read in a module's source."""
    objects = ["request.headers"] + (["headers"] if re.search(r"\bheaders = request\.headers\b", text) else [])
    found = []
    for obj in objects:
        for pattern in (
            rf"(?<![\w.]){re.escape(obj)}\.(?:get|getall|getone)\(\s*{_NAME}",
            rf"(?<![\w.]){re.escape(obj)}\[\s*{_NAME}\s*\]",
            rf"{_NAME}\s+(?:not\s+)?in\s+{re.escape(obj)}(?![\w.])",
            rf"\b_one\(request,\s*{_NAME}",
        ):
            found += [(m[1], text.count("\n", 0, m.start()) + 1) for m in re.finditer(pattern, text)]
    return found


def test_every_header_the_code_reads_is_guarded():
    constants = _constants()
    guarded = {h.lower() for h in READ_HEADERS + FORWARDED_HEADERS + READ_UNGUARDED}
    read: dict[str, str] = {}
    for path in SERVER.rglob("*.py"):
        for expression, line in _reads(path.read_text()):
            try:
                name = ast.literal_eval(expression)
            except (ValueError, SyntaxError):
                name = constants.get(expression, expression)
            read[name] = f"{path.relative_to(SERVER)}:{line}"
    # names handed over in a variable; the names handed over are literals or constants found above
    indirect = {"header", "name"}
    unknown = {n: where for n, where in read.items() if n.lower() not in guarded and n not in indirect}
    assert not unknown, f"read but not in READ_HEADERS: {unknown}"
    expected = {"x-api-key", "authorization", "host", "origin", "x-request-id", "accept", "x-forwarded-for"}
    assert expected | {"mcp-session-id", "mcp-protocol-version", "mcp-method", "mcp-name"} <= {n.lower() for n in read}


# -- headers too large for the parser ------------------------------------------------------------


@pytest.mark.parametrize("route", [ROUTES[0], ROUTES[1], ROUTES[2], ROUTES[5], ROUTES[-1]], ids=lambda r: r.name)
async def test_an_over_long_header_or_too_many_headers_is_431(target, route):
    """Refused by aiohttp's parser before any door: problem+json ``headers-too-large`` (not a
    plain 400), audited, at any header (read or not, name or value) on any route."""
    before = _parser_events()
    from skywarden.server.http.connections import MAX_HEADER_FIELD_BYTES

    base = [(b"Host", b"localhost"), *((k.encode(), v.encode()) for k, v in route.extra)]
    if route.credential is not None:
        base.append((route.credential[0].encode(), _fill(route.credential[1], target).encode()))
    if route.body:
        base.append((b"Content-Length", str(len(route.body)).encode()))
    too_long = b"a" * (MAX_HEADER_FIELD_BYTES + 1)
    cases = [
        [(b"X-Junk", too_long)],
        [(b"X-API-Key", b"skw_live_" + too_long)],
        [(b"Cookie", too_long)],
        [(b"X-" + too_long, b"1")],
        [(b"X-Many-%d" % i, b"1") for i in range(400)],
    ]
    for extra in cases:
        answer = await send(target.port, route.method, route.path, base + extra, route.body)
        assert answer.status == 431 and answer.headers["content-type"].startswith("application/problem+json")
        assert answer.json()["type"].endswith("/headers-too-large") and "x-request-id" not in answer.headers
    assert _parser_events() - before == len(cases)
    just_fits = [(b"X-Junk", b"a" * (MAX_HEADER_FIELD_BYTES - len("X-Junk")))]
    assert (await send(target.port, route.method, route.path, base + just_fits, route.body)).status == route.status


async def test_an_over_long_request_line_stays_a_400(target):
    answer = await send(target.port, "GET", "/api/health?" + "a" * 9000, [(b"Host", b"localhost")])
    assert answer.status == 400 and answer.json()["type"].endswith("/bad-request")
