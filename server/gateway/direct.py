"""``tools/call`` sent beside the SDK's session, not through it.

The SDK's client keeps the connection: the handshake, listings, pings, change notifications and
the revision's stamping of requests. A call is the hot path, and the SDK's request machinery (its
typed models, the dispatcher's streams, its Python ``jsonschema`` check of structured results,
which the pipeline repeats with ``jsonschema-rs``) costs more than the rest of a call through
Skywarden. So a call is written here: the SDK stamps it (``_meta``, and from 2026-07-28 its
``Mcp-*`` headers), then it goes straight to the transport under an id of Skywarden's, and its
answer and progress are taken out of the transport's stream before the SDK sees them.

Anything this path does not handle (an SDK without the stamp, an upstream that refuses the
form before running the call) goes through the SDK's ``call_tool`` instead (``Fallback``).
"""

from __future__ import annotations

import asyncio
import itertools
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from skywarden.tools.contract import ToolResult

Progress = Callable[[float, float | None, str | None], Awaitable[None]]
LEGACY_VERSIONS = frozenset({"2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25"})
HEADER_MISMATCH = -32020  # 2026-07-28: the call's headers do not match the tool as listed; the SDK relists
MAX_PROGRESS = 1000  # progress notifications passed on per call
CALLER_META = "dev.skywarden/caller"  # the ``_meta`` entry naming the caller (an upstream with ``identity``)
_SAFE_IN_HEADER = ":_-.@|/+="


class Fallback(Exception):
    """This call is made through the SDK's ``call_tool`` instead (it was not run upstream)."""


class CallBroken(Exception):
    """The transport failed during the call: the upstream may or may not have run it."""


class Backlogged(CallBroken):
    """The call was not sent: the upstream has not read what it was sent before. Nothing of it
    ran, and the connection is not at fault (a busy upstream reads again; a hung one fails its
    liveness check)."""


class Unusable(Exception):
    """The upstream's answer is not one Skywarden can pass on."""


# A call a transport failed in the upstream's stead (HTTP+SSE: sse_transport.py) is answered with
# a JSON-RPC error whose data says why under SKYWARDEN_FAILURE: the answer was over the bound
# and skipped, or the call could not be sent.
SKYWARDEN_FAILURE = "skywardenFailure"
ANSWER_TOO_LARGE = "answer-too-large"
NOT_SENT = "not-sent"


_ID = rb'(-?\d{1,18}|"[^"\\]{1,200}")'
_VERSION = rb'(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?'
_ID_FIRST = re.compile(
    rb"^\s*\{\s*" + _VERSION + rb'"id"\s*:\s*' + _ID + rb"\s*,\s*" + _VERSION + rb'"(?:result|error)"'
)
_RESULT_FIRST = re.compile(rb'^\s*\{\s*"(?:result|error)"\s*:')
_ID_LAST = re.compile(rb'"id"\s*:\s*' + _ID + rb"\s*\}\s*$")


def answer_id(start: bytes, end: bytes = b"") -> Any:
    """The id of the answer a message too large (or unreadable) was, from what was kept of it: its
    ``start``, where the Python SDK writes the id before the result, or its ``end``, where the
    TypeScript SDK writes it after; None when neither says (a request's id, or one inside the
    result, is never taken)."""
    found = _ID_FIRST.match(start)
    if found is None and _RESULT_FIRST.match(start):
        found = _ID_LAST.search(end)
    if found is None:
        return None
    text = found[1].decode()
    return text[1:-1] if text.startswith('"') else int(text)


class TooLarge(Exception):
    """An answer (or one event or line of it) over the upstream's bound, not read further:
    ``size`` is how much of it was known when reading stopped (at least the bound plus one)."""

    def __init__(self, size: int) -> None:
        super().__init__(size)
        self.size = size


