"""Checks against an upstream's schema that may be slow, in a process of their own, with a time
limit: ``python -m skywarden.server.gateway.schema_worker SERVER_PID``.

jsonschema-rs holds the GIL while it checks, so a check that takes seconds in the server's
process holds every request for as long; a thread would not help. The server sends a check here
when it is not bounded to be quick there (``schema_checks``: the bound from the schema, its
patterns, the first error against branches), waits for the answer without holding anything,
and kills the process when the check passes ``CHECK_SECONDS``: the call is refused, saying so,
and the next check starts a new process.

The exchange is one check at a time over the process's stdin and stdout, each part a 4-byte
big-endian length and that many bytes of JSON: the server sends the schema, then the value; the
process, which keeps the last 8 schemas compiled by their bytes, says ``{"compiled": true}``
once it has the schema compiled (the check's time limit runs from then), then answers
``{"valid": true}``, ``{"error": {...}}`` (the first error: where, the keyword, its message), or
``{"unusable": "..."}`` for a schema or value it cannot check.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import functools
import os
import resource
import signal
import struct
import sys
from typing import Any, BinaryIO

from skywarden.server.gateway.turns import Held, Turns
from skywarden.server.jsonutil import dumps, loads_exact

CHECK_SECONDS = 2.0  # the longest one check may take before the call is refused
START_SECONDS = 30.0  # the longest the process may take to start (not counted in a check's time)
COMPILE_SECONDS = 10.0  # the longest a schema new to the process may take to compile (nor is this)
WAIT_SECONDS = 10.0  # the longest a check waits for its turn before the call is refused
# Checks of all keys waiting: more are refused. Most checks take a fraction of a millisecond,
# so a burst of many keys' calls waits a few milliseconds; the wait itself is bounded by
# WAIT_SECONDS, and the values waiting are the calls' own, each in one of its key's slots.
MAX_WAITING = 1024
# Checks of one key waiting or under way: a check is made in a call, which holds one of the
# key's slots (``max_concurrent_calls``, which the gateway gives), so this is reached only when
# the slots outnumber it; a key never holds more than an eighth of those waiting.
MAX_PER_KEY = MAX_WAITING // 8
# The process's address space: its schemas' patterns keep up to about 4 MB each of what they
# learnt, and a value is held as JSON and as jsonschema-rs reads it.
MEMORY_BYTES = 2 * 1024**3
PR_SET_PDEATHSIG = 1
_LENGTH = struct.Struct(">I")
READY = {"ready": True}
COMPILED = {"compiled": True}


class CheckFailed(Exception):
    """The check was not made: it took too long, too many were waiting, or the process failed."""


class SchemaWorker:
    """The server's side: one process, started at the first check that needs it."""

    def __init__(
        self, seconds: float | None = None, max_waiting: int = MAX_WAITING, per_key: int = MAX_PER_KEY
    ) -> None:
        self.seconds = seconds if seconds is not None else CHECK_SECONDS
        self.max_waiting = max_waiting
        self.per_key = min(per_key, MAX_PER_KEY)
        self.started = 0  # processes started (a test counts them)
        self._process: asyncio.subprocess.Process | None = None
        self._turns = Turns()
        self._closing = asyncio.Event()

    async def first_error(
        self, schema: bytes, instance: bytes, key: str = "", estimate: float | None = None
    ) -> dict[str, Any] | None:
        """The first error of ``instance`` against ``schema`` (both JSON), or None when it is
        valid; ``key``: whose check it is (each key has ``per_key``); ``estimate``: the seconds
        it may take, by the schema's bound (None: unknown, counted as the time limit), which
        orders the checks waiting (``turns``). ``CheckFailed`` when it could not be checked;
        ``ValueError`` for a value the schema cannot check (no JSON it reads, a cycle)."""
        if self._closing.is_set():
            raise CheckFailed("the server is stopping")
        if self._turns.of(key) >= self.per_key:
            raise CheckFailed(f"this key already has {self.per_key} checks waiting")
        if self._turns.waiting >= self.max_waiting:
            raise CheckFailed(f"{self.max_waiting} checks are already waiting")
        expected = self.seconds if estimate is None else min(estimate, self.seconds)
        try:
            async with self._turns.take(key, WAIT_SECONDS, expected) as held:
                answer = await self._made(schema, instance, held)
        except TimeoutError:  # the turn's wait: the check's own time-out is CheckFailed
            raise CheckFailed(f"no turn came within {WAIT_SECONDS:g} s") from None
        if "unusable" in answer:
            raise ValueError(str(answer["unusable"])[:200])
        error = answer.get("error")
        return error if isinstance(error, dict) else None

    async def _made(self, schema: bytes, instance: bytes, held: Held) -> dict[str, Any]:
        """The worker's answer, the turn held. Any failure ends the process: an answer still to
        come would be taken for the next check's. A start of the process is not the check's
        key's doing (another key's check may have ended it): its time is ``excused``."""
        failed = "the checking process did not start"
        late = f"{failed} within {START_SECONDS:g} s"
        try:
            loop = asyncio.get_running_loop()
            starting = loop.time()
            process = await self._running()
            held.excused += loop.time() - starting
            failed, late = (
                "the checking process failed",
                f"the schema took longer than {COMPILE_SECONDS:g} s to compile",
            )
            async with asyncio.timeout(COMPILE_SECONDS):  # the schema read, compiled if new
                await _send(process, schema, instance)
                await _read_answer(process)
            late = f"the check took longer than {self.seconds:g} s"
            async with asyncio.timeout(self.seconds):
                return await _read_answer(process)
        except TimeoutError:
            await self._kill()
            raise CheckFailed(late) from None
        except (OSError, EOFError, asyncio.IncompleteReadError, ValueError) as exc:
            await self._kill()
            raise CheckFailed(f"{failed} ({type(exc).__name__})") from None
        except asyncio.CancelledError:
            self._kill_now()
            raise

    async def _running(self) -> asyncio.subprocess.Process:
        """The process, started when there is none (and ready: it says so once it has loaded)."""
        if self._closing.is_set():
            raise CheckFailed("the server is stopping")
        if self._process is None or self._process.returncode is not None:
            process = self._process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "skywarden.server.gateway.schema_worker",
                str(os.getpid()),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.DEVNULL,
            )
            self.started += 1
            assert process.stdout is not None
            async with asyncio.timeout(START_SECONDS):
                (size,) = _LENGTH.unpack(await process.stdout.readexactly(_LENGTH.size))
                if loads_exact(await process.stdout.readexactly(size)) != READY:
                    raise ValueError("the process did not start as expected")
            if self._closing.is_set():  # closed while it started
                await self._kill()
                raise CheckFailed("the server is stopping")
        return self._process

    def _kill_now(self) -> asyncio.subprocess.Process | None:
        process, self._process = self._process, None
        if process is not None and process.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        return process

    async def _kill(self) -> None:
        process = self._kill_now()
        if process is not None:
            await process.wait()

    async def aclose(self) -> None:
        self._closing.set()
        await self._kill()


