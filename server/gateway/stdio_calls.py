"""A stdio upstream's ``tools/call`` written to the SDK's transport streams directly.

The SDK's stdio transport keeps the process and its pipes, and its session the connection. A
call is stamped by the SDK (``direct.call_message``) and written to the transport's write stream
under an id of Skywarden's; its answer and progress are taken out of the read stream (``take``)
before the SDK's session sees them. A call cancelled (its time-out, its caller gone) is told to
the upstream with ``notifications/cancelled``, as the SDK would.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from skywarden.server.gateway.direct import Answer, CallBroken, Calls, Fallback, Progress, call_message


class StdioCalls:
    def __init__(self) -> None:
        self.calls = Calls()
        self.write: Any = None  # the transport's write stream, once it is open

    def take(self, item: Any) -> bool:
        """Whether an item of the read stream is for a direct call (taken here, not passed on)."""
        message = getattr(item, "message", None)
        if message is None:
            return False
        message = getattr(message, "root", message)
        method = getattr(message, "method", None)
        if method is not None:
            return method == "notifications/progress" and self.calls.progress(getattr(message, "params", None))
        request_id = getattr(message, "id", None)
        if not self.calls.ours(request_id):
            return False
        error = getattr(message, "error", None)
        if error is not None:
            answer = Answer(code=int(error.code), message=str(error.message))
        else:
            answer = Answer(result=getattr(message, "result", None))
        return self.calls.answer(request_id, answer)

    def ended(self) -> None:
        self.calls.fail_all(CallBroken("the upstream's connection ended"))

    async def call(
        self, client: Any, tool: str, arguments: dict[str, Any], meta: dict[str, Any] | None, progress: Progress | None
    ) -> Answer:
        from mcp.shared.message import SessionMessage
        from mcp.types import JSONRPCNotification, JSONRPCRequest

        if self.write is None:
            raise Fallback("the transport is not open")
        request_id, pending = self.calls.open(progress)
        try:
            message, _ = call_message(client, request_id, tool, arguments, meta)
            try:
                await self.write.send(SessionMessage(JSONRPCRequest.model_validate(message)))
            except Exception as exc:  # the stream closed under the call
                raise CallBroken(f"the upstream's connection ended ({type(exc).__name__})") from None
            try:
                answer = await pending.future
                await pending.settled()
                return answer
            except asyncio.CancelledError:
                note = JSONRPCNotification(
                    jsonrpc="2.0", method="notifications/cancelled", params={"requestId": request_id}
                )
                with contextlib.suppress(Exception):
                    self.write.send_nowait(SessionMessage(note))
                raise
        finally:
            self.calls.close(request_id)
