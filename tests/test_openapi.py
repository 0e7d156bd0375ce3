"""The OpenAPI document is valid OpenAPI 3 and Swagger UI works offline."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from openapi_spec_validator import validate


async def test_openapi_document_is_valid(client):
    resp = await client.get("/api/docs/openapi.json")
    assert resp.status == 200
    doc = await resp.json()
    validate(doc)
    assert doc["openapi"].startswith("3.")
    paths = doc["paths"]
    for path in (
        "/api/health",
        "/api/health/ready",
        "/api/mcp/tools",
        "/api/mcp/tools/{toolName}",
        "/mcp",
        "/metrics",
        "/api/admin/keys",
        "/api/admin/keys/{key_id}",
        "/api/admin/keys/{key_id}/rotate",
    ):
        assert path in paths
    call = paths["/api/mcp/tools/{toolName}"]["post"]
    assert {"200", "400", "401", "403", "404", "413", "415", "422", "429"} <= set(call["responses"])
    forecast = paths["/api/mcp/tools/get_forecast"]["post"]
    schema = forecast["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["latitude", "longitude"]
    key_scheme = doc["components"]["securitySchemes"]["ApiKeyHeader"]
    assert key_scheme == {"type": "apiKey", "in": "header", "name": "X-API-Key"}
    assert paths["/api/health"]["get"]["security"] == []


async def test_swagger_ui_loads_every_asset_from_this_server(client):
    page = await client.get("/api/docs")
    assert page.status == 200 and page.content_type == "text/html"
    html = await page.text()
    urls = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert len(urls) >= 4
    for url in urls:
        assert not urlsplit(url).netloc, f"{url} leaves the machine"
        asset = await client.get(url)
        assert asset.status == 200, url
    init = await (await client.get("/api/docs/init.js")).text()
    assert "validatorUrl: null" in init  # no badge request to validator.swagger.io
    assert "/api/docs/openapi.json" in init
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("script-src")[1].split(";")[0]
    assert "connect-src 'self'" in csp