async def _send(process: asyncio.subprocess.Process, schema: bytes, instance: bytes) -> None:
    assert process.stdin is not None
    process.stdin.writelines([_LENGTH.pack(len(schema)), schema, _LENGTH.pack(len(instance)), instance])
    await process.stdin.drain()


async def _read_answer(process: asyncio.subprocess.Process) -> dict[str, Any]:
    assert process.stdout is not None
    (size,) = _LENGTH.unpack(await process.stdout.readexactly(_LENGTH.size))
    answer = loads_exact(await process.stdout.readexactly(size))
    if not isinstance(answer, dict):
        raise ValueError("an answer that is no object")
    return answer


# --- the process ------------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)  # a tool's patterns may hold up to about 28 MB compiled
def _compiled(schema: bytes) -> Any:
    """The schema compiled as the server compiles it, or why not (a string)."""
    from skywarden.server.gateway.schema_compile import compile_schema

    try:
        return compile_schema(loads_exact(schema), "schema")
    except ValueError as exc:  # UnusableTool among them
        return str(exc)[:200]


def _answer(validator: Any, instance: bytes) -> dict[str, Any]:
    from skywarden.server.plugins.schema_errors import error_fields, first_error

    if isinstance(validator, str):
        return {"unusable": validator}
    try:
        error = first_error(validator, loads_exact(instance))
    except (ValueError, TypeError, RecursionError) as exc:
        return {"unusable": type(exc).__name__}
    if error is None:
        return {"valid": True}
    return {"error": error_fields(error)}


def _write(stream: BinaryIO, answer: dict[str, Any]) -> None:
    written = dumps(answer)
    stream.write(_LENGTH.pack(len(written)) + written)
    stream.flush()


def _read(stream: BinaryIO, size: int) -> bytes:
    data = stream.read(size)
    if len(data) != size:
        raise EOFError
    return data


def main(argv: list[str]) -> int:
    """Answer checks until stdin ends; die with the server (``PR_SET_PDEATHSIG``), even one
    killed, and at once if it is already gone."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    with contextlib.suppress(OSError, ValueError):  # past it, the process fails and the check with it
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, MEMORY_BYTES))
    if len(argv) > 1 and os.getppid() != int(argv[1]):
        return 0
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    import skywarden.server.gateway.schema_compile  # noqa: F401  (loaded before it says it is ready)

    _write(stdout, READY)
    while True:
        try:
            schema = _read(stdin, _LENGTH.unpack(_read(stdin, _LENGTH.size))[0])
            instance = _read(stdin, _LENGTH.unpack(_read(stdin, _LENGTH.size))[0])
        except EOFError:
            return 0
        validator = _compiled(schema)
        _write(stdout, COMPILED)  # the check's time runs from here
        _write(stdout, _answer(validator, instance))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
