"""OpenAPI 3 document and the offline Swagger UI (aiohttp-apigami)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Set
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeGuard

import structlog
from aiohttp import web
from aiohttp_apigami import AiohttpApiSpec, OpenApiVersion
from aiohttp_apigami.route_processor import RouteProcessor
from aiohttp_apigami.swagger_ui import SWAGGER_UI_STATIC_FILES

from skywarden.server import __version__
from skywarden.server.http.assets import asset_handler
from skywarden.server.http.paths import DOCS_PATH, DOCS_STATIC_PATH, HEALTH_PATHS, MCP_PATH, SPEC_PATH, TOOL_CALL_PATH
from skywarden.server.http.problems import PROBLEM
from skywarden.server.http.routes import PUBLIC, Access, Door, Rule, add_route, rule_of_resource
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.model import RegisteredTool
from skywarden.server.plugins.registry import ToolRegistry

log = structlog.get_logger("skywarden.openapi")

SPEC_URL = SPEC_PATH
TOOL_PATH_PREFIX = TOOL_CALL_PATH.rsplit("/", 1)[0] + "/"
UI_PATH = DOCS_PATH
STATIC_PATH = DOCS_STATIC_PATH

PROBLEM_SCHEMA = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "request_id": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"field": {"type": "string"}, "messages": {"type": "array", "items": {"type": "string"}}},
            },
        },
    },
}

# The public document is read by anyone, and an upstream writes its tools' schemas: one upstream
# tool's operation is at most MAX_OPERATION_BYTES, all of theirs MAX_TOOL_BYTES; a tool past
# either is left out of the document (it is still called at the generic operation).
MAX_OPERATION_BYTES = 256 * 1024
MAX_TOOL_BYTES = 8 * 1024 * 1024
UNDOCUMENTED_NOTE = (
    " {count} tools are not documented here, to keep this document small or because their schemas"
    " cannot be shown; a key lists the tools it may call, with their schemas, at GET {listing}."
)

SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "An API key as a Bearer token"},
    "AdminToken": {"type": "http", "scheme": "bearer", "description": "The admin token (admin routes only)"},
    "MetricsToken": {"type": "http", "scheme": "bearer", "description": "The read-only metrics token (/metrics)"},
}


@dataclass
class ToolDocs:
    """The public OpenAPI document, made when it is first asked for (most servers never are),
    with each tool as an operation of its own (``POST /api/mcp/tools/<name>``); those are made
    again after the tools change (``refresh``: an upstream's tools come and go while the server
    runs)."""

    app: web.Application
    tools: ToolRegistry
    spec: AiohttpApiSpec
    upstream_tools: bool = False  # upstream tools too (``openapi_upstream_tools``): the document is public
    _document: dict[str, Any] | None = None
    _encoded: bytes | None = None  # the document as JSON, made once per change of tools
    _tools_stale: bool = True
    _description: str = ""  # info.description as configured, before any note of tools left out
    _refused: set[str] = field(default_factory=set)  # tools whose operation could not be made, last time
    # the generic call's operation, before the request path's answers: each tool's starts from it
    _generic: dict[str, Any] = field(default_factory=dict)
    _rule: Rule | None = None

    def document(self) -> dict[str, Any]:
        if self._document is None:
            self._document = self._finished_document()
            self._description = self._document["info"].get("description", "")
        if self._tools_stale:
            self._document_tools(self._document)
            self._tools_stale = False
            self._encoded = None
        return self._document

    def encoded(self) -> bytes:
        """The document as JSON: written once per change of tools, not once per request."""
        document = self.document()
        if self._encoded is None:
            self._encoded = dumps(document)
        return self._encoded

    def refresh(self) -> None:
        self._tools_stale = True

    def _finished_document(self) -> dict[str, Any]:
        """apigami's document of the routes, without its Swagger-2-only keys, with what the request
        path answers on every operation."""
        RouteProcessor(self.spec.spec).register_routes(self.app)
        doc = self.spec.swagger_dict()
        for operations in doc["paths"].values():
            for operation in operations.values():
                operation.pop("produces", None)
                operation.pop("consumes", None)
        _document_mcp(doc)
        doc["components"]["schemas"]["JsonRpcError"] = JSON_RPC_ERROR
        self._generic = copy.deepcopy(doc["paths"].get(TOOL_CALL_PATH, {}).get("post", {}))
        rules = {r.canonical: rule for r in self.app.router.resources() if (rule := rule_of_resource(r)) is not None}
        self._rule = rules[TOOL_CALL_PATH]
        for path, operations in doc["paths"].items():
            for method, operation in operations.items():
                _document_request_path(path, method, operation, rules[path])
        return doc

    def _document_tools(self, doc: dict[str, Any]) -> None:
        """Each tool as an operation of its own. A tool whose operation cannot be made (an
        upstream's schema of a shape this code does not expect), or would outgrow the bounds, is
        left out: the document stays whole for every other tool."""
        assert self._rule is not None
        paths, schemas = doc["paths"], doc["components"]["schemas"]
        for path in [p for p in paths if p.startswith(TOOL_PATH_PREFIX) and p != TOOL_CALL_PATH]:
            del paths[path]
        for name in [n for n in schemas if n.startswith(TOOL_SCHEMA_PREFIX)]:
            del schemas[name]
        left_out, budget = 0, MAX_TOOL_BYTES
        refused: set[str] = set()  # this time; logged unless the last time refused them too
        for tool in self.tools:
            if tool.upstream is not None and not self.upstream_tools:
                continue
            try:
                operation, definitions = self._operation(tool, schemas.keys())
                size = len(dumps(operation)) + len(dumps(definitions))
            except Exception as exc:  # a schema's shape; the tool is still called at the generic operation
                left_out += 1
                refused.add(tool.name)
                if tool.name not in self._refused:
                    log.warning("tool left out of the OpenAPI document", tool=tool.name, error=type(exc).__name__)
                continue
            if tool.upstream is not None:  # a plugin's tools are this server's own: always documented
                if size > MAX_OPERATION_BYTES or size > budget:
                    left_out += 1
                    continue
                budget -= size
            paths[f"{TOOL_PATH_PREFIX}{tool.name}"] = {"post": operation}
            schemas.update(definitions)
        self._refused = refused
        note = UNDOCUMENTED_NOTE.format(count=left_out, listing=TOOL_PATH_PREFIX.rstrip("/")) if left_out else ""
        doc["info"]["description"] = self._description + note

    def _operation(self, tool: RegisteredTool, taken: Set[str]) -> tuple[dict[str, Any], dict[str, Any]]:
        """The operation of one tool, and the definitions its schemas refer to (``$defs``, moved
        to the document's components under the tool's name)."""
        assert self._rule is not None
        definitions: dict[str, Any] = {}
        named = f"{TOOL_SCHEMA_PREFIX}{tool.name}"
        input_schema = published_schema(tool.input_schema, f"{named}.in", definitions, taken)
        operation = {
            **copy.deepcopy(self._generic),
            "summary": tool.title,
            "description": tool.description,
            "operationId": f"call_{tool.name}",
            "parameters": [],
            "requestBody": {"required": True, "content": {"application/json": _tool_body(input_schema)}},
        }
        if tool.output_schema is not None:
            output_schema = published_schema(tool.output_schema, f"{named}.out", definitions, taken)
            operation["responses"] = _with_output_schema(operation.get("responses", {}), output_schema)
        _document_request_path(f"{TOOL_PATH_PREFIX}{tool.name}", "post", operation, self._rule)
        return operation, {name: openapi30_schema(definition) for name, definition in definitions.items()}


def setup_openapi(app: web.Application, tools: ToolRegistry, upstream_tools: bool = False) -> ToolDocs:
    """The public OpenAPI document and Swagger UI. Each plugin tool is an operation of its own;
    an upstream's tool (an operator's or an admin's server, perhaps internal) only with
    ``upstream_tools``: otherwise it is called through the generic operation, and a key lists
    the ones it may call at ``GET /api/mcp/tools``."""
    spec = AiohttpApiSpec(
        url=SPEC_URL,
        swagger_path=None,
        title="Skywarden",
        version=__version__,
        openapi_version=OpenApiVersion.V303,
        info={"description": "Remote MCP tool server secured with API keys. MCP clients use POST /mcp."},
        security=[{"ApiKeyHeader": []}, {"ApiKeyBearer": []}],
    )
    spec.spec.components.schema("Problem", PROBLEM_SCHEMA)
    for name, scheme in SECURITY_SCHEMES.items():
        spec.spec.components.security_scheme(name, scheme)
    docs = ToolDocs(app, tools, spec, upstream_tools)

    async def openapi_document(request: web.Request) -> web.Response:
        return web.Response(body=docs.encoded(), content_type="application/json")

    add_route(app, "GET", SPEC_URL, openapi_document, rule=PUBLIC, allow_head=True)
    add_route(app, "GET", UI_PATH, _ui_page, rule=PUBLIC, allow_head=True)
    add_route(app, "GET", UI_PATH + "/init.js", _ui_init, rule=PUBLIC, allow_head=True)
    ui_assets = asset_handler(Path(SWAGGER_UI_STATIC_FILES), UI_ASSETS, {})
    add_route(app, "GET", STATIC_PATH + "/{name}", ui_assets, rule=PUBLIC, allow_head=True)
    return docs


UI_ASSETS = {  # the Swagger UI files the page below uses
    "swagger-ui.css": "text/css",
    "favicon-32x32.png": "image/png",
    "swagger-ui-bundle.js": "text/javascript",
    "swagger-ui-standalone-preset.js": "text/javascript",
}

# Our own page around the Swagger UI assets bundled with aiohttp-apigami: no inline script (so the
# CSP needs no 'unsafe-inline' for scripts) and no online validator badge, so nothing leaves the machine.
_UI_HTML = f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8"><title>Skywarden API</title>
<link rel="stylesheet" type="text/css" href="{STATIC_PATH}/swagger-ui.css">
<link rel="icon" type="image/png" href="{STATIC_PATH}/favicon-32x32.png" sizes="32x32">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{STATIC_PATH}/swagger-ui-bundle.js"></script>
<script src="{STATIC_PATH}/swagger-ui-standalone-preset.js"></script>
<script src="{UI_PATH}/init.js"></script>
</body>
</html>
"""

_UI_INIT = f"""window.onload = function () {{
  window.ui = SwaggerUIBundle({{
    url: "{SPEC_URL}",
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIStandalonePreset],
    layout: "StandaloneLayout"
  }});
}};
"""


async def _ui_page(request: web.Request) -> web.Response:
    return web.Response(text=_UI_HTML, content_type="text/html")


async def _ui_init(request: web.Request) -> web.Response:
    return web.Response(text=_UI_INIT, content_type="application/javascript")


# What the steps before a handler may answer (docs/architecture.md, "The request path"): every
# operation documents these, so a handler lists only the answers of its own.
EVERY_ROUTE = {
    400: "A request header that cannot be read",
    403: "Refused at the edge: a Host not in allowed_hosts (at /mcp also an Origin not allowed), "
    "or plain HTTP under require_https",
    413: "The announced body (Content-Length) is larger than max_body_bytes",
}
HTTPS_REDIRECT = {308: "Plain HTTP under require_https: the same request at its https:// address (Location)"}
AUTHENTICATED = {
    400: "A credential in the URL, or both X-API-Key and Authorization",
    401: "Missing or invalid credential",
    429: "Too many requests: the key's rate limit, or too many wrong (or missing) credentials from this "
    "address; see Retry-After",
    503: "A dependency cannot be reached: the key store, Redis (the rate limiter with "
    "rate_limit_when_unavailable=closed, MCP sessions, recent denials) or an identity provider; see Retry-After",
}
REQUEST_ID_HEADER = {
    "description": "The request's id: the client's X-Request-ID when it is 1-128 safe characters, else a new one",
    "required": True,
    "schema": {"type": "string"},
}
RETRY_AFTER_HEADER = {"description": "Seconds to wait before trying again", "schema": {"type": "string"}}
RATE_LIMIT_HEADERS = {
    "RateLimit-Policy": {"description": "Each window of the limit (IETF draft)", "schema": {"type": "string"}},
    "RateLimit": {"description": "What each window has left and when it frees a unit", "schema": {"type": "string"}},
}
JSON_RPC_ERROR = {
    "type": "object",
    "description": "A JSON-RPC 2.0 error object (the /mcp door's answer to a refusal)",
    "required": ["jsonrpc", "id", "error"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"description": "The request's id, or null when the body was not read"},
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "integer"}, "message": {"type": "string"}, "data": {}},
        },
    },
}
JSON_RPC_CONTENT = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/JsonRpcError"}}}}


