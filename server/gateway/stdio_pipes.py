"""A stdio upstream's process and pipes, as a transport for the SDK's client.

The upstream (under the orphan guard) is started in a session of its own. Its output is read in
pieces and cut into lines, each at most ``limit`` bytes (a longer one is skipped as it arrives,
never held whole: the call it answers fails as too large). A line is parsed once: a direct
call's answer or progress goes to ``StdioCalls``; every other message is handed to the SDK's
session as the SDK's own transport would hand it (a ``SessionMessage``, or the parse error as a
value). The SDK's messages are written as lines, and so are the direct calls: the lines of one
turn of the event loop in one write (a write wakes the upstream, and under load many calls are
written at once).

Stopping follows the SDK's stdio transport and the MCP lifecycle: the input is closed; if the
process has not exited within ``EXIT_GRACE`` it is sent SIGTERM (the guard then ends the
upstream's group), and SIGKILL after ``KILL_GRACE`` more.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import structlog

from skywarden.server.gateway.direct import Backlogged
from skywarden.server.gateway.lines import bounded_lines
from skywarden.server.gateway.stdio_calls import StdioCalls
from skywarden.server.jsonutil import loads_exact

log = structlog.get_logger("skywarden.gateway")

EXIT_GRACE = 2.0  # seconds an upstream has to exit once its input is closed
KILL_GRACE = 2.0  # seconds after SIGTERM before SIGKILL
EXIT_SEEN = 0.5  # seconds an upstream whose output ended has to exit, for its status to be told
CHUNK = 64 * 1024
MAX_UNREAD = 8 * 1024 * 1024  # bytes of calls an upstream may leave unread before calls are refused


@contextlib.asynccontextmanager
async def stdio_pipes(
    command: str,
    args: list[str],
    env: dict[str, str],
    cwd: str | None,
    errlog: Any,
    calls: StdioCalls,
    limit: int,
    ended: Callable[[str | None], None],
) -> AsyncIterator[tuple[Any, Any]]:
    """The SDK's (read, write) streams over the upstream's pipes; ``ended`` when its output ends,
    with how the upstream ended if it did."""
    from mcp.shared.message import SessionMessage
    from mcp.types import jsonrpc_message_adapter

    process = await asyncio.create_subprocess_exec(
        command,
        *args,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=errlog,
        env=env,
        cwd=cwd,
        start_new_session=True,
    )
    assert process.stdin is not None and process.stdout is not None
    stdin, stdout = process.stdin, process.stdout
    to_session, read_stream = anyio.create_memory_object_stream[Any](0)
    write_stream, from_session = anyio.create_memory_object_stream[Any](0)

    waiting: list[bytes] = []  # lines written in this turn of the loop: one write for them all

    def flush() -> None:
        data = b"".join(waiting)
        waiting.clear()
        if data and not stdin.is_closing():
            stdin.write(data)

    def queue(line: bytes) -> None:
        if stdin.is_closing():
            raise OSError("the upstream's input is closed")
        if not waiting:
            asyncio.get_running_loop().call_soon(flush)
        waiting.append(line)

    def write(line: bytes) -> None:
        """A direct call's line (the SDK's wait for a full pipe; these cannot): refused once the
        upstream has left ``MAX_UNREAD`` bytes of its input unread."""
        unread = stdin.transport.get_write_buffer_size() + sum(map(len, waiting))
        if unread and unread + len(line) > MAX_UNREAD:  # a call alone is never refused for its size
            raise Backlogged(f"the upstream has not read {unread} bytes of its input")
        queue(line)

    async def deliver(line: bytes) -> None:
        try:
            message = loads_exact(line)
        except ValueError as exc:
            if calls.unreadable(line, f"an answer that cannot be read: {exc}"):
                return
            await to_session.send(ValueError(f"a line that is not JSON: {exc}"))
            return
        if calls.take(message, len(line)):
            return
        try:
            parsed = jsonrpc_message_adapter.validate_python(message, by_name=False)
        except ValueError as exc:
            await to_session.send(exc)
            return
        await to_session.send(SessionMessage(parsed))

    async def read() -> None:
        try:
            async for line in _lines(stdout, limit, calls):
                await deliver(line)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return  # the session is gone
        except (OSError, ValueError) as exc:
            log.warning("upstream output could not be read", error=f"{type(exc).__name__}: {exc}")
        finally:
            calls.write = None
            how = None
            try:
                how = await _exit_status(process)  # first: the connection is given up before its calls fail
            finally:
                calls.ended()
                ended(how)
                to_session.close()

    async def write_all() -> None:
        try:
            async for item in from_session:
                data = item.message.model_dump_json(by_alias=True, exclude_unset=True)
                queue(data.encode() + b"\n")
                flush()  # now, so the drain waits for it: the SDK's messages wait for a full pipe
                await stdin.drain()
        except (OSError, anyio.ClosedResourceError, anyio.BrokenResourceError):
            to_session.close()  # the session sees the connection end, not a request hanging

    calls.write = write
    reader = asyncio.create_task(read())
    writer = asyncio.create_task(write_all())
    try:
        yield read_stream, write_stream
    finally:
        calls.write = None
        with anyio.CancelScope(shield=True):
            write_stream.close()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(writer), 0.5)
            await _stop(process)
            for task in (reader, writer):
                task.cancel()
            await asyncio.gather(reader, writer, return_exceptions=True)
            read_stream.close()


async def _lines(stdout: asyncio.StreamReader, limit: int, calls: StdioCalls) -> AsyncIterator[bytes]:
    """The upstream's non-blank output lines, read in pieces; a line over ``limit`` bytes is
    skipped as it arrives (its start tells ``calls`` whose answer it was)."""

    async def chunks() -> AsyncIterator[bytes]:
        while chunk := await stdout.read(CHUNK):
            yield chunk

    def too_long(start: bytes, size: int) -> None:
        if not calls.too_long(start, size):
            log.warning("upstream line over the bound skipped", limit=limit)

    def skipped(start: bytes, end: bytes, size: int) -> None:  # an answer that names its call last
        calls.too_long(start, size, end)

    async for line in bounded_lines(chunks(), limit, too_long, skipped):
        if line.strip():
            yield line


async def _stop(process: asyncio.subprocess.Process) -> None:
    """Close the input; SIGTERM the process group if it has not exited ``EXIT_GRACE`` after that,
    SIGKILL after ``KILL_GRACE`` more. The signals are sent whatever closing the input raised."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + EXIT_GRACE
    try:
        if process.stdin is not None:
            await _close_input(process.stdin, EXIT_GRACE)
    finally:
        await _signal_until_exited(process, deadline - loop.time())


