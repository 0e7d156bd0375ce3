"""The one path a tool call takes, whichever door (REST or MCP) it came through.

lookup -> authorization -> argument validation -> call -> result. Protocol
layers map the exceptions here to their own error shapes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import marshmallow
import structlog

from skywarden.server.auth.principal import Principal
from skywarden.server.http.problems import describe_errors
from skywarden.tools.contract import (
    MissingClientCapability,
    ProgressReporter,
    ToolContext,
    ToolError,
    ToolResult,
    no_progress,
    text_content,
)
from skywarden.tools.registry import RegisteredTool, ToolRegistry

log = structlog.get_logger("skywarden.tools")


class UnknownTool(LookupError):
    def __init__(self, name: str) -> None:
        super().__init__(f"Unknown tool: {name}")
        self.name = name


class ToolForbidden(PermissionError):
    def __init__(self, name: str) -> None:
        super().__init__(f"This API key may not use the tool {name!r}.")
        self.name = name


class CallRefused(Exception):
    """The call may not run now (rate limit, too many at once): HTTP 429 at either door."""

    policy = "refused"

    def headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class TooManyConcurrentCalls(CallRefused):
    policy = "concurrency"

    def __init__(self, limit: int) -> None:
        super().__init__(f"This key already has {limit} tool calls running; retry when one finishes.")


class InvalidArguments(ValueError):
    def __init__(self, errors: Mapping[str, Any]) -> None:
        super().__init__(describe_errors(errors))
        self.errors = errors


@dataclass
class ToolRunner:
    registry: ToolRegistry
    upstream: Any
    settings: Any
    charge: Callable[[Principal | None, int], Awaitable[None]] | None = None
    max_concurrent: int = 8
    _running: dict[str, int] = field(default_factory=dict)

    def visible_tools(self, principal: Principal | None) -> list[RegisteredTool]:
        return [t for t in self.registry if principal is None or principal.allows(t.name)]

    def resolve(self, name: str, principal: Principal | None) -> RegisteredTool:
        tool = self.registry.get(name) if isinstance(name, str) else None
        if tool is None:
            raise UnknownTool(str(name))
        if principal is not None and not principal.allows(tool.name):
            raise ToolForbidden(tool.name)
        return tool

    @staticmethod
    def validate(tool: RegisteredTool, arguments: Any) -> dict[str, Any]:
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidArguments({"_schema": ["Arguments must be a JSON object."]})
        try:
            return tool.arguments_schema.load(arguments)
        except marshmallow.ValidationError as exc:
            errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            raise InvalidArguments(errors) from None

    async def invoke(
        self,
        tool: RegisteredTool,
        arguments: dict[str, Any],
        principal: Principal | None,
        report_progress: ProgressReporter = no_progress,
        client_capabilities: Mapping[str, Any] | None = None,
    ) -> ToolResult:
        """Run a validated call; a tool failure comes back as an ``is_error`` result.

        ``MissingClientCapability`` and ``CallRefused`` propagate: they are protocol
        answers, not tool results.
        """
        if self.charge is not None and tool.cost > 1:
            await self.charge(principal, tool.cost - 1)  # the request itself already paid one unit
        key_id = principal.id if principal is not None else ""
        running = self._running.get(key_id, 0)
        if running >= self.max_concurrent:
            raise TooManyConcurrentCalls(self.max_concurrent)
        self._running[key_id] = running + 1
        try:
            return await self._run(tool, arguments, principal, report_progress, client_capabilities)
        finally:
            left = self._running[key_id] - 1
            if left:
                self._running[key_id] = left
            else:
                del self._running[key_id]

    async def _run(
        self,
        tool: RegisteredTool,
        arguments: dict[str, Any],
        principal: Principal | None,
        report_progress: ProgressReporter,
        client_capabilities: Mapping[str, Any] | None,
    ) -> ToolResult:
        bound = log.bind(tool=tool.name)
        context = ToolContext(
            upstream=self.upstream,
            settings=self.settings,
            log=bound,
            principal=principal,
            report_progress=report_progress,
            client_capabilities=client_capabilities,
        )
        try:
            result = await tool.tool.call(arguments, context)
        except ToolError as exc:
            return ToolResult(content=[text_content(str(exc))], is_error=True)
        except (asyncio.CancelledError, MissingClientCapability):
            raise
        except Exception:
            bound.exception("tool raised an unexpected error")
            return ToolResult(
                content=[text_content(f"The tool {tool.name} failed unexpectedly; the error was logged.")],
                is_error=True,
            )
        if isinstance(result, str):
            result = ToolResult(content=[text_content(result)])
        if not isinstance(result, ToolResult):
            bound.error("tool returned an unexpected value", returned=type(result).__name__)
            return ToolResult(
                content=[text_content(f"The tool {tool.name} returned an invalid result.")], is_error=True
            )
        return result

    async def call(
        self,
        name: str,
        arguments: Any,
        principal: Principal | None,
        report_progress: ProgressReporter = no_progress,
    ) -> ToolResult:
        tool = self.resolve(name, principal)
        return await self.invoke(tool, self.validate(tool, arguments), principal, report_progress)
