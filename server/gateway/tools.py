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

import jsonschema_rs
import marshmallow
import structlog

from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.json_schema import first_error
from skywarden.server.plugins.model import TOOL_NAME, PluginInfo, RegisteredTool
from skywarden.server.plugins.results import ResultShape
from skywarden.server.upstreams import UpstreamConfig, upstream_scopes
from skywarden.tools.contract import ToolResult

log = structlog.get_logger("skywarden.gateway")

MAX_ERRORS_SHOWN = 10
MAX_ERROR_TEXT = 200
NOT_CHECKABLE = "Arguments are not JSON the tool's schema can check."
MAX_DESCRIPTION = 4000
# What an upstream may annotate a tool with: MCP's annotation fields, nothing else.
ANNOTATION_FIELDS = ("title", "readOnlyHint", "destructiveHint", "idempotentHint", "openWorldHint")

# An upstream writes the regular expressions of its schemas (``pattern``, ``patternProperties``)
# and, for its results, the strings they are matched against. Unbounded, one pattern such as
# ``[a-y]{20000}[0-9]`` held the event loop for seconds per string checked, and a backreference
# backtracks without end. So patterns are compiled within these bounds: a compiled program of at
# most PATTERN_BYTES (a repetition such as ``{2500}`` of a small class still fits, and matches
# 1 MB in about 30 ms), a lazy DFA cache large enough for any such program, and at most
# BACKTRACK_STEPS for the backtracking features (lookaround, backreferences), past which a
# string does not match. A pattern over the bound leaves its tool out, saying so.
PATTERN_BYTES = 200_000
PATTERN_DFA_BYTES = 10_000_000
BACKTRACK_STEPS = 10_000
PATTERNS = jsonschema_rs.FancyRegexOptions(
    backtrack_limit=BACKTRACK_STEPS, size_limit=PATTERN_BYTES, dfa_size_limit=PATTERN_DFA_BYTES
)
# A compiled pattern near the bound holds about 110 KB and takes 0.3 ms to make: the patterns of
# one tool (input and output schemas) and of one upstream's listing are bounded in number too.
MAX_TOOL_PATTERNS = 256
MAX_LISTING_PATTERNS = 2000


def pattern_count(*schemas: Any) -> int:
    """The regular expressions in ``schemas``: each ``pattern`` string and ``patternProperties``
    key, at any depth (a value that only looks like one, in an ``enum`` say, is counted too)."""
    count, stack = 0, list(schemas)
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            count += isinstance(node.get("pattern"), str)
            named = node.get("patternProperties")
            count += len(named) if isinstance(named, dict) else 0
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    return count


# (config, upstream tool name, validated arguments) -> the upstream's answer as a ToolResult
Forward = Callable[[str, dict[str, Any], Any], Awaitable[ToolResult]]


class UnusableTool(ValueError):
    """An upstream tool Skywarden cannot offer (its name or schemas); the tool is left out, logged."""


def plugin_of(config: UpstreamConfig) -> PluginInfo:
    """The plugin an upstream's tools belong to in the registry (their distribution names it)."""
    return PluginInfo(f"upstream:{config.name}", f"upstream:{config.name}", config.description or config.name)


class JsonSchemaArguments(marshmallow.Schema):
    """The pipeline's argument check for an upstream tool: its input JSON Schema, compiled once
    (offline: a remote ``$ref`` is never fetched). A refusal names the first error, by field as
    marshmallow gives them (``first_error``: asking for every error could cost gigabytes)."""

    def __init__(self, validator: Any) -> None:
        super().__init__()
        self._validator = validator

    def load(self, data: Any, **_: Any) -> Any:  # a schema of JSON, not of fields
        try:
            if self._validator.is_valid(data):
                return dict(data)
            error = first_error(self._validator, data)
        except (ValueError, TypeError, RecursionError):
            raise marshmallow.ValidationError({"_schema": [NOT_CHECKABLE]}) from None
        if error is None:  # never expected: is_valid said otherwise
            return dict(data)
        fields = _fields_of(error)[:MAX_ERRORS_SHOWN]
        raise marshmallow.ValidationError({field: [error.message[:MAX_ERROR_TEXT]] for field in fields})


def _fields_of(error: Any) -> list[str]:
    """The fields an error of the input schema is about: where it was found, and for a missing or
    unexpected member that member (``a.b``), each cut to ``MAX_ERROR_TEXT``; ``_schema`` for the
    arguments as a whole."""
    path = [str(p) for p in error.instance_path]
    kind = type(error.kind).__name__
    members: list[Any] = []
    if kind == "Required":
        members = [error.kind.as_dict().get("property")]
    elif kind in ("AdditionalProperties", "UnevaluatedProperties"):
        members = list(error.kind.as_dict().get("unexpected") or [])
    named = [".".join([*path, str(member)]) for member in members if member is not None]
    return [field[:MAX_ERROR_TEXT] for field in named or [".".join(path) or "_schema"]]


def compile_schema(schema: Any, what: str) -> Any:
    """The one place an upstream's schema is compiled: offline (a remote ``$ref`` is never
    fetched) and with its patterns bounded (``PATTERNS``)."""
    if not isinstance(schema, dict):
        raise UnusableTool(f"its {what} is not a JSON object")
    try:
        return jsonschema_rs.validator_for(schema, offline=True, pattern_options=PATTERNS)
    except (jsonschema_rs.ValidationError, ValueError) as exc:
        line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        first = line[:200]
        if line.endswith('is not a "regex"'):  # never compiled again unbounded to tell why: that is the cost
            first = f"{first} (invalid, or over the bound of {PATTERN_BYTES} bytes compiled)"
        raise UnusableTool(f"its {what} is not a JSON Schema Skywarden can check: {first}") from None


def registered_tool(
    config: UpstreamConfig, separator: str, tool: Mapping[str, Any], forward: Forward
) -> RegisteredTool:
    """The upstream tool ``tool`` (as the upstream listed it: name, description, inputSchema,
    outputSchema, annotations, title) as a Skywarden tool; ``UnusableTool`` says why not."""
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
    arguments = JsonSchemaArguments(compile_schema(input_schema, "input schema"))
    output_check = compile_schema(output_schema, "output schema") if output_schema is not None else None
    description = tool.get("description") or ""
    title = tool.get("title") or upstream_name
    annotations = tool.get("annotations") or {}
    plugin = plugin_of(config)

    async def invoke(validated: dict[str, Any], context: Any) -> ToolResult:
        return await forward(upstream_name, validated, context)

    return RegisteredTool(
        name=name,
        title=str(title)[:MAX_DESCRIPTION],
        description=str(description)[:MAX_DESCRIPTION],
        tool=dict(tool),
        arguments_schema=arguments,
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
        shape=ResultShape(output_schema, None, False, validator=output_check),
    )


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