async def _signal_until_exited(process: asyncio.subprocess.Process, grace: float) -> None:
    for wait, signum in ((grace, signal.SIGTERM), (KILL_GRACE, signal.SIGKILL)):
        if await _exited(process, wait):
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signum)
    if not await _exited(process, KILL_GRACE):
        log.warning("upstream process still alive after SIGKILL; abandoned", pid=process.pid)


async def _close_input(stdin: asyncio.StreamWriter, within: float) -> None:
    """Close the upstream's input; what is still queued for one that does not read it within
    ``within`` seconds is dropped (only then: a closed transport cannot be aborted)."""
    stdin.close()
    try:
        await asyncio.wait_for(stdin.wait_closed(), within)
    except TimeoutError:
        stdin.transport.abort()
    except OSError:
        pass


async def _exit_status(process: asyncio.subprocess.Process) -> str | None:
    """How the upstream ended, when it did within ``EXIT_SEEN`` seconds of its output's end (the
    guard exits as its upstream did: a status, or 128 + the signal that ended it)."""
    if not await _exited(process, EXIT_SEEN):
        return None
    code = process.returncode
    if code is not None and code > 128 and (code - 128) in signal.valid_signals():
        return f"it was ended by {signal.Signals(code - 128).name}"
    return f"it exited with status {code}"


async def _exited(process: asyncio.subprocess.Process, within: float) -> bool:
    """Whether the process exited within ``within`` seconds (its return code, not its pipes: a
    child that inherited them would make an exited process look alive)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while process.returncode is None:
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(0.05)
    return True