# The credentials each access rule takes, as the document names them; a KEY route keeps the
# document's default (an API key or an access token, in either header).
SECURITY_OF: dict[Access, list[dict[str, list[str]]]] = {
    Access.PUBLIC: [],
    Access.ADMIN: [{"AdminToken": []}],
    Access.METRICS: [{"AdminToken": []}, {"MetricsToken": []}],
}


def _document_request_path(path: str, method: str, operation: dict[str, Any], rule: Rule) -> None:
    """Add what the request path answers to one operation of a route with ``rule``: the
    credentials the rule takes (from the rule alone, so the document cannot say otherwise than
    authentication does), and statuses with their body and headers; a status the handler
    documents too keeps the handler's text, with the request path's added. Only a route for a key
    (or access token) is metered."""
    operation.pop("security", None)
    if rule.access in SECURITY_OF:
        operation["security"] = SECURITY_OF[rule.access]
    answers = dict(EVERY_ROUTE)
    if method in ("get", "head") and path not in HEALTH_PATHS:
        answers.update(HTTPS_REDIRECT)
    if rule.access is not Access.PUBLIC:
        for status, text in AUTHENTICATED.items():
            answers[status] = f"{answers[status]}; {text[0].lower()}{text[1:]}" if status in answers else text
    responses = {str(status): dict(response) for status, response in operation.get("responses", {}).items()}
    for status, text in answers.items():
        response = responses.get(str(status))
        if response is None:
            responses[str(status)] = {"description": text}
        elif text not in response.get("description", ""):
            own = response.get("description", "").rstrip(".")
            response["description"] = f"{own}; or {text[0].lower()}{text[1:]}" if own else text
    for code, response in responses.items():
        headers = {**response.get("headers", {}), "X-Request-ID": REQUEST_ID_HEADER}
        if code in ("429", "503"):
            headers["Retry-After"] = {**RETRY_AFTER_HEADER, "required": code == "429"}
        if rule.access is Access.KEY and (code.startswith("2") or code == "429"):
            headers.update(RATE_LIMIT_HEADERS)
        response["headers"] = headers
        if int(code) >= 400:
            response.update(JSON_RPC_CONTENT if rule.door is Door.JSON_RPC else PROBLEM)
    operation["responses"] = dict(sorted(responses.items()))


