"""The OpenAPI document is valid OpenAPI 3 and Swagger UI works offline."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from openapi_spec_validator import validate

from skywarden.server.http.paths import ADMIN_PREFIX
from tests.support.admin import ADMIN_HEADERS, create_key
from tests.support.server_process import free_port


def is_admin(path: str) -> bool:
    return path.startswith(ADMIN_PREFIX + "/")


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


STATIC_ASKS = [  # conditional and range requests a file server would answer itself, bare
    {"If-Match": '"not-it"'},
    {"If-Unmodified-Since": "Thu, 01 Jan 1970 00:00:00 GMT"},
    {"If-None-Match": "*"},
    {"If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
    {"Range": "bytes=999999999-"},
    {"Range": "bytes=5-1"},
    {"If-Range": '"x"', "Range": "bytes=0-1"},
]


@pytest.mark.parametrize("asset", ["/api/docs/static/swagger-ui.css", "/admin/static/app.js"])
async def test_a_static_asset_is_answered_whole_or_refused_in_problem_json(client, asset):
    whole = await client.get(asset)
    body = await whole.read()
    assert whole.status == 200 and body
    for headers in STATIC_ASKS:
        resp = await client.get(asset, headers=headers)
        assert resp.status == 200 and await resp.read() == body, headers
    for missing in ("nope.js", "..%2Fsettings.py", "swagger-ui.css.map", "index.html"):
        resp = await client.get(asset.rsplit("/", 1)[0] + "/" + missing)
        assert resp.status == 404 and resp.content_type == "application/problem+json", missing


def _operations(doc: dict, key_id: str):
    """(method, concrete path, operation) for every operation of the document."""
    for template, operations in doc["paths"].items():
        path = template.replace("{toolName}", "get_forecast").replace("{key_id}", key_id).replace("{name}", "calc")
        for method, operation in operations.items():
            yield method.upper(), path, template, operation


def _documented(operation: dict, status: int) -> dict | None:
    return operation["responses"].get(str(status))


async def _send(client, method: str, path: str, headers: dict[str, str], body: bytes | None = None):
    if body is None and method in {"POST", "PATCH", "DELETE"}:
        body = b"{}"
    if body is not None:
        headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream", **headers}
    resp = await client.request(method, path, headers=headers, data=body, allow_redirects=False)
    await resp.read()
    return resp


# What the request path itself may answer on any operation, before or instead of its handler:
# (name, settings, request headers (None = the key's own), body, whether it applies to public routes).
PROVOCATIONS = [
    ("foreign Host", {}, {"Host": "evil.example"}, None, True),
    ("announced body too large", {"max_body_bytes": "1024"}, {}, b"{" + b" " * 2000 + b"}", True),
    ("plain HTTP under require_https", {"require_https": "true"}, {}, None, True),
    ("key in the URL", {}, "query", None, False),
    ("both credential headers", {}, {"Authorization": "Bearer skw_live_other"}, None, False),
    ("no credential", {}, {"X-API-Key": ""}, None, False),
    ("wrong credential", {}, {"X-API-Key": "skw_live_" + "Z" * 50}, None, False),
    ("too many wrong credentials", {"auth_failure_limit": "1/minute"}, "twice-wrong", None, False),
    ("key over its limit", {"rate_limit": "1/minute"}, "twice", None, False),
    pytest.param(  # waits out the connection attempts at every operation
        (
            "shared state unreachable",
            {"redis_url": "unreachable", "rate_limit_when_unavailable": "closed"},
            {},
            None,
            True,
        ),
        marks=pytest.mark.slow,
        id="shared state unreachable",
    ),
]


@pytest.mark.parametrize(
    "provocation", PROVOCATIONS, ids=[p[0] if isinstance(p, tuple) else p.id for p in PROVOCATIONS]
)
async def test_every_answer_of_the_request_path_is_documented_for_every_operation(
    make_server, make_settings, aiohttp_client, provocation
):
    """The document and the server agree on more than schemathesis reaches with one set of
    settings: every operation documents each status (with its content type and headers) that
    the steps before its handler can answer it with."""
    name, settings, headers, body, on_public = provocation
    admin = await aiohttp_client(await make_server(make_settings()), headers=ADMIN_HEADERS)
    key = await create_key(admin)
    if settings.get("redis_url") == "unreachable":
        settings = {**settings, "redis_url": f"redis://127.0.0.1:{free_port()}/0"}
    server = await make_server(make_settings(**settings))
    client = await aiohttp_client(server)
    doc = await (await admin.get("/api/docs/openapi.json")).json()
    checked, missing = 0, []
    for method, path, template, operation in _operations(doc, key["id"]):
        public = operation.get("security") == []
        if public and not on_public:
            continue
        credential = ADMIN_HEADERS if is_admin(path) or path == "/metrics" else {"X-API-Key": key["key"]}
        query = ""
        sent = dict(credential)
        if headers == "query":
            query = "?api_key=x"
        elif headers == "twice-wrong":
            sent = {"X-API-Key": "skw_live_" + "Z" * 50}
            await _send(client, method, path, sent, body)
        elif headers == "twice":
            await _send(client, method, path, sent, body)
        else:
            sent.update(headers)
            sent = {k: v for k, v in sent.items() if v}
        resp = await _send(client, method, path + query, sent, body)
        if resp.status < 300 or resp.status == 405:
            continue  # this provocation does not reach this operation (a public route, an unmetered one)
        checked += 1
        missing.extend(_disagreements(method, template, operation, resp))
    assert checked, f"{name} reached no operation"
    assert not missing, f"{name}: " + "; ".join(missing)


def _disagreements(method: str, template: str, operation: dict, resp) -> list[str]:
    """How an answer differs from what the document says of its status (none when they agree)."""
    where = f"{method} {template} {resp.status}"
    documented = _documented(operation, resp.status)
    if documented is None:
        return [f"{where} not documented"]
    found = [] if "X-Request-ID" in resp.headers else [f"{where} without X-Request-ID"]
    for header, spec in documented.get("headers", {}).items():
        if spec.get("required") and header not in resp.headers:
            found.append(f"{where} without {header}")
    if resp.status >= 400 and method != "HEAD" and resp.content_type not in documented.get("content", {}):
        found.append(f"{where} answers {resp.content_type}, documented {sorted(documented.get('content', {}))}")
    return found


def _resolved(doc: dict, node):
    """``node`` with every ``$ref`` into the document replaced by what it names."""
    if isinstance(node, list):
        return [_resolved(doc, item) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = doc
        for part in node["$ref"].removeprefix("#/").split("/"):
            target = target[part]
        return _resolved(doc, target)
    return {key: _resolved(doc, value) for key, value in node.items()}


def _examples(node, where: str = ""):
    """(where, example, schema) for every example in the document: a schema's own, and a media
    type's or parameter's (against its ``schema``)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            yield from _examples(item, f"{where}/{i}")
        return
    if not isinstance(node, dict):
        return
    if "example" in node:
        schema = node["schema"] if "schema" in node else {k: v for k, v in node.items() if k != "example"}
        yield where, node["example"], schema
    if isinstance(node.get("examples"), dict) and "schema" in node:
        for name, example in node["examples"].items():
            yield f"{where}/examples/{name}", example["value"], node["schema"]
    for key, value in node.items():
        yield from _examples(value, f"{where}/{key}")


