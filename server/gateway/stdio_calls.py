"""A stdio upstream's ``tools/call`` written to its pipe by Skywarden (``stdio_pipes`` runs it).

A call is stamped by the SDK (``direct.call_message``) and written as one line under an id of
Skywarden's; its answer and progress are taken from the upstream's output (``take``) before
the SDK's session sees them. A call cancelled (its time-out, its caller gone) is told to the
upstream with ``notifications/cancelled``, as the SDK would.
"""

from __future__ import annotations

import asyncio
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
    answer_id,
    answer_of,
)
from skywarden.server.gateway.lines import KEPT_OF_A_LINES_END, KEPT_OF_A_LONG_LINE
from skywarden.server.jsonutil import dumps

Write = Callable[[bytes], None]


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

    def too_long(self, start: bytes, size: int, end: bytes = b"") -> bool:
        """A line over the bound, of which only ``start`` (and, once it ended, ``end``) was kept:
        the call it answers fails with ``TooLarge``."""
        return self._fail(answer_id(start, end), TooLarge(size))

    def unreadable(self, line: bytes, reason: str) -> bool:
        """A line that is no JSON Skywarden can read (a number too large, ...): the call it answers
        fails at once rather than at its time-out."""
        return self._fail(answer_id(line[:KEPT_OF_A_LONG_LINE], line[-KEPT_OF_A_LINES_END:]), Unusable(reason))

    def _fail(self, request_id: Any, exc: Exception) -> bool:
        """Fail the call ``request_id`` names; True when it was one of ours."""
        return request_id is not None and self.calls.answer(request_id, exc)

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
