"""An upstream's tool as a Skywarden tool: ``<upstream><separator><tool>``, its schemas,
annotations and description passed through, its arguments checked against its input schema
before they leave, and what it answers turned into a bounded ``ToolResult``.

The ``RegisteredTool`` made here goes through the same pipeline as a plugin's: scopes, charging,
concurrency slots, the audit event. Its grants are its name, ``<upstream><separator>*`` and
``upstream:<upstream>``, so a key scoped to one upstream reaches none of another's tools.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import marshmallow
import structlog

from skywarden.server.gateway.schema_checks import UpstreamSchema
from skywarden.server.gateway.schema_compile import MAX_TOOL_PATTERNS, UnusableTool, compile_schema, pattern_count
from skywarden.server.gateway.schema_worker import CheckFailed, SchemaWorker
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.model import TOOL_NAME, ArgumentsRejected, PluginInfo, RegisteredTool
from skywarden.server.plugins.results import ResultMismatch, ResultShape, failure, whole_value
from skywarden.server.upstreams import UpstreamConfig, upstream_scopes
from skywarden.tools.contract import ToolResult

log = structlog.get_logger("skywarden.gateway")

MAX_ERRORS_SHOWN = 10
MAX_ERROR_TEXT = 200
NOT_CHECKABLE = "Arguments are not JSON the tool's schema can check."
MAX_DESCRIPTION = 4000
# What an upstream may annotate a tool with: MCP's annotation fields, nothing else.
ANNOTATION_FIELDS = ("title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

# (config, upstream tool name, validated arguments) -> the upstream's answer as a ToolResult
Forward = Callable[[str, dict[str, Any], Any], Awaitable[ToolResult]]


def plugin_of(config: UpstreamConfig) -> PluginInfo:
    """The plugin an upstream's tools belong to in the registry (their distribution names it)."""
    return PluginInfo(f"upstream:{config.name}", f"upstream:{config.name}", config.description or config.name)


class JsonSchemaArguments(marshmallow.Schema):
    """The pipeline's argument check for an upstream tool: its input JSON Schema, compiled once
    (offline: a remote ``$ref`` is never fetched). A refusal names the first error, by field as
    marshmallow gives them (``first_error``: asking for every error could cost gigabytes).
    Arguments this leaves to the schema worker (``UpstreamSchema.checked_here``) pass here
    unchecked: the tool has them checked there before they leave (``registered_tool``)."""

    def __init__(self, schema: UpstreamSchema) -> None:
        super().__init__()
        self.schema = schema

    def load(self, data: Any, **_: Any) -> Any:  # a schema of JSON, not of fields
        try:
            done, error = self.schema.checked_here(data)
        except (ValueError, TypeError, RecursionError):
            raise marshmallow.ValidationError({"_schema": [NOT_CHECKABLE]}) from None
        if error is not None:
            raise marshmallow.ValidationError(argument_errors(error))
        return dict(data) if done else Unchecked(data)


class Unchecked(dict[str, Any]):
    """Arguments ``JsonSchemaArguments`` left to the schema worker: the tool has them checked
    there before they leave."""


def argument_errors(error: Mapping[str, Any]) -> dict[str, list[str]]:
    """The first error of the arguments (``error_fields``) by field, for the pipeline's refusal."""
    return {field: [str(error["message"])[:MAX_ERROR_TEXT]] for field in _fields_of(error)[:MAX_ERRORS_SHOWN]}


def _fields_of(error: Mapping[str, Any]) -> list[str]:
    """The fields an error of the input schema is about: where it was found, and for a missing or
    unexpected member that member (``a.b``), each cut to ``MAX_ERROR_TEXT``; ``_schema`` for the
    arguments as a whole."""
    path = [str(p) for p in error["instance_path"]]
    members: list[Any] = []
    if error["kind"] == "Required":
        members = [error.get("property")]
    elif error["kind"] in ("AdditionalProperties", "UnevaluatedProperties"):
        members = list(error.get("unexpected") or [])
    named = [".".join([*path, str(member)]) for member in members if member is not None]
    return [field[:MAX_ERROR_TEXT] for field in named or [".".join(path) or "_schema"]]


