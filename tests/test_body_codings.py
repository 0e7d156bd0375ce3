"""Request bodies x Content-Encoding x framing, sent raw over a loopback socket.

Whatever the body, its coding and its framing, at the REST door, the MCP door and the admin
API: never a 5xx, an answer in the door's format (a parser refusal, which has no door yet, is
problem+json), exactly one audit event, no unhandled error. A body that is not what its
Content-Encoding says, or whose chunked framing breaks, is a 400 ``invalid-body``; a coding the
server cannot undo is a 415; a small compressed body that grows past ``max_body_bytes`` is a 413.
Each is sent whole, and split (head first, the body after the interim 100 Continue) so that the
failure comes while the handler is reading.
"""

from __future__ import annotations

import asyncio
import gzip
import json
import zlib
from dataclasses import dataclass

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import CAPTURED, SECRETS
from tests.support.mcp_helpers import ACCEPT_BOTH, MODERN, modern_rpc
from tests.support.raw_http import Answer, parse_answer

MAX_BODY = 64 * 1024


@dataclass(frozen=True)
class Door:
    name: str
    path: str
    credential: tuple[str, str]  # header, template
    body: bytes
    extra: tuple[tuple[str, str], ...] = ()

    @property
    def mcp(self) -> bool:
        return self.path == "/mcp"


_CALL = modern_rpc("tools/call", {"name": "get_alerts", "arguments": {"state": "CO"}}, id=9)
DOORS = [
    Door("REST", "/api/mcp/tools/get_alerts", ("X-API-Key", "{key}"), b'{"state": "CO"}'),
    Door(
        "MCP",
        "/mcp",
        ("X-API-Key", "{key}"),
        json.dumps(_CALL).encode(),
        (
            ("Accept", ACCEPT_BOTH),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "tools/call"),
            ("Mcp-Name", "get_alerts"),
        ),
    ),
    Door("admin", "/api/admin/keys", ("Authorization", f"Bearer {ADMIN_TOKEN}"), b'{"name": "from a coded body"}'),
]


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(wbits=-15)
    return packer.compress(data) + packer.flush()