async def test_every_example_in_the_document_validates_and_every_tool_example_works(client):
    """Swagger UI and schemathesis send the document's examples as they are: each must satisfy
    its schema, a tool's must pass the tool's own validation, and sent to the tool it answers
    (the weather tools' examples are places the NWS covers)."""
    from jsonschema import Draft202012Validator
    from openapi_schema_validator import OAS30Validator

    from skywarden.server.appkeys import REGISTRY

    doc = await (await client.get("/api/docs/openapi.json")).json()
    found = list(_examples(doc))
    for where, example, schema in found:
        errors = list(OAS30Validator(_resolved(doc, schema)).iter_errors(example))
        assert not errors, f"{where}: {example!r} does not validate: {errors[0].message}"
    tools_with_examples = 0
    for tool in client.server.app[REGISTRY]:
        body = doc["paths"][f"/api/mcp/tools/{tool.name}"]["post"]["requestBody"]["content"]["application/json"]
        if "example" not in body:
            continue
        tools_with_examples += 1
        example = body["example"]
        assert not list(Draft202012Validator(tool.input_schema).iter_errors(example)), tool.name
        assert tool.arguments_schema.load(example) is not None
        resp = await client.post(f"/api/mcp/tools/{tool.name}", json=example)
        result = await resp.json()
        assert resp.status == 200 and result["isError"] is False, (tool.name, result)
    assert tools_with_examples >= 2 and len(found) >= 4  # the weather tools, and the document's own


async def test_a_request_body_is_optional_exactly_where_an_empty_request_is_taken(client):
    """Every operation with a request body says whether it may be left out, and the server agrees:
    an empty request gets 400 exactly where the body is documented as required."""
    key = await create_key(client.admin)
    doc = await (await client.get("/api/docs/openapi.json")).json()
    # DELETE revokes the key: ask it last so the other operations see a live key.
    found = sorted(_operations(doc, key["id"]), key=lambda op: op[0] == "DELETE")
    checked = 0
    for method, path, template, operation in found:
        body = operation.get("requestBody")
        if body is None or "{toolName}" in template:
            continue
        admin = is_admin(path)
        headers = {**(ADMIN_HEADERS if admin else {"X-API-Key": key["key"]})}
        resp = await _send(client.anonymous, method, path, headers, b"")
        if body.get("required"):
            assert resp.status == 400, (method, template, resp.status)
        else:
            assert resp.status < 400, (method, template, resp.status, await resp.text())
        checked += 1
    assert checked >= 6


async def test_every_documented_query_bound_is_the_servers(client):
    """A query parameter's documented lengths and ranges are exactly what the server takes: the
    bounds themselves are taken, one past them refused with 422."""
    key = await create_key(client.admin)
    doc = await (await client.get("/api/docs/openapi.json")).json()
    checked = 0
    for method, path, _template, operation in _operations(doc, key["id"]):
        if method != "GET" or not is_admin(path):
            continue
        for parameter in operation.get("parameters", []):
            schema = parameter["schema"]
            if parameter["in"] != "query":
                continue
            cases = []
            if "minLength" in schema or "maxLength" in schema:
                low, high = schema.get("minLength", 0), schema.get("maxLength")
                cases += [("a" * low, True)] + ([("a" * (low - 1), False)] if low else [])
                cases += [("a" * high, True), ("a" * (high + 1), False)] if high is not None else []
            if "minimum" in schema:
                cases += [(str(schema["minimum"]), True), (str(schema["minimum"] - 1), False)]
            if "maximum" in schema:
                cases += [(str(schema["maximum"]), True), (str(schema["maximum"] + 1), False)]
            if schema.get("type") == "string" and not {"minLength", "maxLength", "enum"} & set(schema):
                cases += [("", True), ("a" * 1000, True)]
            for value, taken in cases:
                resp = await client.admin.get(path, params={parameter["name"]: value})
                assert (resp.status == 200) == taken and (taken or resp.status == 422), (
                    path,
                    parameter["name"],
                    value[:20],
                    resp.status,
                )
                checked += 1
    assert checked >= 10
