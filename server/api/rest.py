"""REST routes: health, the tool list and tool calls."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import Schema, fields

from skywarden.server import __version__
from skywarden.server.calls.pipeline import ARGUMENTS_MUST_BE_AN_OBJECT, MAX_NAME_SHOWN, InvalidArguments, ToolPipeline
from skywarden.server.errors import NOT_READY, ApiError
from skywarden.server.http.body import BodyReader
from skywarden.server.http.paths import HEALTH_PATH, READY_PATH, TOOL_CALL_PATH, TOOLS_PATH
from skywarden.server.http.problems import problem_responses
from skywarden.server.http.responses import json_response
from skywarden.server.http.routes import KEY, PUBLIC, add_route
from skywarden.server.observability.audit import note
from skywarden.server.observability.logging_setup import sink_states
from skywarden.server.request_state import state_of
from skywarden.tools.contract import ToolResult


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    version = fields.String(required=True)


class ReadySchema(HealthSchema):
    checks = fields.Dict(
        keys=fields.String(),
        values=fields.String(metadata={"enum": ["ok", "unreachable", "unwritable"]}),
        required=True,
        metadata={
            "description": "Each dependency: key_store, rate_limiter, broadcast (Redis pub/sub when shared), "
            "log and audit_log (their file or stdout: unwritable while a write fails)"
        },
    )
    upstreams = fields.Dict(
        keys=fields.String(),
        values=fields.String(metadata={"enum": ["starting", "up", "down", "disabled"]}),
        metadata={
            "description": "Each upstream MCP server (docs/gateway.md), when any is configured. An upstream "
            "that is down does not make the server unready: its tools answer with a tool error meanwhile"
        },
    )


class ToolInfoSchema(Schema):
    name = fields.String(required=True)
    title = fields.String()
    description = fields.String()
    inputSchema = fields.Dict(required=True)
    outputSchema = fields.Dict()
    annotations = fields.Dict(
        metadata={"description": "MCP tool annotations (title, readOnlyHint, destructiveHint, ...): hints"}
    )


class ToolListSchema(Schema):
    tools = fields.List(fields.Nested(ToolInfoSchema), required=True)


class ToolResultSchema(Schema):
    content = fields.List(fields.Dict(), required=True)
    structuredContent = fields.Dict(allow_none=True)
    isError = fields.Boolean(required=True)


def result_body(result: ToolResult) -> dict[str, Any]:
    body: dict[str, Any] = {"content": result.content, "isError": result.is_error}
    if result.structured is not None and not result.is_error:
        body["structuredContent"] = result.structured
    return body


@docs(tags=["health"], summary="Liveness: the process answers")
@response_schema(HealthSchema, 200)
async def health(request: web.Request) -> web.Response:
    return json_response({"status": "ok", "version": __version__})


TOOL_CALL_400 = (
    "The body cannot be read (not JSON, not UTF-8, nested too deeply), or the tool needs an MCP client "
    "capability: call it over /mcp"
)
Reachable = Callable[[], Awaitable[bool]]


class RestApi:
    """Readiness, the tool list and the tool call, with what they need from the app factory:
    the pipeline, the body reader, and each dependency readiness asks by name (``key_store``,
    ``rate_limiter``, ``broadcast``)."""

    def __init__(
        self,
        pipeline: ToolPipeline,
        body_reader: BodyReader,
        dependencies: Mapping[str, Reachable],
        upstreams: Callable[[], dict[str, str]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.body_reader = body_reader
        self.dependencies = dict(dependencies)
        self.upstreams = upstreams

    @docs(
        tags=["health"],
        summary="Readiness: the key store, rate limiter and broadcast are reachable, the log and audit log writable",
        responses=problem_responses(503),
    )
    @response_schema(ReadySchema, 200)
    async def ready(self, request: web.Request) -> web.Response:
        """Each dependency by name; 503 when any is unreachable, or a log cannot be written (an audit
        event that cannot be written is kept and retried, but a balancer should send no traffic)."""
        checks = {name: "ok" if await reachable() else "unreachable" for name, reachable in self.dependencies.items()}
        checks.update({role: "unwritable" if state.failing else "ok" for role, state in sink_states().items()})
        if any(state != "ok" for state in checks.values()):
            failing = ", ".join(f"{name} {state}" for name, state in checks.items() if state != "ok")
            raise ApiError(NOT_READY, f"Not ready: {failing}.", extra={"checks": checks})
        body: dict[str, Any] = {"status": "ready", "version": __version__, "checks": checks}
        upstreams = self.upstreams() if self.upstreams is not None else {}
        if upstreams:
            body["upstreams"] = upstreams
        return json_response(body)

    @docs(
        tags=["tools"],
        summary="List the tools this key may use",
    )
    @response_schema(ToolListSchema, 200)
    async def list_tools(self, request: web.Request) -> web.Response:
        tools = self.pipeline.visible_tools(state_of(request).caller)
        return json_response({"tools": [t.describe() for t in tools]})

    @docs(
        tags=["tools"],
        summary="Call a tool",
        description=(
            "The body is the tool's arguments as a JSON object (see each tool's `inputSchema`). "
            "A tool failure (upstream down, no data) is a 200 with `isError: true`."
        ),
        parameters=[{"in": "path", "name": "toolName", "required": True, "schema": {"type": "string"}}],
        requestBody={
            "required": True,
            "content": {"application/json": {"schema": {"type": "object", "additionalProperties": True}}},
        },
        responses={
            **problem_responses(400, 403, 404, 408, 413, 415, 422, 429),
            400: {**problem_responses(400)[400], "description": TOOL_CALL_400},
        },
    )
    @response_schema(ToolResultSchema, 200)
    async def call_tool(self, request: web.Request) -> web.Response:
        name = request.match_info["toolName"]
        note(request, tool=name[:128])
        arguments = await self.body_reader.read_json(request)
        if not isinstance(arguments, dict):  # MCP may omit arguments; a REST body is always the object itself
            raise InvalidArguments(name[:MAX_NAME_SHOWN], {"_schema": [ARGUMENTS_MUST_BE_AN_OBJECT]})
        state = state_of(request)
        outcome = await self.pipeline.call(name, arguments, state.caller, prepaid=state.prepaid)
        note(request, tool_error=outcome.result.is_error)
        if outcome.tool.upstream is not None:
            note(request, upstream=outcome.tool.upstream)
        return json_response(outcome.encoded("rest", result_body))

    def add_routes(self, app: web.Application) -> None:
        add_route(app, "GET", HEALTH_PATH, health, rule=PUBLIC, allow_head=True)
        add_route(app, "GET", READY_PATH, self.ready, rule=PUBLIC, allow_head=True)
        # The call route first: the router tries the resources under /api/mcp/tools in the order
        # they were added, and tool calls are the busier of the two.
        add_route(app, "POST", TOOL_CALL_PATH, self.call_tool, rule=KEY)
        add_route(app, "GET", TOOLS_PATH, self.list_tools, rule=KEY)