def registered_tool(
    config: UpstreamConfig,
    separator: str,
    tool: Mapping[str, Any],
    forward: Forward,
    worker: SchemaWorker | None = None,
) -> RegisteredTool:
    """The upstream tool ``tool`` (as the upstream listed it: name, description, inputSchema,
    outputSchema, annotations, title) as a Skywarden tool; ``UnusableTool`` says why not.
    ``worker``: where its checks that may be slow are made (the connection's)."""
    upstream_name = tool.get("name")
    if not isinstance(upstream_name, str) or not upstream_name:  # "": the bare prefix as a tool name
        raise UnusableTool("it has no name")
    name = f"{config.name}{separator}{upstream_name}"
    if not TOOL_NAME.fullmatch(name):  # not match: its $ lets a final newline in
        raise UnusableTool(f"{name[:140]!r} is no valid tool name (letters, digits, _ . -; at most 128)")
    input_schema = tool.get("inputSchema")
    output_schema = tool.get("outputSchema")
    patterns = pattern_count(input_schema, output_schema)
    if patterns > MAX_TOOL_PATTERNS:
        raise UnusableTool(f"its schemas hold {patterns} patterns, more than {MAX_TOOL_PATTERNS}")
    input_check = UpstreamSchema(input_schema, compile_schema(input_schema, "input schema"), worker)
    output_check = None
    if output_schema is not None:
        output_check = UpstreamSchema(output_schema, compile_schema(output_schema, "output schema"), worker)
    description = tool.get("description") or ""
    title = tool.get("title") or upstream_name
    annotations = tool.get("annotations") or {}
    plugin = plugin_of(config)

    async def invoke(validated: dict[str, Any], context: Any) -> ToolResult:
        key = getattr(getattr(context, "principal", None), "id", "")
        if isinstance(validated, Unchecked):
            validated = dict(validated)
            try:
                error = await input_check.in_worker(validated, key)
            except (ValueError, TypeError, RecursionError):
                raise ArgumentsRejected({"_schema": [NOT_CHECKABLE]}) from None
            except CheckFailed as exc:
                log.warning("upstream tool arguments not checked", tool=name, reason=str(exc))
                return error_result(f"The arguments for {name} could not be checked against its input schema: {exc}.")
            if error is not None:
                raise ArgumentsRejected(argument_errors(error))
        result = await forward(upstream_name, validated, context)
        if output_check is None or result.is_error or result.structured is None:
            return result  # one without the structured part it owes is refused by ``shape``
        return await checked_result(result, output_check, config.name, name, key)

    return RegisteredTool(
        name=name,
        title=str(title)[:MAX_DESCRIPTION],
        description=str(description)[:MAX_DESCRIPTION],
        tool=dict(tool),
        arguments_schema=JsonSchemaArguments(input_check),
        result_schema=None,
        input_schema=dict(input_schema) if isinstance(input_schema, dict) else {},
        output_schema=dict(output_schema) if output_schema is not None else None,
        distribution=plugin.distribution,
        plugin=plugin.name,
        scopes=upstream_scopes(config.name, separator),
        annotations={
            k: annotations[k] for k in ANNOTATION_FIELDS if isinstance(annotations, dict) and k in annotations
        },
        owner=plugin,
        upstream=config.name,
        invoke=invoke,
        shape=ResultShape(output_schema, None, False, checked_in_call=True) if output_check else PASSED_ON,
    )


PASSED_ON = ResultShape(None, None, False)  # no output schema: the result as it came


async def checked_result(result: ToolResult, check: UpstreamSchema, upstream: str, tool: str, key: str) -> ToolResult:
    """``result`` when its structured part matches the output schema; ``ResultMismatch`` (the
    pipeline's refusal) when it does not; an error result when it could not be checked (``key``:
    the caller's, whose checks the worker takes in turn)."""
    try:
        error = await check.first_error(result.structured, key)
    except (ValueError, TypeError, RecursionError):
        raise ResultMismatch(whole_value("not JSON")) from None
    except CheckFailed as exc:
        log.warning("upstream result not checked", upstream=upstream, tool=tool, reason=str(exc))
        return error_result(f"The result of {tool} could not be checked against its output schema: {exc}.")
    if error is not None:
        raise ResultMismatch([failure(error)])
    return result


# The most Skywarden's JSON of a result can exceed the upstream's by: strings and integers are
# written no longer than they were read, a float may be longer (``1e15`` is written as
# ``1000000000000000.0``, 4.5 times its size), and the result's two members add their names.
MAX_GROWTH = 5
MEMBER_NAMES = 64


def bounded_result(result: ToolResult, limit: int, upstream: str, read: int | None = None) -> ToolResult:
    """``result`` when its JSON fits in ``limit`` bytes; else an error result that says so.
    ``read``: the size of the answer it came in, which spares writing it when even the most that
    answer could grow to fits."""
    if read is not None and read * MAX_GROWTH + MEMBER_NAMES <= limit:
        return result
    size = len(dumps({"content": result.content, "structuredContent": result.structured}))
    if size <= limit:
        return result
    log.warning("upstream result too large", upstream=upstream, bytes=size, limit=limit)
    return error_result(f"The upstream {upstream} answered with {size} bytes, more than its limit of {limit}.")


def error_result(text: str) -> ToolResult:
    return ToolResult(content=[{"type": "text", "text": text}], is_error=True)
