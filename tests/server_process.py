"""Run ``skywarden serve`` as a real subprocess and wait for it to be up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sys
from dataclasses import dataclass, field
from pathlib import Path

SUBPROCESS_LINES: list[str] = []  # every line any server process printed, for the session-wide secret scan


_HANDED_OUT: set[int] = set()


def _ephemeral_start() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    """A port nothing listens on, for a server process to bind, from below the kernel's ephemeral
    range. A port from that range (what binding port 0 gives) can be taken by an outgoing
    connection before the server binds it; and a client connecting to such a port while nothing
    listens may connect to itself (TCP simultaneous open), which looks like a server answering
    garbage (an "SSL: WRONG_VERSION_NUMBER" from a balancer that never bound its port)."""
    top = _ephemeral_start()
    for _ in range(1000):
        port = random.randrange(max(1024, top - 16384), top)
        if port in _HANDED_OUT:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
        _HANDED_OUT.add(port)
        return port
    raise RuntimeError("no free port below the ephemeral range")


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    port: int
    lines: list[dict] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _reader: asyncio.Task | None = None
    _terminated: bool = False
    _waiters: dict[str, asyncio.Future] = field(default_factory=dict)

    async def wait_for_event(self, name: str, timeout: float = 30) -> dict:
        for event in self.lines:
            if event.get("event") == name:
                return event
        future = self._waiters.setdefault(name, asyncio.get_running_loop().create_future())
        return await asyncio.wait_for(future, timeout)

    async def wait_for_event_count(self, name: str, count: int, timeout: float = 30) -> None:
        """Until ``count`` lines of event ``name`` were printed."""

        async def enough() -> None:
            while sum(1 for e in self.lines if e.get("event") == name) < count:
                await self.wait_for_next_event(name)

        await asyncio.wait_for(enough(), timeout)

    async def wait_for_next_event(self, name: str) -> dict:
        future = self._waiters.setdefault(name, asyncio.get_running_loop().create_future())
        return await future

    async def wait_for_request(self, request_id: str) -> dict:
        """The audit event of the request with this X-Request-ID, once this server logged it."""
        while True:
            for event in self.lines:
                if event.get("event") == "request" and event.get("request_id") == request_id:
                    return event
            await self.wait_for_next_event("request")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read(self, started: asyncio.Future) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            text = line.decode(errors="replace").rstrip("\n")
            self.raw.append(text)
            SUBPROCESS_LINES.append(text)
            try:
                event = json.loads(text)
            except ValueError:
                continue
            self.lines.append(event)
            waiter = self._waiters.pop(event.get("event"), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(event)
            if event.get("event") == "skywarden started" and not started.done():
                started.set_result(True)
        if not started.done():
            started.set_exception(RuntimeError("server exited before starting:\n" + "\n".join(self.raw[-20:])))

    async def create_key(self, admin_token: str, **fields: object) -> str:
        """A new API key through the admin API of this server (callers add it to SECRETS)."""
        import aiohttp

        async with aiohttp.ClientSession() as http:
            async with http.post(
                self.url + "/api/admin/keys",
                json={"name": "test", **fields},
                headers={"Authorization": f"Bearer {admin_token}"},
            ) as resp:
                assert resp.status == 201, await resp.text()
                return (await resp.json())["key"]

    def terminate(self) -> None:
        if not self._terminated and self.proc.returncode is None:
            self._terminated = True
            self.proc.terminate()

    async def stop(self, timeout: float = 30) -> int:
        self.terminate()
        code = await asyncio.wait_for(self.proc.wait(), timeout)
        if self._reader:
            await self._reader
        return code


async def start_server(env: dict[str, str], *args: str, timeout: float = 30) -> ServerProcess:
    port = int(env.get("SKYWARDEN_PORT") or free_port())
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    full_env.update({"SKYWARDEN_PORT": str(port), "SKYWARDEN_LOG_FORMAT": "json"}, **env)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "skywarden.server.cli",
        "serve",
        *args,
        env=full_env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    server = ServerProcess(proc, port)
    started: asyncio.Future = asyncio.get_running_loop().create_future()
    server._reader = asyncio.create_task(server._read(started))
    try:
        await asyncio.wait_for(started, timeout)
    except BaseException:
        with contextlib.suppress(ProcessLookupError):  # it may have exited by itself
            proc.kill()
        raise
    return server
