"""A stdio upstream's ``tools/call`` written to its pipe by Skywarden (``stdio_pipes`` runs it).

A call is stamped by the SDK (``direct.call_message``) and written as one line under an id of
Skywarden's; its answer and progress are taken from the upstream's output (``take``) before
the SDK's session sees them. A call cancelled (its time-out, its caller gone) is told to the
upstream with ``notifications/cancelled``, as the SDK would.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable
from typing import Any

from skywarden.server.gateway.direct import (
    Answer,
    CallBroken,
    Calls,
    Fallback,
    PendingCall,
    Progress,
    TooLarge,
    Unusable,
    answer_of,
)
from skywarden.server.jsonutil import dumps

Write = Callable[[bytes], None]
# Whose answer a line is when it cannot be read whole: its id first (after ``jsonrpc`` at most),
# or last (the TypeScript SDK's order); never an id inside a result.
_ID = re.compile(rb'^\s*\{\s*(?:"jsonrpc"\s*:\s*"2\.0"\s*,\s*)?"id"\s*:\s*"([A-Za-z0-9-]{1,80})"')
_ID_AT_END = re.compile(rb'"id"\s*:\s*"([A-Za-z0-9-]{1,80})"\s*\}\s*$')


class StdioCalls:
    def __init__(self) -> None:
        self.calls = Calls()
        self.write: Write | None = None  # a line to the upstream's input, while its pipe is open

    def take(self, message: Any, size: int | None = None) -> bool:
        """Whether a message the upstream wrote (in ``size`` bytes) is for a direct call (taken here)."""
        if not isinstance(message, dict):
            return False
        method = message.get("method")
        if method is not None:
            return method == "notifications/progress" and self.calls.progress(message.get("params"))
        request_id = message.get("id")
        if not self.calls.ours(request_id):
            return False
        try:
            answer: Answer | BaseException = answer_of(message, size)
        except Unusable as exc:
            answer = exc
        return self.calls.answer(request_id, answer)

    def too_long(self, start: bytes, size: int) -> bool:
        """A line over the bound, of which only ``start`` was kept: the call it answers fails with
        ``TooLarge``."""
        return self._fail_by_id(start, TooLarge(size))

    def too_long_ended(self, end: bytes, size: int) -> bool:
        """The end of such a line: the call it answers fails, if the line names it last (as the
        TypeScript SDK writes an answer: the result, then ``jsonrpc`` and ``id``)."""
        found = _ID_AT_END.search(end)
        return found is not None and self.calls.answer(found.group(1).decode(), TooLarge(size))

    def unreadable(self, line: bytes, reason: str) -> bool:
        """A line that is no JSON Skywarden can read (a number too large, ...): the call it answers
        fails at once rather than at its time-out."""
        return self._fail_by_id(line[:4096], Unusable(reason))

    def _fail_by_id(self, start: bytes, exc: Exception) -> bool:
        """Fail the call whose id the start of a line names (it comes first, as the SDKs write it);
        True when it was one of ours."""
        found = _ID.match(start)
        return found is not None and self.calls.answer(found.group(1).decode(), exc)

    def ended(self) -> None:
        self.calls.fail_all(CallBroken("the upstream's connection ended"))

    async def aclose(self) -> None:
        """Nothing to close: the pipes end with the transport (``stdio_pipes``)."""

    async def call(
        self, client: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None, progress: Progress | None
    ) -> Answer:
        async def exchange(request_id: str, message: dict[str, Any], _: dict[str, str], pending: PendingCall) -> Answer:
            write = self.write
            if write is None:
                raise Fallback("the pipe is not open")
            try:
                write(dumps(message) + b"\n")
            except (OSError, RuntimeError) as exc:  # the pipe closed under the call
                raise CallBroken(f"the upstream's connection ended ({type(exc).__name__})") from None
            try:
                return await pending.future
            except asyncio.CancelledError:
                note = {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": request_id}}
                if self.write is not None:
                    try:
                        self.write(dumps(note) + b"\n")
                    except (OSError, RuntimeError, CallBroken):
                        pass  # an upstream that cannot be told: it ends with its connection
                raise

        return await self.calls.make(client, tool, arguments, meta, progress, exchange)
