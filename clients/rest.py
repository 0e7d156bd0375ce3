"""REST transport: /api/mcp/tools."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from skywarden.clients import errors as e
from skywarden.clients.http import HttpCore
from skywarden.clients.mapping import decode, problem_error
from skywarden.clients.results import ToolCallResult, ToolInfo


class RestTransport:
    name = "rest"

    def __init__(self, core: HttpCore) -> None:
        self.core = core

    async def list_tools(self) -> list[ToolInfo]:
        answer = await self.core.request("GET", "/api/mcp/tools", idempotent=True)
        if answer.status != 200:
            raise problem_error(answer)
        body = decode(answer)
        return [ToolInfo.from_wire(t) for t in body.get("tools", [])]

    async def call_tool(self, name: str, arguments: dict[str, Any], progress: Any = None) -> ToolCallResult:
        answer = await self.core.request(
            "POST", f"/api/mcp/tools/{quote(name, safe='')}", json=arguments, idempotent=False
        )
        if answer.status != 200:
            raise problem_error(answer)
        body = decode(answer)
        if not isinstance(body, dict):
            raise e.ServerError("the tool answer is not an object", status=200, request_id=answer.request_id)
        return ToolCallResult.from_wire(body)

    async def close(self) -> None:
        return None