def bodies(door: Door) -> dict[str, tuple[str, bytes]]:
    """name -> (what the coding claims, the bytes sent)."""
    plain = door.body
    zipped = gzip.compress(plain)
    return {
        "gzip, not gzip": ("gzip", b"notgzip"),
        "GZIP, not gzip": ("GZIP", b"notgzip"),
        "gzip, JSON as it is": ("gzip", plain),
        "gzip, a zlib stream": ("gzip", zlib.compress(plain)),
        "gzip, cut in the middle": ("gzip", zipped[: len(zipped) // 2]),
        "gzip, trailer cut": ("gzip", zipped[:-6]),
        "gzip, header only": ("gzip", zipped[:10]),
        "gzip, then garbage": ("gzip", zipped + b"\x00garbage"),
        "deflate, not deflate": ("deflate", b"notdeflate"),
        "Deflate, bytes 0xFF": ("Deflate", b"\xff" * 40),
        "deflate, gzip stream": ("deflate", zipped),
        "deflate, cut": ("deflate", zlib.compress(plain)[:-3]),
        "x-gzip": ("x-gzip", zipped),
        "compress": ("compress", plain),
        "br": ("br", b"\x0b\x02\x80hello\x03"),
        "zstd": ("zstd", b"(\xb5/\xfd"),
        "gzip twice": ("gzip, gzip", gzip.compress(zipped)),
        "gzip and identity": ("gzip, identity", zipped),
        "made up": ("snappy", plain),
    }


GOOD = {  # (what the coding claims, body) that the door takes as its plain body
    "identity": lambda plain: ("identity", plain),
    "gzip": lambda plain: ("gzip", gzip.compress(plain)),
    "deflate (zlib)": lambda plain: ("deflate", zlib.compress(plain)),
    "deflate (raw)": lambda plain: ("deflate", _raw_deflate(plain)),
}
UNSUPPORTED = {"x-gzip", "compress", "br", "zstd", "gzip, gzip", "gzip, identity", "snappy"}


@dataclass
class Target:
    port: int
    key: str
    normal: dict[str, int]  # each door's status for its plain body
    answers: list[Answer]


def _head(target: Target, door: Door, headers: list[tuple[str, str]], expect: bool) -> bytes:
    lines = [f"POST {door.path} HTTP/1.1", "Host: localhost", "Content-Type: application/json", "Connection: close"]
    lines.append(f"{door.credential[0]}: {door.credential[1].format(key=target.key)}")
    lines += [f"{k}: {v}" for k, v in door.extra]
    lines += [f"{k}: {v}" for k, v in headers]
    if expect:
        lines.append("Expect: 100-continue")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def send(target: Target, door: Door, coding: str | None, body: bytes, chunked: bool, split: bool) -> Answer:
    headers = [("Content-Encoding", part.strip()) for part in coding.split(";")] if coding else []
    if chunked:
        headers.append(("Transfer-Encoding", "chunked"))
        framed = b"".join(b"%x\r\n%s\r\n" % (len(body[i : i + 7]), body[i : i + 7]) for i in range(0, len(body), 7))
        body = framed + b"0\r\n\r\n"
    else:
        headers.append(("Content-Length", str(len(body))))
    reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
    try:
        writer.write(_head(target, door, headers, expect=split))
        raw = b""
        if split:
            raw = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        if raw.startswith(b"HTTP/1.1 100 ") or not split:
            writer.write(body)
            await writer.drain()
            raw = await asyncio.wait_for(reader.read(), 30)  # until the server closes
        else:
            raw += await asyncio.wait_for(reader.read(), 30)  # refused before the body was asked for
    finally:
        writer.close()
    answer = parse_answer(raw)
    target.answers.append(answer)
    return answer


def _check_format(door: Door, answer: Answer, where: str) -> dict:
    assert answer.status < 500, (where, answer.body[:300])
    if "x-request-id" not in answer.headers:  # refused by aiohttp's parser, before any door
        assert answer.headers["content-type"].startswith("application/problem+json"), where
        return json.loads(answer.body)
    if answer.status >= 400:
        if door.mcp:
            assert answer.headers["content-type"].startswith("application/json"), where
            error = json.loads(answer.body)
            assert error["jsonrpc"] == "2.0" and error["error"]["message"] and "result" not in error, where
            return error
        assert answer.headers["content-type"].startswith("application/problem+json"), where
        problem = json.loads(answer.body)
        assert problem["status"] == answer.status and problem["detail"], where
        return problem
    return {}


def _refused_as(door: Door, answer: Answer, status: int, slug: str, where: str) -> None:
    found = _check_format(door, answer, where)
    assert answer.status == status, (where, answer.body[:300])
    if "x-request-id" in answer.headers and not door.mcp:
        assert found["type"].endswith("/" + slug), where
    if "x-request-id" in answer.headers and door.mcp:
        assert found["error"]["code"] == -32600, where


def _events_since(start: int) -> list[dict]:
    from skywarden.server.observability.logging_setup import open_sinks

    for sink in open_sinks():
        sink.drain()
    found = []
    for line in CAPTURED.lines[start:]:
        try:
            found.append(json.loads(line))
        except ValueError:
            continue
    return found


def _check_one_audit_event_each(target: Target, start: int) -> None:
    events = _events_since(start)
    requests: dict[str, int] = {}
    for event in events:
        if event.get("event") == "request" and event.get("audit"):
            requests[event["request_id"]] = requests.get(event["request_id"], 0) + 1
    with_id = [a.headers["x-request-id"] for a in target.answers if "x-request-id" in a.headers]
    assert all(requests.get(rid) == 1 for rid in with_id), [rid for rid in with_id if requests.get(rid) != 1][:5]
    connection = [e for e in events if e.get("event") == "connection"]
    assert len(connection) == len(target.answers) - len(with_id)
    failures = [e for e in events if e.get("event") in ("unhandled error", "Unhandled exception")]
    assert not failures, failures[:1]


@pytest.fixture
async def target(make_client, make_settings) -> Target:
    client = await make_client(make_settings(rate_limit="", max_body_bytes=str(MAX_BODY)))
    SECRETS.add(client.api_key)
    found = Target(client.server.port, client.api_key, {}, [])
    for door in DOORS:
        found.normal[door.name] = (await send(found, door, None, door.body, chunked=False, split=False)).status
    assert found.normal == {"REST": 200, "MCP": 200, "admin": 201}
    found.answers.clear()
    return found


async def test_every_body_in_every_coding_and_framing_at_every_door(target):
    start = len(CAPTURED.lines)
    for door in DOORS:
        for name, (coding, body) in bodies(door).items():
            for chunked in (False, True):
                for split in (False, True):
                    where = f"{door.name} {name} chunked={chunked} split={split}"
                    answer = await send(target, door, coding, body, chunked, split)
                    if coding.lower() in UNSUPPORTED:
                        _refused_as(door, answer, 415, "unsupported-media-type", where)
                    else:
                        _check_format(door, answer, where)
                        assert answer.status in (200, 201, 400, 422), where
        for name, make in GOOD.items():
            coding, body = make(door.body)
            for chunked in (False, True):
                answer = await send(target, door, coding, body, chunked, split=chunked)
                assert answer.status == target.normal[door.name], (door.name, name, answer.body[:200])
    _check_one_audit_event_each(target, start)


async def test_a_body_not_in_its_coding_is_invalid_body_in_the_door_format(target):
    start = len(CAPTURED.lines)
    for door in DOORS:
        for coding, body in (("gzip", b"notgzip"), ("GZIP", b"\x1f\x8b\x08junk"), ("deflate", b"\xff" * 40)):
            for split in (False, True):
                answer = await send(target, door, coding, body, chunked=False, split=split)
                _refused_as(door, answer, 400, "invalid-body", f"{door.name} {coding} split={split}")
                if not door.mcp:
                    assert "not valid" in json.loads(answer.body)["detail"]
    _check_one_audit_event_each(target, start)


async def test_a_broken_chunked_framing_mid_body_is_invalid_body_at_once(target):
    """The head is answered 100 Continue, then the chunk sizes are wrong: the handler reading the
    body gets a 400 at once (not the 408 of body_timeout), and one audit event."""
    start = len(CAPTURED.lines)
    for door in DOORS:
        for framing in (b"zz\r\nabc\r\n0\r\n\r\n", b"3\r\nabcdef\r\n0\r\n\r\n", b"-1\r\nx\r\n", b"5;\x00\r\nabcde\r\n"):
            reader, writer = await asyncio.open_connection("127.0.0.1", target.port)
            headers = [("Transfer-Encoding", "chunked")]
            writer.write(_head(target, door, headers, expect=True))
            assert (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)).startswith(b"HTTP/1.1 100 ")
            writer.write(framing)
            answer = parse_answer(await asyncio.wait_for(reader.read(), 30))
            writer.close()
            target.answers.append(answer)
            _refused_as(door, answer, 400, "invalid-body", f"{door.name} {framing!r}")
    _check_one_audit_event_each(target, start)


async def test_a_compressed_body_is_held_to_max_body_bytes_once_decoded(target):
    start = len(CAPTURED.lines)
    for door in DOORS:
        inflated = door.body[:-1] + b" " * (MAX_BODY * 16) + b"}"  # 1 MiB of spaces: ~1 KiB compressed
        for coding, body in (("gzip", gzip.compress(inflated)), ("deflate", zlib.compress(inflated))):
            assert len(body) < MAX_BODY // 8
            for chunked in (False, True):
                answer = await send(target, door, coding, body, chunked, split=chunked)
                _refused_as(door, answer, 413, "payload-too-large", f"{door.name} {coding}")
        just_fits = door.body[:-1] + b" " * (MAX_BODY - len(door.body) - 1) + b"}"
        answer = await send(target, door, "gzip", gzip.compress(just_fits), chunked=False, split=False)
        assert answer.status == target.normal[door.name]
    _check_one_audit_event_each(target, start)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    door=st.sampled_from(DOORS),
    coding=st.sampled_from(["gzip", "deflate", "GZip", "identity", "compress", "br"]),
    body=st.binary(max_size=200).flatmap(lambda b: st.sampled_from([b, gzip.compress(b), zlib.compress(b)])),
    chunked=st.booleans(),
    split=st.booleans(),
)
async def test_any_bytes_in_any_coding(target, door, coding, body, chunked, split):
    answer = await send(target, door, coding, body, chunked, split)
    _check_format(door, answer, f"{door.name} {coding}")
    if coding.lower() in UNSUPPORTED:
        assert answer.status == 415
