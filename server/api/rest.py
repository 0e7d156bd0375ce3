"""REST routes: health, the tool list and tool calls."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import Schema, fields

from skywarden.server import __version__
from skywarden.server.appkeys import KEY_STORE, PRINCIPAL, RUNNER
from skywarden.server.calls.pipeline import CallRefused, InvalidArguments, ToolForbidden, UnknownTool
from skywarden.server.http.body import read_json
from skywarden.server.http.problems import ProblemError, validation_problem
from skywarden.server.jsonutil import dumps
from skywarden.server.observability.audit import note
from skywarden.tools.contract import MissingClientCapability, ToolResult

PROBLEM = {"content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}}


def problem_responses(*codes: int) -> dict[int, dict]:
    texts = {
        400: "Malformed request (bad JSON, key in the query string)",
        401: "Missing or invalid API key",
        403: "The key may not use this tool",
        404: "No such tool",
        413: "Body too large",
        415: "Body is not application/json",
        422: "Arguments failed validation; `errors` lists each field",
        429: "Rate limited; see Retry-After",
        503: "Not ready",
    }
    return {code: {"description": texts[code], **PROBLEM} for code in codes}


class HealthSchema(Schema):
    status = fields.String(required=True, metadata={"example": "ok"})
    version = fields.String(required=True)


class ToolInfoSchema(Schema):
    name = fields.String(required=True)
    title = fields.String()
    description = fields.String()
    inputSchema = fields.Dict(required=True)
    outputSchema = fields.Dict()


class ToolListSchema(Schema):
    tools = fields.List(fields.Nested(ToolInfoSchema), required=True)


class ToolResultSchema(Schema):
    content = fields.List(fields.Dict(), required=True)
    structuredContent = fields.Dict(allow_none=True)
    isError = fields.Boolean(required=True)


def result_body(result: ToolResult) -> dict:
    body = {"content": result.content, "isError": result.is_error}
    if result.structured is not None and not result.is_error:
        body["structuredContent"] = result.structured
    return body


def json_bytes(data: object, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


@docs(tags=["health"], summary="Liveness: the process answers", security=[])
@response_schema(HealthSchema, 200)
async def health(request: web.Request) -> web.Response:
    return json_bytes({"status": "ok", "version": __version__})


@docs(tags=["health"], summary="Readiness: the key store is reachable", security=[], responses=problem_responses(503))
@response_schema(HealthSchema, 200)
async def ready(request: web.Request) -> web.Response:
    store = request.app.get(KEY_STORE)
    if store is not None and not await store.ping():
        raise ProblemError(503, "Not ready", "The key store is not reachable.", type="not-ready")
    return json_bytes({"status": "ready", "version": __version__})


@docs(
    tags=["tools"],
    summary="List the tools this key may use",
    responses=problem_responses(401, 429),
)
@response_schema(ToolListSchema, 200)
async def list_tools(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    principal = request.get(PRINCIPAL)
    return json_bytes({"tools": [t.describe() for t in runner.visible_tools(principal)]})


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
    responses=problem_responses(400, 401, 403, 404, 413, 415, 422, 429),
)
@response_schema(ToolResultSchema, 200)
async def call_tool(request: web.Request) -> web.Response:
    runner = request.app[RUNNER]
    principal = request.get(PRINCIPAL)
    name = request.match_info["toolName"]
    try:
        tool = runner.resolve(name, principal)
    except UnknownTool:
        raise ProblemError(
            404, "Unknown tool", f"There is no tool named {name[:128]!r}.", type="unknown-tool"
        ) from None
    except ToolForbidden as exc:
        note(request, tool=name[:128], denied="scope")
        raise ProblemError(403, "Forbidden", str(exc), type="insufficient-scope") from None
    note(request, tool=tool.name)
    arguments = await read_json(request)
    try:
        validated = runner.validate(tool, arguments)
    except InvalidArguments as exc:
        raise validation_problem(exc.errors, f"The arguments for {tool.name} are not valid.") from None
    try:
        result = await runner.invoke(tool, validated, principal)
    except CallRefused as exc:
        note(request, denied="rate_limited", limit=exc.policy)
        raise ProblemError(429, "Too many requests", str(exc), type="rate-limited", headers=exc.headers()) from None
    except MissingClientCapability as exc:
        raise ProblemError(
            400,
            "Client capability required",
            f"{exc} Call this tool over MCP (POST /mcp) with a client that declares them.",
            type="client-capability-required",
        ) from None
    note(request, tool_error=result.is_error)
    return json_bytes(result_body(result))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/health", health, allow_head=True)
    app.router.add_get("/api/health/ready", ready, allow_head=True)
    app.router.add_get("/api/mcp/tools", list_tools, allow_head=False)
    app.router.add_post("/api/mcp/tools/{toolName}", call_tool)
