"""Run ``skywarden serve`` as a real subprocess and wait for it to be up."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import socket
import sys
from collections.abc import Callable, Sequence
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


class OutputEnded(AssertionError):
    """The process's output ended before the line waited for was printed."""


@dataclass
class ServerProcess:
    proc: asyncio.subprocess.Process
    port: int
    lines: list[dict] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    _reader: asyncio.Task | None = None
    _terminated: bool = False
    _ended: bool = False
    _printed: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def wait_for(self, match: Callable[[dict], bool], start: int = 0, timeout: float = 30) -> dict:
        """The first event from ``lines[start:]`` on that ``match`` holds for, printed already or yet to come.

        ``match`` sees each event once, in order. Every call waits on its own (the condition gives
        each waiter a future of its own), so a wait that was cancelled or timed out leaves nothing
        behind that a later wait could mistake for its answer. Raises ``OutputEnded`` when the
        process's output ends first."""

        async def found() -> dict:
            seen = start
            async with self._printed:
                while True:
                    for event in self.lines[seen:]:
                        if match(event):
                            return event
                    seen = max(seen, len(self.lines))
                    if self._ended:
                        raise OutputEnded(f"server on port {self.port} stopped printing before the line waited for")
                    await self._printed.wait()

        return await asyncio.wait_for(found(), timeout)

    async def wait_for_output(self, text: str, timeout: float = 30) -> str:
        """The first line (JSON or not, stdout or stderr) containing ``text``, printed already or yet to come."""

        async def found() -> str:
            async with self._printed:
                while True:
                    for line in self.raw:
                        if text in line:
                            return line
                    if self._ended:
                        raise OutputEnded(f"server on port {self.port} never printed {text!r}")
                    await self._printed.wait()

        return await asyncio.wait_for(found(), timeout)

    async def wait_for_event(self, name: str, timeout: float = 30) -> dict:
        """The first event ``name`` this server printed (or prints)."""
        return await self.wait_for(lambda e: e.get("event") == name, timeout=timeout)

    async def wait_for_next_event(self, name: str, timeout: float = 30) -> dict:
        """The next event ``name``, printed after this call."""
        return await self.wait_for(lambda e: e.get("event") == name, start=len(self.lines), timeout=timeout)

    async def wait_for_event_count(self, name: str, count: int, timeout: float = 30) -> None:
        """Until ``count`` lines of event ``name`` were printed."""
        seen = 0

        def enough(event: dict) -> bool:
            nonlocal seen
            seen += event.get("event") == name
            return seen >= count

        await self.wait_for(enough, timeout=timeout)

    async def wait_for_request(self, request_id: str, timeout: float = 30) -> dict:
        """The audit event of the request with this X-Request-ID, once this server logged it."""
        return await self.wait_for(
            lambda e: e.get("event") == "request" and e.get("request_id") == request_id, timeout=timeout
        )

    @property
    def output_ended(self) -> bool:
        return self._ended

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _read(self, started: asyncio.Future) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            text = line.decode(errors="replace").rstrip("\n")
            async with self._printed:
                self.raw.append(text)
                self._printed.notify_all()
            SUBPROCESS_LINES.append(text)
            try:
                event = json.loads(text)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            async with self._printed:
                self.lines.append(event)
                self._printed.notify_all()
            if event.get("event") == "skywarden started" and not started.done():
                started.set_result(True)
        async with self._printed:
            self._ended = True
            self._printed.notify_all()
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


async def which_logged(servers: Sequence[ServerProcess], request_id: str, timeout: float = 10) -> tuple[int, dict]:
    """(index, audit event) of the server that logged the request with this id: the first to print it.

    A server whose output has ended (stopped) is not asked. Each server's wait is its own and is
    cancelled once another answered, which leaves nothing behind for the next call."""

    async def logged(index: int) -> tuple[int, dict]:
        return index, await servers[index].wait_for_request(request_id, timeout)

    waits = [asyncio.create_task(logged(i)) for i, server in enumerate(servers) if not server.output_ended]
    try:
        for next_done in asyncio.as_completed(waits):
            try:
                return await next_done
            except OutputEnded:
                continue
            except TimeoutError:
                break
        raise AssertionError(f"no server logged request {request_id} within {timeout} s")
    finally:
        for wait in waits:
            wait.cancel()
        await asyncio.gather(*waits, return_exceptions=True)


async def start_server(env: dict[str, str], *args: str, timeout: float = 30, cwd: str | None = None) -> ServerProcess:
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
        cwd=cwd,
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