@dataclass
class Answer:
    """A JSON-RPC response to a call: its result, or its error's code and message."""

    result: Any = None
    code: int | None = None
    message: str = ""
    size: int | None = None  # bytes of the message it came in, as the upstream wrote it (None: not known)

    @property
    def failed(self) -> bool:
        return self.code is not None


def answer_of(message: dict[str, Any], size: int | None = None) -> Answer:
    """The ``Answer`` in a JSON-RPC response object (read from ``size`` bytes, when known)."""
    error = message.get("error")
    if error is not None:
        if not isinstance(error, dict):
            raise Unusable("an error that is not an object")
        code, text = error.get("code"), error.get("message")
        return Answer(code=code if isinstance(code, int) else 0, message=text if isinstance(text, str) else "")
    if "result" not in message:
        raise Unusable("a response with neither result nor error")
    return Answer(result=message["result"], size=size)


class DirectCalls(Protocol):
    """A transport's direct path: ``HttpCalls`` or ``StdioCalls``."""

    async def call(
        self, client: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None, progress: Progress | None
    ) -> Answer: ...

    async def aclose(self) -> None: ...


Exchange = Callable[[str, dict[str, Any], dict[str, str], "PendingCall"], Awaitable[Answer]]


def identity_value(meta: dict[str, Any] | None) -> str | None:
    """The identity header's value (``kind:id``, percent-encoded) for a call whose ``_meta``
    names its caller (``CALLER_META``), or None."""
    caller = (meta or {}).get(CALLER_META)
    if not isinstance(caller, dict) or "kind" not in caller or "id" not in caller:
        return None
    return quote(f"{caller['kind']}:{caller['id']}", safe=_SAFE_IN_HEADER)


@dataclass
class PendingCall:
    future: asyncio.Future[Answer]
    progress: Progress | None
    reported: asyncio.Future[None] | None = None  # the last progress passed on: they run in order
    reports: int = 0

    def report(self, done: float, total: float | None, message: str | None) -> None:
        self.reports += 1
        if self.progress is None or self.reports > MAX_PROGRESS:  # a flood is read, never queued
            return
        before, progress = self.reported, self.progress

        async def run() -> None:
            if before is not None:
                await asyncio.wait([before])
            await progress(done, total, message)

        self.reported = asyncio.ensure_future(run())
        self.reported.add_done_callback(_ignore_failure)

    async def settled(self) -> None:
        """Until the progress already received is passed on (before the answer is)."""
        if self.reported is not None:
            await asyncio.wait([self.reported])


@dataclass
class Calls:
    """The direct calls under way on one connection, by request id: answers and progress are
    routed to them from the transport's stream. The ids are Skywarden's own (strings with a
    random prefix), so they never meet the SDK's (integers)."""

    prefix: str = field(default_factory=lambda: f"skywarden-{secrets.token_hex(4)}-")
    pending: dict[str, PendingCall] = field(default_factory=dict)
    _numbers: Any = field(default_factory=itertools.count)

    def start(self, progress: Progress | None) -> tuple[str, PendingCall]:
        request_id = f"{self.prefix}{next(self._numbers)}"
        call = PendingCall(asyncio.get_running_loop().create_future(), progress)
        self.pending[request_id] = call
        return request_id, call

    def close(self, request_id: str) -> None:
        self.pending.pop(request_id, None)

    async def make(
        self,
        client: Any,
        tool: str,
        arguments: dict[str, Any],
        meta: dict[str, Any] | None,
        progress: Progress | None,
        exchange: Exchange,
    ) -> Answer:
        """One call under an id of ours: its request stamped by the SDK, sent and answered by
        ``exchange`` (request id, message, stamped headers, the pending call); the progress
        already received is passed on before the answer is returned."""
        request_id, pending = self.start(progress)
        try:
            message, headers = call_message(client, request_id, tool, arguments, meta)
            answer = await exchange(request_id, message, headers, pending)
            await pending.settled()
            return answer
        finally:
            self.close(request_id)

    def ours(self, request_id: Any) -> bool:
        return isinstance(request_id, str) and request_id.startswith(self.prefix)

    def answer(self, request_id: Any, answer: Answer | BaseException) -> bool:
        """Deliver an answer; True when the id was one of ours (answered or not, late or not)."""
        if not self.ours(request_id):
            return False
        call = self.pending.pop(request_id, None)
        if call is not None and not call.future.done():
            if isinstance(answer, BaseException):
                call.future.set_exception(answer)
            else:
                call.future.set_result(answer)
        return True

    def progress(self, params: Any) -> bool:
        """A ``notifications/progress`` for one of our calls (True: it was ours, taken here)."""
        token = params.get("progressToken") if isinstance(params, dict) else None
        if not isinstance(token, str) or not self.ours(token):
            return False
        call = self.pending.get(token)
        done, total, message = params.get("progress"), params.get("total"), params.get("message")
        if call is not None and isinstance(done, int | float) and not isinstance(done, bool):
            call.report(
                float(done),
                float(total) if isinstance(total, int | float) and not isinstance(total, bool) else None,
                message if isinstance(message, str) else None,
            )
        return True

    def fail_all(self, exc: BaseException) -> None:
        for request_id in list(self.pending):
            self.answer(request_id, exc)