JSON_RPC_MESSAGE = {
    "type": "object",
    "required": ["jsonrpc"],
    "properties": {
        "jsonrpc": {"type": "string", "enum": ["2.0"]},
        "id": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
        "method": {"type": "string", "example": "tools/list"},
        "params": {"type": "object", "additionalProperties": True},
        "result": {"type": "object", "additionalProperties": True},
        "error": {"type": "object", "additionalProperties": True},
    },
}
JSON_RPC_BATCH = {"type": "array", "items": JSON_RPC_MESSAGE}
MCP_HEADERS = [
    ("MCP-Protocol-Version", "The revision: absent or 2025-03-26 .. 2025-11-25 (handshake), 2026-07-28 (stateless)"),
    ("Mcp-Session-Id", "The session (handshake revisions, after initialize)"),
    ("Mcp-Method", "2026-07-28: the JSON-RPC method"),
    ("Mcp-Name", "2026-07-28: params.name of tools/call"),
]


def _document_mcp(doc: dict[str, Any]) -> None:
    """/mcp: POST (a JSON-RPC message as the body), DELETE (end a session) and GET (405: this
    server never opens a server-initiated stream)."""
    operations = doc["paths"].get(MCP_PATH, {})
    parameters = [
        {"in": "header", "name": name, "required": False, "schema": {"type": "string"}, "description": text}
        for name, text in MCP_HEADERS
    ]
    for method, operation in operations.items():
        operation["parameters"] = parameters
        operation["operationId"] = f"mcp_{method}"
    if "get" in operations:
        operations["get"]["summary"] = "Not used: 405 with Allow (no server-initiated stream)"
    if "post" in operations:
        operations["post"]["requestBody"] = {
            "required": True,
            "description": "One JSON-RPC message, or a batch (an array) at 2025-03-26",
            "content": {
                "application/json": {
                    "schema": {"oneOf": [JSON_RPC_MESSAGE, {"type": "array", "items": JSON_RPC_MESSAGE}]}
                }
            },
        }


