"""OpenAPI 3 document and the offline Swagger UI (aiohttp-apigami)."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import AiohttpApiSpec, OpenApiVersion
from aiohttp_apigami.constants import SWAGGER_DICT
from skywarden.server import __version__
from skywarden.server.appkeys import REGISTRY

SPEC_URL = "/api/docs/openapi.json"
UI_PATH = "/api/docs"
STATIC_PATH = "/api/docs/static"

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
}


def setup_openapi(app: web.Application) -> AiohttpApiSpec:
    spec = AiohttpApiSpec(
        url=SPEC_URL,
        swagger_path=UI_PATH,
        static_path=STATIC_PATH,
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
    app.on_startup.append(_add_tool_paths)
    return spec


async def _add_tool_paths(app: web.Application) -> None:
    """Document each registered tool as its own operation, with its real schemas."""
    doc: dict[str, Any] = app[SWAGGER_DICT]
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
