"""OpenAPI 3 document and the offline Swagger UI (aiohttp-apigami)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import AiohttpApiSpec, OpenApiVersion
from aiohttp_apigami.constants import SWAGGER_DICT
from aiohttp_apigami.swagger_ui import SWAGGER_UI_STATIC_FILES

from skywarden.server import __version__
from skywarden.server.appkeys import REGISTRY
from skywarden.server.http.paths import DOCS_PATH, DOCS_STATIC_PATH, MCP_PATH, SPEC_PATH

SPEC_URL = SPEC_PATH
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

SECURITY_SCHEMES = {
    "ApiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "ApiKeyBearer": {"type": "http", "scheme": "bearer", "description": "An API key as a Bearer token"},
    "AdminToken": {"type": "http", "scheme": "bearer", "description": "The admin token (admin routes only)"},
    "MetricsToken": {"type": "http", "scheme": "bearer", "description": "The read-only metrics token (/metrics)"},
}


def setup_openapi(app: web.Application) -> AiohttpApiSpec:
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
    spec.register(app, in_place=False)
    app.on_startup.append(_finish_document)
    app.router.add_get(UI_PATH, _ui_page)
    app.router.add_get(UI_PATH + "/init.js", _ui_init)
    app.router.add_static(STATIC_PATH, SWAGGER_UI_STATIC_FILES)
    return spec


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


async def _finish_document(app: web.Application) -> None:
    """Drop Swagger-2-only keys apigami adds; document each tool as its own operation."""
    doc: dict[str, Any] = app[SWAGGER_DICT]
    for operations in doc["paths"].values():
        for operation in operations.values():
            operation.pop("produces", None)
            operation.pop("consumes", None)
    _document_mcp(doc)
    generic = doc["paths"].get("/api/mcp/tools/{toolName}", {}).get("post", {})
    for tool in app[REGISTRY]:
        operation = {
            **generic,
            "summary": tool.title,
            "description": tool.description,
            "operationId": f"call_{tool.name}",
            "parameters": [],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": openapi30_schema(tool.input_schema)}},
            },
        }
        doc["paths"][f"/api/mcp/tools/{tool.name}"] = {"post": operation}


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


def openapi30_schema(schema: Any) -> Any:
    """JSON Schema 2020-12 numeric exclusive bounds -> the OpenAPI 3.0 boolean form."""
    if isinstance(schema, list):
        return [openapi30_schema(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    result = {key: openapi30_schema(value) for key, value in schema.items()}
    for bound, plain in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
        value = result.get(bound)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            result[plain] = value
            result[bound] = True
    return result