def _with_output_schema(responses: dict[str, Any], output_schema: dict[str, Any]) -> dict[str, Any]:
    """The generic call's answers, its 200 saying what ``structuredContent`` holds for this tool."""
    ok = next((answer for status, answer in responses.items() if str(status) == "200"), None)  # int or str keys
    if not isinstance(ok, dict):
        return responses
    generic = ok.get("content", {}).get("application/json", {}).get("schema", {})
    structured = {"type": "object", "properties": {"structuredContent": openapi30_schema(output_schema)}}
    content = {"application/json": {"schema": {"allOf": [generic, structured]}}}
    return {**{k: v for k, v in responses.items() if str(k) != "200"}, "200": {**ok, "content": content}}


def _tool_body(input_schema: dict[str, Any]) -> dict[str, Any]:
    """A tool's request body: its arguments' schema, and an example made of its properties' own
    first examples when every required one has one (what Swagger UI fills in). An upstream's
    schema may hold any JSON where a schema goes (``true``, examples that are no list)."""
    body: dict[str, Any] = {"schema": openapi30_schema(input_schema)}
    properties = input_schema.get("properties")
    required = input_schema.get("required")
    example = {
        name: prop["examples"][0]
        for name, prop in (properties.items() if isinstance(properties, dict) else ())
        if isinstance(prop, dict) and isinstance(prop.get("examples"), list) and prop["examples"]
    }
    if example and isinstance(required, list) and all(name in example for name in required):
        body["example"] = example
    return body


