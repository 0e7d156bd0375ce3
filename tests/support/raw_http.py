"""Raw HTTP/1.1 over a loopback socket, for tests that send bytes a client library would not."""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


def dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0], 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2 :]
    return out


def parse_answer(raw: bytes) -> Answer:
    """The final answer in ``raw`` (interim ``100 Continue`` answers skipped), its body dechunked."""
    while raw.startswith(b"HTTP/1.1 100 "):
        raw = raw.partition(b"\r\n\r\n")[2]
    head_bytes, _, payload = raw.partition(b"\r\n\r\n")
    lines = head_bytes.decode("latin-1").split("\r\n")
    fields = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        fields[name.strip().lower()] = value.strip()
    if fields.get("transfer-encoding") == "chunked":
        payload = dechunk(payload)
    return Answer(int(lines[0].split()[1]), fields, payload)


async def send(port: int, method: str, path: str, headers: list[tuple[bytes, bytes]], body: bytes = b"") -> Answer:
    """One request, written as given, on a connection of its own; the answer once the server closes."""
    head = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(k + b": " + v + b"\r\n" for k, v in headers)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(head + b"Connection: close\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), 30)  # until the server closes
    finally:
        writer.close()
    return parse_answer(raw)
