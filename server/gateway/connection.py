"""One upstream's connection: started, watched, restarted with backoff, stopped cleanly.

A supervisor task holds the SDK client (its task groups live in that task). It connects within
``connect_timeout``, lists the tools (every page) and publishes them, then watches. The
connection is given up when its transport ends (the read stream is watched: a stdio server that
exits is noticed at once), or when a liveness check goes unanswered: a ping (before 2026-07-28)
or a listing (2026-07-28), every ``PING_INTERVAL``, and at once after ``BREAK_AFTER`` failed calls
in a row (time-outs included) or an error that may mean a broken transport. A slow tool or an
upstream's odd answer therefore never restarts an upstream that still answers.

A connection given up is down: calls answer at once with a tool error saying when the next
attempt is, and the supervisor reconnects after a backoff that doubles from ``FIRST_BACKOFF`` to
``MAX_BACKOFF``; it starts again from ``FIRST_BACKOFF`` only once a connection stayed up for
``STABLE_AFTER``. A stdio server is started again; its tools stay listed meanwhile. Stopping
never cancels the SDK's own shutdown (it closes the server's input, then ends its process group,
within about 7 s).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import math
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import structlog

from skywarden.server.gateway.credentials import MissingSecret
from skywarden.server.gateway.direct import (
    ANSWER_TOO_LARGE,
    CALLER_META,
    LEGACY_VERSIONS,
    MAX_PROGRESS,
    NOT_SENT,
    SKYWARDEN_FAILURE,
    Backlogged,
    CallBroken,
    DirectCalls,
    Fallback,
    TooLarge,
    tool_result,
)
from skywarden.server.gateway.relisting import Relisting
from skywarden.server.gateway.schema_compile import MAX_LISTING_PATTERNS, UnusableTool, pattern_count
from skywarden.server.gateway.schema_worker import MAX_PER_KEY, SchemaWorker
from skywarden.server.gateway.tools import bounded_result, error_result, registered_tool
from skywarden.server.gateway.transports import (
    BlockedUpstream,
    check_address,
    client_for,
    leave_result_checks_to_the_pipeline,
)
from skywarden.server.jsonutil import dumps
from skywarden.server.observability.redaction import redact_text
from skywarden.server.plugins.model import RegisteredTool
from skywarden.server.plugins.ssrf import AddressPolicy
from skywarden.server.upstreams import UpstreamConfig, origin
from skywarden.tools.contract import ToolResult

log = structlog.get_logger("skywarden.gateway")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 30.0
STABLE_AFTER = 30.0  # seconds a connection must last before the backoff starts again from the first
BREAK_AFTER = 3  # failed calls in a row that make the connection's liveness be checked at once
PING_INTERVAL = 15.0
LIST_INTERVAL = 60.0  # 2026-07-28 has no ping: the liveness check is a listing, less often
STOP_GRACE = 10.0  # seconds the SDK's shutdown of a connection gets before it is cancelled
MAX_PROGRESS_MESSAGE = 1000
# The SDK answers a call whose connection closed with a JSON-RPC error of its own; an upstream
# may send that code too, so it only makes the liveness be checked.
CONNECTION_CLOSED = -32000
MAX_PAGES = 100  # tools/list pages read at most
MAX_TOOLS = 1000  # tools offered per upstream at most
LEFT_OUT_NAMED = 100  # tools left out of one listing that are named in the log, one line each
MAX_TOOL_BYTES = 128 * 1024  # one tool as listed (its schemas, description, ...), as JSON
MAX_LISTING_BYTES = 4 * 1024 * 1024  # every tool of an upstream, as JSON
MAX_STDERR_LINES = 1000
MAX_STDERR_LINE = 500
MAX_ERROR_TEXT = 300

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


async def _log_lines(reader: asyncio.StreamReader, bound: Any, last: list[str]) -> None:
    """A stdio upstream's stderr, line by line into the log (redacted like every line), at most
    ``MAX_STDERR_LINES`` lines of ``MAX_STDERR_LINE`` characters per connection; ``last`` keeps
    the last line, for the reason a connection failed."""
    logged = 0
    while line := await reader.readline():
        text = line.decode(errors="replace").rstrip()[:MAX_STDERR_LINE]
        if text:
            last[:] = [text]
        if logged < MAX_STDERR_LINES:
            bound.info("upstream stderr", line=text)
        elif logged == MAX_STDERR_LINES:
            bound.warning("upstream stderr: further lines dropped", limit=MAX_STDERR_LINES)
        logged += 1


async def _stderr_pipe(stack: contextlib.AsyncExitStack, bound: Any, last: list[str]) -> Any:
    """A file the child writes its stderr to, read into the log until it closes."""
    read_fd, write_fd = os.pipe()
    reader = asyncio.StreamReader(limit=64 * 1024)
    loop = asyncio.get_running_loop()
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader), os.fdopen(read_fd, "rb", buffering=0)
    )
    task = asyncio.create_task(_drain(reader, bound, last))
    writer = os.fdopen(write_fd, "w")

    async def close() -> None:
        writer.close()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), 1.0)
        task.cancel()
        transport.close()

    stack.push_async_callback(close)
    return writer


async def _drain(reader: asyncio.StreamReader, bound: Any, last: list[str]) -> None:
    with contextlib.suppress(ValueError, OSError, asyncio.LimitOverrunError):
        await _log_lines(reader, bound, last)


class UpstreamConnection:
    def __init__(
        self,
        config: UpstreamConfig,
        separator: str,
        publish: Publish,
        policy: AddressPolicy,
        checks_per_key: int = MAX_PER_KEY,
    ) -> None:
        self.config = config
        self.separator = separator
        self.publish = publish
        self.policy = policy
        self.figures = UpstreamFigures()
        self._state_changed = asyncio.Event()  # set (and replaced) at every change of state
        self.first_attempt = asyncio.Event()
        self._client: Any = None
        self._calls: DirectCalls | None = None
        self._lost = asyncio.Event()
        self._stopping = asyncio.Event()
        self._failures_in_a_row = 0
        self._retry_at = 0.0
        self._task: asyncio.Task[None] | None = None
        self._relisting: Relisting | None = None  # the connection's listings on its announcements
        self._changed_while_connecting = False
        self._said_left_out: dict[str, str] = {}  # tool -> why the last published listing left it out
        self._left_out_now: dict[str, str] = {}  # the same, for the listing under way
        self._left_out_unnamed = 0
        # name -> its JSON as listed, and the tool made of it or why it was refused
        self._made: dict[str, tuple[bytes, RegisteredTool | str]] = {}
        self._listed_json = b"[]"
        self._listing = asyncio.Lock()  # one listing at a time: the last begun is the last published
        self._said_missing: list[str] = []
        self._probe: asyncio.Task[None] | None = None
        self._stderr: list[str] = []  # the last line a stdio upstream wrote on stderr
        # its tools' checks that may be slow (a process, when needed)
        self.schema_worker = SchemaWorker(per_key=checks_per_key)
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
        """End the connection the way the SDK ends one (never cancelled in the middle of it), and
        cancel it only if that takes longer than ``STOP_GRACE`` (a connect still under way)."""
        self._stopping.set()
        self._lost.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), STOP_GRACE + self.config.connect_timeout)
            except TimeoutError:
                self.log.error("upstream connection did not stop in time; cancelled")
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        await self.schema_worker.aclose()

    async def _supervise(self) -> None:
        backoff = FIRST_BACKOFF
        while not self._stopping.is_set():
            self._lost = asyncio.Event()
            self._stderr.clear()
            self._changed_while_connecting = False
            began = time.monotonic()
            try:
                await self._connected_session()
            except asyncio.CancelledError:
                task = asyncio.current_task()
                if self._stopping.is_set() or (task is not None and task.cancelling()):
                    raise
                self._note_failure_once("the connection was cancelled")
            except BaseException as exc:  # the SDK's task groups end in an ExceptionGroup
                if isinstance(exc, KeyboardInterrupt | SystemExit):
                    raise
                self._note_failure_once(_describe(exc))
            finally:
                self._client = None
                self._calls = None
                self.first_attempt.set()
                if self._relisting is not None:
                    self._relisting.cancel()
                    self._relisting = None
                if self._probe is not None:
                    self._probe.cancel()
            if self._stopping.is_set():
                break
            if self.figures.connects and time.monotonic() - began >= STABLE_AFTER:
                backoff = FIRST_BACKOFF  # it had been up a while: this is a new failure, not the same one
            self._set_state("down")
            self.figures.restarts += 1
            self._retry_at = time.monotonic() + backoff
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), backoff)
            backoff = min(backoff * 2, MAX_BACKOFF)

    async def _connect(self, stack: contextlib.AsyncExitStack) -> tuple[Any, Any, list[dict[str, Any]]]:
        """The upstream's client, its transport and its tools, within ``connect_timeout``; what
        fails is said as an operator can act on it (``ConnectFailed``)."""
        try:
            async with asyncio.timeout(self.config.connect_timeout):
                pinned = None
                if self.config.transport == "stdio":
                    errlog = await _stderr_pipe(stack, self.log, self._stderr)
                else:
                    errlog = None
                    pinned = await check_address(self.config, self.policy)
                transport = client_for(self.config, self._on_message, errlog, self._transport_ended, pinned)
                if transport.http is not None:
                    stack.push_async_callback(transport.http.aclose)
                if transport.calls is not None:
                    stack.push_async_callback(transport.calls.aclose)
                client = await stack.enter_async_context(transport.client)
                leave_result_checks_to_the_pipeline(client)
                return client, transport, await self._list_tools(client)
        except TimeoutError:
            where = f"{origin(self.config.url)}: " if self.config.url else ""
            waited = f"no answer within connect_timeout ({self.config.connect_timeout:g} s)"
            raise ConnectFailed(f"{where}{waited}") from None
        except BaseException as exc:
            if self._stderr and isinstance(exc, Exception):
                raise ConnectFailed(f"{_describe(exc)} (its last line on stderr: {self._stderr[0]})") from None
            if self.config.url and isinstance(exc, Exception) and not isinstance(exc, ConnectFailed):
                raise ConnectFailed(_remote_failure(self.config, exc)) from None
            raise

    async def _connected_session(self) -> None:
        async with contextlib.AsyncExitStack() as stack:
            try:
                client, transport, tools = await self._connect(stack)
            except BaseException as exc:
                if not isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
                    # said now: closing the transport (the stack, next) ends it, which is no news
                    self._note_failure_once(_describe(exc))
                    self._lost.set()
                raise
            self._client = client
            self._calls = transport.calls
            self._relisting = relisting = Relisting(lambda: self._relist(client))
            if self._changed_while_connecting:  # announced during the first listing: listed again
                relisting.changed()
            self._failures_in_a_row = 0
            async with self._listing:  # its tools offered before it is said to be up
                await self._publish(tools)
            self.figures.connects += 1
            self._set_state("up")
            self.figures.last_error = ""
            self.log.info("upstream connected", tools=self.figures.tools, transport=self.config.transport)
            self.first_attempt.set()
            listening = asyncio.create_task(self._listen(client))
            try:
                await self._watch(client)
            finally:
                listening.cancel()
                relisting.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await listening

    async def _watch(self, client: Any) -> None:
        """Until the connection is given up: a liveness check every ``PING_INTERVAL`` (a ping), or
        every ``LIST_INTERVAL`` from 2026-07-28, where ping is gone (a listing, which also catches a
        change of tools the upstream did not announce)."""
        legacy = client.protocol_version in LEGACY_VERSIONS
        while not self._lost.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._lost.wait(), PING_INTERVAL if legacy else LIST_INTERVAL)
                return
            await self._check_alive(client)

    async def _check_alive(self, client: Any) -> None:
        """The connection answers a ping or a listing within ``connect_timeout``; else it is given up."""
        import anyio  # with the SDK: only a server with upstreams has it

        legacy = client.protocol_version in LEGACY_VERSIONS
        async with contextlib.nullcontext() if legacy else self._listing:  # waited for outside the time-out
            try:
                with anyio.fail_after(self.config.connect_timeout):
                    if legacy:
                        await client.session.send_ping()
                        return
                    tools = await self._list_tools(client)
            except Exception as exc:
                if client is self._client:
                    self._give_up(f"no answer to a liveness check: {_describe(exc)}")
                return
            await self._listed_again(client, tools)

    def _transport_ended(self, how: str | None = None) -> None:
        """The read stream of the transport ended: the process exited (``how``, if known) or the
        stream broke."""
        if not self._stopping.is_set() and not self._lost.is_set():
            said = [f"its last line on stderr: {self._stderr[0]}"] if self._stderr else []
            said += [how] if how else []
            self._give_up(
                f"the upstream's connection ended ({'; '.join(said)})" if said else "the upstream's connection ended"
            )

    def _give_up(self, reason: str) -> None:
        self._note_failure(reason)
        self._client = None
        self._calls = None
        if self._relisting is not None:
            self._relisting.cancel()
        self._set_state("down")
        self._lost.set()

    def _suspect(self, client: Any) -> None:
        """Calls failed: check at once whether the connection still answers (one check at a time)."""
        if client is self._client and (self._probe is None or self._probe.done()):
            # the connection's own check, though a request's call asked for it: it logs as no request
            self._probe = asyncio.create_task(self._check_alive(client), context=contextvars.Context())

    async def _listen(self, client: Any) -> None:
        """From 2026-07-28 a change of tools is an event of a ``subscriptions/listen`` stream
        (before, a notification: ``_on_message``); each one lists the tools again."""
        if client.protocol_version in LEGACY_VERSIONS:
            return
        try:
            async with client.listen(tools_list_changed=True) as events:
                self._tools_changed(client)  # a change between the first listing and this stream
                async for _event in events:
                    self._tools_changed(client)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the upstream does not offer it: the periodic listing still catches changes
            self.log.info("upstream change events unavailable", reason=_describe(exc))

    async def _list_tools(self, client: Any) -> list[dict[str, Any]]:
        """The upstream's tools, page by page, within the bounds: a tool over ``MAX_TOOL_BYTES`` is
        left out, and the listing ends at ``MAX_TOOLS`` tools or ``MAX_LISTING_BYTES`` in all."""
        tools: list[dict[str, Any]] = []
        total = 0
        cursor = None
        self._left_out_now, self._left_out_unnamed = {}, 0
        for _ in range(MAX_PAGES):
            page = await self._page(client, cursor)
            for listed in page.tools:
                tool = listed.model_dump(by_alias=True, exclude_none=True, mode="json")
                size = len(dumps(tool))
                if size > MAX_TOOL_BYTES:
                    self._left_out(tool, f"it is {size} bytes as listed, more than {MAX_TOOL_BYTES}")
                    continue
                if total + size > MAX_LISTING_BYTES or len(tools) == MAX_TOOLS:
                    self.log.warning(
                        "upstream tools past the bound left out",
                        kept=len(tools),
                        bound=f"{MAX_TOOLS} tools, {MAX_LISTING_BYTES} bytes",
                    )
                    return tools
                total += size
                tools.append(tool)
            cursor = page.next_cursor
            if cursor is None:
                break
        return tools

    async def _page(self, client: Any, cursor: str | None) -> Any:
        """One page of the listing, as the SDK reads it. The SDK's model of a page refuses it whole
        for one malformed tool (an input schema that is no object schema, say), which would leave
        the upstream offering nothing, reconnecting without end. Such a page is asked for again
        and each tool checked on its own: the malformed ones are left out, saying why, and the
        SDK is given the rest as its own listing would give them (its per-tool state:
        ``Mcp-Param`` headers from 2026-07-28)."""
        from pydantic import ValidationError

        try:
            return await client.list_tools(cursor=cursor, cache_mode="refresh")
        except ValidationError:
            session = client.session
            if not all(hasattr(session, name) for name in ("_stamp", "_dispatcher", "_absorb_tool_listing")):
                raise  # an SDK without the parts this reading takes: the page is refused, as before
        from mcp import types

        data: dict[str, Any] = {"method": "tools/list", "params": {"cursor": cursor} if cursor else {}}
        options: dict[str, Any] = {}
        session._stamp(data, options)
        raw = await session._dispatcher.send_raw_request("tools/list", data["params"], options)
        listed, next_cursor = raw.get("tools"), raw.get("nextCursor")
        if not isinstance(listed, list) or not isinstance(next_cursor, str | None):
            raise UnusableListing("its tools/list answer holds no list of tools")
        tools = []
        for index, tool in enumerate(listed):
            try:  # as the SDK checks a page: against the revision it speaks, then its own model
                _check_for_revision(client.protocol_version, {**raw, "tools": [tool]})
                tools.append(types.Tool.model_validate(tool, by_name=False))
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = tuple(first.get("loc", ()))
                where = ".".join(str(part) for part in (loc[2:] if loc[:2] == ("tools", 0) else loc))
                named = tool if isinstance(tool, dict) else {"name": f"(item {index} of the listing: no object)"}
                self._left_out(named, f"it is not valid MCP: {f'{where}: ' if where else ''}{first['msg']}")
        page = types.ListToolsResult(tools=tools, next_cursor=next_cursor)
        return session._absorb_tool_listing(page, complete=cursor is None and next_cursor is None)

    async def _publish(self, listed: list[dict[str, Any]], written: bytes | None = None) -> None:
        """Offer the tools of ``listed`` (under ``_listing``; ``written``: its JSON, when made).
        Each tool made anew is compiled on the event loop, which waits for nothing else
        meanwhile: the loop is given its turn after each, so a listing of many large schemas
        holds it for one tool at a time."""
        self._listed_json = written if written is not None else dumps(listed)
        wanted = set(self.config.tools)
        missing = sorted(wanted - {tool.get("name") for tool in listed})
        if missing and missing != self._said_missing:
            self.log.warning("upstream does not offer tools its 'tools' option names", tools=missing[:20])
        self._said_missing = missing
        # for the next listing, the first of each name: one listed again unchanged (the same JSON)
        # is not compiled again, whether it was made or refused
        made: dict[str, tuple[bytes, RegisteredTool | str]] = {}
        published = []
        patterns_left = MAX_LISTING_PATTERNS
        for tool in listed:
            name = str(tool.get("name"))
            if wanted and name not in wanted:
                continue
            written = dumps(tool)
            before = self._made.get(name)
            unchanged = before[1] if before is not None and before[0] == written else None
            if isinstance(unchanged, str):  # refused before, for this reason
                self._left_out(tool, unchanged)
                made.setdefault(name, (written, unchanged))
                continue
            patterns = pattern_count(tool.get("inputSchema"), tool.get("outputSchema"))
            if patterns > patterns_left:
                self._left_out(tool, f"its patterns would pass the bound of {MAX_LISTING_PATTERNS} for one upstream")
                continue
            if unchanged is not None:
                registered = unchanged
            else:
                try:
                    registered = registered_tool(self.config, self.separator, tool, self.call, self.schema_worker)
                except UnusableTool as exc:
                    self._left_out(tool, str(exc))
                    made.setdefault(name, (written, str(exc)))
                    continue
                finally:
                    await asyncio.sleep(0)
            made.setdefault(name, (written, registered))
            published.append(registered)
            patterns_left -= patterns
        self._made = made
        self._said_left_out = self._left_out_now
        if self._left_out_unnamed:
            self.log.warning("upstream tools left out, not named one by one", more=self._left_out_unnamed)
        self.figures.tools = len(published)
        self.publish(self.config, published)

    def _left_out(self, tool: dict[str, Any], reason: str) -> None:
        """A tool left out of this listing: logged unless the last listing left it out for the
        same reason (an upstream relists often: its changes, the periodic listing), and named one
        by one up to ``LEFT_OUT_NAMED`` a listing (the rest are counted in one line)."""
        name = str(tool.get("name"))[:128]
        if len(self._left_out_now) >= LEFT_OUT_NAMED:
            self._left_out_unnamed += 1
            return
        key = re.sub(r"\d+", "#", reason)  # a size that moves by a byte is the same reason
        self._left_out_now[name] = key
        if self._said_left_out.get(name) != key:
            self.log.warning("upstream tool left out", tool=name, reason=reason)

    async def _on_message(self, message: Any) -> None:
        method = getattr(getattr(message, "root", message), "method", None)
        if method == "notifications/tools/list_changed":
            if self._client is None:
                self._changed_while_connecting = True
            else:
                self._tools_changed(self._client)

    def _tools_changed(self, client: Any) -> None:
        if client is self._client and self._relisting is not None:
            self._relisting.changed()

    async def _relist(self, client: Any) -> None:
        async with self._listing:  # waited for outside the time-out
            try:
                async with asyncio.timeout(self.config.connect_timeout):
                    tools = await self._list_tools(client)
            except Exception as exc:
                self.log.warning("upstream tools could not be listed again", error=_describe(exc))
                return
            try:
                if await self._listed_again(client, tools):
                    self.log.info("upstream tools changed", tools=self.figures.tools)
            except Exception as exc:  # never expected; the task's end would otherwise say nothing
                self.log.error("upstream tools could not be offered", error=_describe(exc))

    async def _listed_again(self, client: Any, tools: list[dict[str, Any]]) -> bool:
        """Publish a listing of the connection in use that differs from the last published (as
        JSON: ``1`` and ``true`` differ); True when it did."""
        if client is not self._client:
            return False
        written = dumps(tools)
        if written != self._listed_json:
            await self._publish(tools, written)
            return True
        # unchanged: what this listing left out is what was said, with the tools still refused
        refused = {name for name, (_, made) in self._made.items() if isinstance(made, str)}
        kept = {name: key for name, key in self._said_left_out.items() if name in refused}
        self._said_left_out = {**kept, **self._left_out_now}
        return False

    def _note_failure_once(self, reason: str) -> None:
        """A failure of the connection, logged unless its end was already noted as it happened
        (the transport ended: the SDK's error that follows says the same). It still replaces
        ``last_error`` when it says more: it may quote a last line on stderr read after the end."""
        if not self._lost.is_set():
            self._note_failure(reason)
            return
        shown = _error_text(reason)
        if len(shown) > len(self.figures.last_error):
            self.figures.last_error = shown

    def _note_failure(self, reason: str) -> None:
        """Keep and log why the upstream is unavailable."""
        self.figures.last_error = _error_text(reason)
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

        reported = 0

        async def progress(done: float, total: float | None, message: str | None) -> None:
            nonlocal reported
            reported += 1
            if reported <= MAX_PROGRESS:
                await context.report_progress(done, total, message[:MAX_PROGRESS_MESSAGE] if message else message)

        started = time.monotonic()
        meta = caller_meta(context.principal) if self.config.identity and context is not None else None
        try:
            async with asyncio.timeout(self.config.timeout):
                result, size = await self._send(client, tool, arguments, meta, progress)
        except TimeoutError:
            self._count_failure(client)
            return error_result(f"The upstream {self.name} did not answer within {self.config.timeout:g} s.")
        except Refused as exc:  # a JSON-RPC error: the upstream's, or the SDK's for a closed connection
            if exc.failure == ANSWER_TOO_LARGE:
                limit = self.config.max_result_bytes
                log.warning("upstream result too large", upstream=self.name, limit=limit)
                return error_result(f"The upstream {self.name} answered with more than its limit of {limit} bytes.")
            if exc.failure == NOT_SENT:
                self._count_failure(client)
                self.log.warning("upstream call failed", tool=tool, error=exc.message)
                return error_result(f"The upstream {self.name} failed during the call; the error was logged.")
            if exc.code == CONNECTION_CLOSED:
                self._suspect(client)
            return error_result(f"The upstream {self.name} refused the call: {redact_text(exc.message)}")
        except Backlogged as exc:  # not sent: the connection's failures are not counted
            self.log.warning("upstream call not sent", tool=tool, error=str(exc))
            return error_result(
                f"The upstream {self.name} has not read the calls sent before this one; it was not sent. "
                "Try again shortly."
            )
        except TooLarge as exc:
            limit = self.config.max_result_bytes
            log.warning("upstream result too large", upstream=self.name, bytes=exc.size, limit=limit)
            return error_result(f"The upstream {self.name} answered with more than its limit of {limit} bytes.")
        except Exception as exc:
            if self._lost.is_set() or client is not self._client:  # the transport ended during the call
                self.figures.errors += 1
                return error_result(f"The upstream {self.name} failed during the call; it is being reconnected.")
            self._count_failure(client)
            if isinstance(exc, CallBroken):
                self.log.warning("upstream call failed", tool=tool, error=redact_text(str(exc)))
                return error_result(f"The upstream {self.name} failed during the call; the error was logged.")
            self.log.warning("upstream answer not passed on", tool=tool, error=_describe(exc))
            return error_result(
                f"The upstream {self.name} answered with something Skywarden cannot pass on "
                f"({type(exc).__name__}); the error was logged."
            )
        self._failures_in_a_row = 0
        self.figures.latency_sum += time.monotonic() - started
        return bounded_result(result, self.config.max_result_bytes, self.name, read=size)

    async def _send(
        self, client: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None, progress: Any
    ) -> tuple[ToolResult, int | None]:
        """The call on the direct path (``direct``), or through the SDK's ``call_tool`` where that
        path cannot take it; with the size of the answer as the upstream wrote it, when known."""
        calls = self._calls
        if calls is not None:
            try:
                answer = await calls.call(client, tool, arguments, meta, progress)
            except Fallback as exc:
                self.log.debug("upstream call made through the SDK", tool=tool, reason=str(exc))
            else:
                if answer.failed:
                    raise Refused(answer.code or 0, answer.message[:MAX_ERROR_TEXT])
                return tool_result(answer), answer.size
        try:
            answer = await client.call_tool(tool, arguments, progress_callback=progress, meta=meta)
        except Exception as exc:
            refusal = _refusal_of(exc)
            if refusal is None or self._lost.is_set():
                raise
            error = exc.error  # type: ignore[attr-defined]
            data = getattr(error, "data", None)
            made_here = self.config.transport == "sse"  # the one transport that answers in the upstream's stead
            failure = data.get(SKYWARDEN_FAILURE) if isinstance(data, dict) and made_here else None
            raise Refused(getattr(error, "code", 0), refusal, failure) from None
        body = answer.model_dump(by_alias=True, exclude_none=True, mode="json")
        result = ToolResult(
            content=list(body.get("content") or []),
            structured=body.get("structuredContent"),
            is_error=bool(body.get("isError")),
        )
        return result, None

    def _count_failure(self, client: Any) -> None:
        self.figures.errors += 1
        self._failures_in_a_row += 1
        if self._failures_in_a_row >= BREAK_AFTER:
            self._failures_in_a_row = 0
            self._suspect(client)


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


class UnusableListing(Exception):
    """An upstream's listing that holds no tools Skywarden can read at all."""


class ConnectFailed(Exception):
    """Why a connection could not be made, in words (a time-out, with what the upstream said last)."""


class Refused(Exception):
    """A JSON-RPC error answered to a call: its code and message; ``failure`` when the transport
    answered it in the upstream's stead (``SKYWARDEN_FAILURE``)."""

    def __init__(self, code: int, message: str, failure: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.failure = failure


def _error_text(reason: str) -> str:
    """A failure's reason as ``last_error`` keeps it. It may quote the upstream (its last line on
    stderr, an error's text), so its credentials are redacted, before it is cut: ``last_error`` is
    shown to admins, and the log's ``reason`` field is never redacted."""
    return redact_text(reason)[:MAX_ERROR_TEXT]


def _remote_failure(config: UpstreamConfig, exc: BaseException) -> str:
    """A remote upstream's failure to connect, naming where (its origin: a URL's path or query may
    hold a credential), with a hint when the address answered but is no MCP endpoint."""
    reason = _ANY_URL.sub(lambda found: origin(found[0]), _describe(exc))  # a library may quote the URL
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MissingSecret | BlockedUpstream):
        return reason
    hint = ""
    if re.search(r"\b(404|405|Not Found|Method Not Allowed)\b", reason):
        usual = "/sse" if config.transport == "sse" else "/mcp"
        hint = f" (is the URL the server's MCP endpoint, such as {usual}?)"
    return f"{origin(config.url)}: {reason}{hint}"[: MAX_ERROR_TEXT + 100]


_ANY_URL = re.compile(r"https?://[^\s'\"<>]+", re.IGNORECASE)


def _check_for_revision(version: str, page: dict[str, Any]) -> None:
    """A page (holding one tool) checked as the SDK checks one for the revision spoken; a
    revision the SDK's table does not know is not checked here (a ``KeyError``, or a
    ``ValueError`` that is no validation error)."""
    from mcp_types.methods import validate_server_result
    from pydantic import ValidationError

    try:
        validate_server_result("tools/list", version, page)
    except ValidationError:
        raise
    except (KeyError, ValueError):
        return


def _describe(exc: BaseException) -> str:
    """A line about a failure: the innermost cause of an ExceptionGroup, its type and message (three
    lines of it: a validation error names the failing field on its second)."""
    while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
        exc = exc.exceptions[0]
    if isinstance(exc, MissingSecret | BlockedUpstream | ConnectFailed | UnusableListing):
        return str(exc)[:MAX_ERROR_TEXT]
    text = "; ".join(line.strip() for line in str(exc).splitlines()[:3] if line.strip())
    return f"{type(exc).__name__}: {text}"[:MAX_ERROR_TEXT] if text else type(exc).__name__


__all__ = ["UpstreamConnection", "UpstreamFigures"]
