"""One upstream's connection: started, watched, restarted with backoff, stopped cleanly.

A supervisor task holds the SDK client (its task groups live in that task). It connects within
``connect_timeout``, lists the tools (every page) and publishes them, then watches: the
connection is given up when its transport fails (the SDK's task group ends it), when a ping
goes unanswered, or when calls fail ``BREAK_AFTER`` times in a row (time-outs included). It is then
down: calls answer at once with a tool error saying when the next attempt is, and the supervisor
reconnects after a backoff that doubles from ``FIRST_BACKOFF`` to ``MAX_BACKOFF``. A stdio server
is started again; its tools stay listed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from skywarden.server.gateway.credentials import MissingSecret
from skywarden.server.gateway.tools import UnusableTool, bounded_result, error_result, registered_tool
from skywarden.server.gateway.transports import CALLER_META, BlockedUpstream, check_address, client_for
from skywarden.server.plugins.model import RegisteredTool
from skywarden.server.plugins.ssrf import AddressPolicy
from skywarden.server.upstreams import UpstreamConfig
from skywarden.tools.contract import ToolResult

log = structlog.get_logger("skywarden.gateway")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
BREAK_AFTER = 3  # failed calls in a row that end a connection (the upstream is restarted)
PING_INTERVAL = 15.0
LEGACY_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
MAX_PAGES = 100  # tools/list pages read at most
MAX_TOOLS = 1000  # tools offered per upstream at most
MAX_STDERR_LINES = 1000
MAX_STDERR_LINE = 500
MAX_ERROR_TEXT = 300
CONNECTION_CLOSED = -32000  # the SDK's code (mcp.types.CONNECTION_CLOSED), with its message "Connection closed"

Publish = Callable[[UpstreamConfig, list[RegisteredTool]], None]


@dataclass
class UpstreamFigures:
    """What readiness, metrics and the console show of an upstream."""

    state: str = "starting"  # starting, up, down
    connects: int = 0
    restarts: int = 0  # connections lost (or failed) after the first attempt
    calls: int = 0
    errors: int = 0  # calls that ended in a tool error of Skywarden's: unavailable, time-out, transport
    latency_sum: float = 0.0  # seconds, of answered calls
    tools: int = 0
    last_error: str = ""


async def _log_lines(reader: asyncio.StreamReader, bound: Any) -> None:
    """A stdio upstream's stderr, line by line into the log (redacted like every line), at most
    ``MAX_STDERR_LINES`` lines of ``MAX_STDERR_LINE`` characters per connection."""
    logged = 0
    while line := await reader.readline():
        if logged < MAX_STDERR_LINES:
            bound.info("upstream stderr", line=line.decode(errors="replace").rstrip()[:MAX_STDERR_LINE])
        elif logged == MAX_STDERR_LINES:
            bound.warning("upstream stderr: further lines dropped", limit=MAX_STDERR_LINES)
        logged += 1


async def _stderr_pipe(stack: contextlib.AsyncExitStack, bound: Any) -> Any:
    """A file the child writes its stderr to, read into the log until it closes."""
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader(limit=64 * 1024)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    task = asyncio.create_task(_drain(reader, bound))
    writer = os.fdopen(write_fd, "w")

    async def close() -> None:
        writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 1.0)
        task.cancel()
        transport.close()

    stack.push_async_callback(close)
    return writer


async def _drain(reader: asyncio.StreamReader, bound: Any) -> None:
    with contextlib.suppress(ValueError, OSError, asyncio.LimitOverrunError):
        await _log_lines(reader, bound)


class UpstreamConnection:
    def __init__(self, config: UpstreamConfig, separator: str, publish: Publish, policy: AddressPolicy) -> None:
        self.config = config
        self.separator = separator
        self.publish = publish
        self.policy = policy
        self.figures = UpstreamFigures()
        self._state_changed = asyncio.Event()  # set (and replaced) at every change of state
        self.first_attempt = asyncio.Event()
        self._client: Any = None
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._refresh: asyncio.Task[None] | None = None
        self._listed: list[dict[str, Any]] = []
        self.log = log.bind(upstream=config.name)

    @property
    def name(self) -> str:
        return self.config.name

    def _set_state(self, state: str) -> None:
        self.figures.state = state
        changed, self._state_changed = self._state_changed, asyncio.Event()
        changed.set()

    async def wait_for(self, state: str, connects: int = 0) -> None:
        """Until the upstream is in ``state`` (with at least ``connects`` connections made)."""
        while not (self.figures.state == state and self.figures.connects >= connects):
            await self._state_changed.wait()

    def start(self) -> None:
        self._task = asyncio.create_task(self._supervise(), name=f"upstream {self.name}")

    async def stop(self) -> None:
        self._stopping.set()
        self._lost.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), self.config.connect_timeout)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task

    async def _supervise(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            self._lost = asyncio.Event()
            try:
                await self._connected_session()
                backoff = FIRST_BACKOFF
            except asyncio.CancelledError:
                if self._stopping.is_set():
                    raise
                self._note_failure("the connection was cancelled")
            except BaseException as exc:  # the SDK's task groups end in an ExceptionGroup
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self._note_failure(_describe(exc))
            finally:
                self._client = None
                self.first_attempt.set()
            if self._stopping.is_set():
                break
            self._set_state("down")
            self.figures.restarts += 1
            self._retry_at = time.monotonic() + backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _connected_session(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            async with asyncio.timeout(self.config.connect_timeout):
                if self.config.transport == "stdio":
                    errlog = await _stderr_pipe(stack, self.log)
                else:
                    errlog = None
                    await check_address(self.config, self.policy)
                client, http = client_for(self.config, self._on_message, errlog)
                if http is not None:
                    stack.push_async_callback(http.aclose)
                client = await stack.enter_async_context(client)
                tools = await self._list_tools(client)
            self._client = client
            self._failures_in_a_row = 0
            self.figures.connects += 1
            self._set_state("up")
            self.figures.last_error = ""
            self._publish(tools)
            self.log.info("upstream connected", tools=len(tools), transport=self.config.transport)
            self.first_attempt.set()
            listening = asyncio.create_task(self._listen(client))
            try:
                await self._watch(client)
            finally:
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listening

    async def _watch(self, client: Any) -> None:
        """Until the connection is given up: every ``PING_INTERVAL`` the tools are listed again
        (``ping`` is gone from 2026-07-28; a listing works in both eras and catches a change the
        upstream did not announce)."""
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), PING_INTERVAL)
                return
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    tools = await self._list_tools(client)
            except Exception as exc:
                self._note_failure(f"no answer to tools/list: {_describe(exc)}")
                return
            if tools != self._listed:
                self._publish(tools)

    async def _listen(self, client: Any) -> None:
        """From 2026-07-28 a change of tools is an event of a ``subscriptions/listen`` stream
        (before, a notification: ``_on_message``); each one lists the tools again."""
        if client.protocol_version in LEGACY_VERSIONS:
            return
        try:
            async with client.listen(tools_list_changed=True) as events:
                async for _event in events:
                    if self._refresh is None or self._refresh.done():
                        self._refresh = asyncio.create_task(self._relist(client))
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the upstream does not offer it: the periodic listing still catches changes
            self.log.info("upstream change events unavailable", reason=_describe(exc))

    async def _list_tools(self, client: Any) -> list[dict[str, Any]]:
        tools: list[dict[str, Any]] = []
        cursor = None
        for _ in range(MAX_PAGES):
            page = await client.list_tools(cursor=cursor, cache_mode="refresh")
            tools.extend(t.model_dump(by_alias=True, exclude_none=True, mode="json") for t in page.tools)
            cursor = page.next_cursor
            if cursor is None or len(tools) >= MAX_TOOLS:
                break
        return tools[:MAX_TOOLS]

    def _publish(self, listed: list[dict[str, Any]]) -> None:
        self._listed = listed
        wanted = set(self.config.tools)
        made = []
        for tool in listed:
            if wanted and tool.get("name") not in wanted:
                continue
            try:
                made.append(registered_tool(self.config, self.separator, tool, self.call))
            except UnusableTool as exc:
                self.log.warning("upstream tool left out", tool=str(tool.get("name"))[:128], reason=str(exc))
        self.figures.tools = len(made)
        self.publish(self.config, made)

    async def _on_message(self, message: Any) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/tools/list_changed" and self._client is not None:
            if self._refresh is None or self._refresh.done():
                self._refresh = asyncio.create_task(self._relist(self._client))

    async def _relist(self, client: Any) -> None:
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                tools = await self._list_tools(client)
        except Exception as exc:
            self.log.warning("upstream tools could not be listed again", error=_describe(exc))
            return
        if client is self._client and tools != self._listed:
            self._publish(tools)
            self.log.info("upstream tools changed", tools=self.figures.tools)

    def _note_failure(self, reason: str) -> None:
        self.figures.last_error = reason[:MAX_ERROR_TEXT]
        self.log.warning("upstream unavailable", reason=self.figures.last_error)

    async def call(self, tool: str, arguments: dict[str, Any], context: Any) -> ToolResult:
        """The upstream's answer to ``tools/call``, or a tool error of Skywarden's that says why not."""
        self.figures.calls += 1
        client = self._client
        if client is None:
            self.figures.errors += 1
            wait = math.ceil(self._retry_at - time.monotonic())
            when = f"; the next attempt is in {wait} s" if wait > 0 else "; it is being reconnected"
            return error_result(f"The upstream {self.name} is unavailable{when}. Try again later.")

        async def progress(done: float, total: float | None, message: str | None) -> None:
            await context.report_progress(done, total, message)

        started = time.monotonic()
        meta = caller_meta(context.principal) if self.config.identity and context is not None else None
        try:
            async with asyncio.timeout(self.config.timeout):
                answer = await client.call_tool(tool, arguments, progress_callback=progress, meta=meta)
        except TimeoutError:
            self._count_failure(client)
            return error_result(f"The upstream {self.name} did not answer within {self.config.timeout:g} s.")
        except Exception as exc:
            refusal = _refusal_of(exc)
            if refusal is not None and not _connection_closed(exc):  # the upstream answered with a JSON-RPC error
                self._failures_in_a_row = 0
                return error_result(f"The upstream {self.name} refused the call: {refusal}")
            self.log.warning("upstream call failed", tool=tool, error=_describe(exc))
            self._count_failure(client, lost=True)
            return error_result(f"The upstream {self.name} failed during the call; it is being reconnected.")
        self._failures_in_a_row = 0
        self.figures.latency_sum += time.monotonic() - started
        body = answer.model_dump(by_alias=True, exclude_none=True, mode="json")
        result = ToolResult(
            content=list(body.get("content") or []),
            structured=body.get("structuredContent"),
            is_error=bool(body.get("isError")),
        )
        return bounded_result(result, self.config.max_result_bytes, self.name)

    def _count_failure(self, client: Any, lost: bool = False) -> None:
        self.figures.errors += 1
        self._failures_in_a_row += 1
        if client is self._client and (lost or self._failures_in_a_row >= BREAK_AFTER):
            self._note_failure("calls failed" if not lost else "the transport failed during a call")
            self._client = None
            self._set_state("down")
            self._lost.set()


def _refusal_of(exc: BaseException) -> str | None:
    """The message of a JSON-RPC error the upstream answered (the SDK's ``MCPError``)."""
    error = getattr(exc, "error", None)
    message = getattr(error, "message", None)
    if isinstance(message, str) and isinstance(getattr(error, "code", None), int):
        return message[:MAX_ERROR_TEXT]
    return None


def caller_meta(principal: Any) -> dict[str, Any] | None:
    """Who is calling, for an upstream with ``identity``: the principal's kind, id and name."""
    if principal is None:
        return None
    return {CALLER_META: {"kind": principal.kind, "id": principal.id, "name": principal.name}}


def _connection_closed(exc: BaseException) -> bool:
    """The SDK's own error for a transport that ended (the stdio server exited, the stream closed)."""
    error = getattr(exc, "error", None)
    return getattr(error, "code", None) == CONNECTION_CLOSED and getattr(error, "message", None) == "Connection closed"


def _describe(exc: BaseException) -> str:
    """One line about a failure: the innermost cause of an ExceptionGroup, its type and message."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MissingSecret | BlockedUpstream):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_TEXT] if text else type(exc).__name__


__all__ = ["UpstreamConnection", "UpstreamFigures"]