TOOL_SCHEMA_PREFIX = "tool."  # the components a tool's ``$defs`` are moved to: tool.<name>.in.<def>
_DEFINITIONS = ("$defs", "definitions")
_COMPONENT_NAME = re.compile(r"[^A-Za-z0-9._-]")


def published_schema(
    schema: dict[str, Any], prefix: str, definitions: dict[str, Any], taken: Set[str] = frozenset()
) -> dict[str, Any]:
    """``schema`` as the document can show it. Its local definitions (``$defs``, ``definitions``)
    become components named ``<prefix>.<name>`` (added to ``definitions``; ``.2``, ``.3``... after
    a name already ``taken`` or given, so no tool's definition ever stands for another's), and a
    reference to one (``#/$defs/Item``) points there; any other reference (``#``, another part
    of the document, a URL) is dropped, so the document never points outside the tool's own
    schema."""
    found: dict[str, str] = {}
    given = set(definitions)
    numbers: dict[str, int] = {}  # the last number tried after each name: each name is tried once
    for key in _DEFINITIONS:
        for name in schema[key] if isinstance(schema.get(key), dict) else ():
            base = component = f"{prefix}.{_COMPONENT_NAME.sub('_', name)}"
            while component in taken or component in given:
                numbers[base] = numbers.get(base, 1) + 1
                component = f"{base}.{numbers[base]}"
            given.add(component)
            found[f"#/{key}/{name}"] = component
    for key in _DEFINITIONS:
        for name, definition in schema[key].items() if isinstance(schema.get(key), dict) else ():
            definitions[found[f"#/{key}/{name}"]] = _with_refs(definition, found)
    published: dict[str, Any] = _with_refs({k: v for k, v in schema.items() if k not in _DEFINITIONS}, found)
    return published


def _with_refs(node: Any, found: dict[str, str]) -> Any:
    if isinstance(node, list):
        return [_with_refs(item, found) for item in node]
    if not isinstance(node, dict):
        return node
    result = {key: _with_refs(value, found) for key, value in node.items() if key != "$ref"}
    ref = node.get("$ref")
    if isinstance(ref, str):
        target = found.get(ref)
        if target is not None:
            result["$ref"] = f"#/components/schemas/{target}"
    elif "$ref" in node:  # a property named "$ref": a name, not a reference
        result["$ref"] = _with_refs(ref, found)
    return result


# What an OpenAPI 3.0 Schema Object may hold: keywords whose value is a schema, a list or a map of
# them, and keywords kept as they are when their value has the type 3.0 wants. Any other keyword
# of JSON Schema 2020-12 (or of an upstream's draft: ``$schema``, ``$id``, ``prefixItems``, ``if``...)
# is left out.
_SUBSCHEMA = ("not", "items")


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _flag(value: Any) -> bool:
    return isinstance(value, bool)


def _json(value: Any) -> bool:
    return True


_PLAIN: dict[str, Callable[[Any], bool]] = {  # kept as they are when their value passes
    "title": _text, "description": _text, "format": _text, "pattern": _text, "$ref": _text,
    "default": _json, "example": _json,
    "multipleOf": _number, "maximum": _number, "minimum": _number,
    "maxLength": _count, "minLength": _count, "maxItems": _count, "minItems": _count,
    "maxProperties": _count, "minProperties": _count,
    "uniqueItems": _flag, "readOnly": _flag, "writeOnly": _flag, "deprecated": _flag,
}  # fmt: skip
_TYPES = frozenset({"array", "boolean", "integer", "number", "object", "string"})
_NULL = {"enum": [None], "nullable": True}  # null alone, in 3.0's terms