def _ignore_failure(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()


def call_message(
    client: Any, request_id: str, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The JSON-RPC request for a call, stamped by the SDK for the revision it speaks, and the
    headers that stamp asks for (Streamable HTTP)."""
    stamp = getattr(getattr(client, "session", None), "_stamp", None)
    if stamp is None:
        raise Fallback("this SDK does not stamp requests")
    request_meta = {**(meta or {}), "progressToken": request_id}
    params: dict[str, Any] = {"name": tool, "arguments": arguments, "_meta": request_meta}
    data: dict[str, Any] = {"method": "tools/call", "params": params}
    options: dict[str, Any] = {}
    stamp(data, options)
    headers = options.get("headers") or {}
    return {"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": data["params"]}, dict(headers)


def tool_result(answer: Answer) -> ToolResult:
    """The ``ToolResult`` of a call's result, checked as the SDK checks one (content blocks of
    known kinds), without making the SDK's models of it. A result of plain text blocks passes
    a check of its own (``plain_text_result``); any other is validated by the SDK's model."""
    result = answer.result
    if not isinstance(result, dict):
        raise Unusable("a result that is not an object")
    if result.get("resultType", "complete") != "complete":
        raise Unusable(f"a result of type {str(result.get('resultType'))[:40]!r}, which needs input it cannot give")
    if not plain_text_result(result):
        from mcp.types import CallToolResult
        from pydantic import ValidationError

        try:
            CallToolResult.model_validate(result, by_name=False)
        except ValidationError as exc:
            raise Unusable(f"ValidationError: {exc.errors()[0].get('msg', '')}"[:200]) from None
    return ToolResult(
        content=list(result.get("content") or []),
        structured=result.get("structuredContent"),
        is_error=bool(result.get("isError")),
    )


_TEXT_BLOCK_KEYS = frozenset({"type", "text"})


def plain_text_result(result: dict[str, Any]) -> bool:
    """Whether a call's result is one the SDK's ``CallToolResult`` accepts on sight: text blocks
    with nothing but their text, and the optional members of the types the model wants. Most
    results are; checking them so costs a fraction of the model's validation. False says
    nothing (the model decides)."""
    content = result.get("content")
    if type(content) is not list or result.get("resultType", "complete") != "complete":
        return False
    for block in content:
        if type(block) is not dict or block.get("type") != "text" or type(block.get("text")) is not str:
            return False
        if not block.keys() <= _TEXT_BLOCK_KEYS:
            return False
    return (
        type(result.get("structuredContent", {})) is dict
        and type(result.get("isError", False)) is bool
        and type(result.get("_meta", {})) is dict
    )