def openapi30_schema(schema: Any) -> dict[str, Any]:
    """JSON Schema 2020-12 -> OpenAPI 3.0: numeric exclusive bounds in the boolean form (the
    stricter of them and ``minimum``/``maximum``), ``examples`` (a list) as the one ``example``
    3.0 knows, ``const`` as a one-value ``enum``, null as ``nullable`` on the typed schemas that
    take it (in a type list, as a type of its own, as an ``anyOf``/``oneOf`` member, in an
    ``enum``), several types as ``anyOf``, a boolean schema as ``{}`` or ``{"not": {}}``, and only
    what 3.0 knows kept. An upstream writes any JSON where a schema goes: what is no schema is
    shown as ``{}``, any value."""
    if schema is False:
        return {"not": {}}
    if not isinstance(schema, dict):
        return {}
    result: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _PLAIN:
            if _PLAIN[key](value):
                result[key] = value
        elif key.startswith("x-"):
            result[key] = value
        elif key == "nullable" and isinstance(value, bool):
            result[key] = value or result.get(key, False)
        elif key in _SUBSCHEMA and isinstance(value, dict | bool):
            result[key] = openapi30_schema(value)
        elif key == "allOf" and isinstance(value, list) and value:
            result[key] = [openapi30_schema(item) for item in value]
        elif key in ("anyOf", "oneOf") and isinstance(value, list) and value:
            result[key] = _choices(value, key)
        elif key == "properties" and isinstance(value, dict):
            result[key] = {name: openapi30_schema(item) for name, item in value.items()}
        elif key == "additionalProperties" and isinstance(value, dict | bool):
            result[key] = value if isinstance(value, bool) else openapi30_schema(value)
        elif key == "required" and isinstance(value, list) and value and all(isinstance(v, str) for v in value):
            result[key] = value
        elif key in ("enum", "const"):
            choices = value if key == "enum" else [value]
            if isinstance(choices, list) and choices:
                result["enum"] = choices
                if None in choices:
                    result["nullable"] = True
        elif key == "examples" and isinstance(value, list) and value:
            result.setdefault("example", value[0])
    _type_into(result, schema.get("type"))
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        _bound_into(result, schema, bound, plain)
    return result


def _only_null(schema: Any) -> bool:
    return isinstance(schema, dict) and schema.get("type") == "null" and len(schema) == 1


def _choices(members: list[Any], key: str) -> list[dict[str, Any]]:
    """``anyOf``/``oneOf`` members in 3.0's terms. A null member is not one in 3.0: the typed
    members take null instead (``nullable`` works only beside a ``type``); with none typed, or
    nothing but null, null stays a member of its own (``enum: [null]``)."""
    shown = [openapi30_schema(item) for item in members if not _only_null(item)]
    if len(shown) == len(members):
        return shown
    typed = [item for item in shown if "type" in item]
    if not typed:
        return [*shown, dict(_NULL)]
    for item in typed[:1] if key == "oneOf" else typed:  # oneOf: null matches exactly one member
        item["nullable"] = True
    return shown


def _type_into(result: dict[str, Any], kinds: Any) -> None:
    named = [kinds] if isinstance(kinds, str) else kinds if isinstance(kinds, list) else []
    known = [kind for kind in named if kind in _TYPES]
    null = "null" in named
    if len(known) == 1:
        result["type"] = known[0]
        if null:
            result["nullable"] = True
    elif len(known) > 1:  # several types: one of them (each taking null when the list does)
        each = [{"type": kind, **({"nullable": True} if null else {})} for kind in known]
        if "anyOf" in result:  # the schema's own anyOf too: both hold
            result["allOf"] = [*result.get("allOf", []), {"anyOf": each}]
        else:
            result["anyOf"] = each
    elif null:  # null alone
        result.update(_NULL)


def _bound_into(result: dict[str, Any], schema: dict[str, Any], bound: str, plain: str) -> None:
    """``minimum``/``maximum`` with 3.0's boolean ``exclusive*``: the stricter of an inclusive
    and a numeric exclusive bound (``exclusiveMinimum: 5, minimum: 0`` is x > 5), whatever their
    order; draft 4's boolean form as it is."""
    value, inclusive = schema.get(bound), schema.get(plain)
    if isinstance(value, bool):
        if _number(inclusive):
            result[bound] = value
        return
    if not _number(value):
        return
    lower = bound == "exclusiveMinimum"
    if _number(inclusive) and ((inclusive > value) if lower else (inclusive < value)):  # the inclusive is stricter
        result.pop(bound, None)
        return
    result[plain] = value
    result[bound] = True
