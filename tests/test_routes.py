"""Who may call a route is declared where the route is added (``http/routes.py``): every route
carries a rule, a rule is all a new route needs, and an address no route answers is held to
the rule of its area (deny by default elsewhere)."""

from __future__ import annotations

import pytest
from aiohttp import web

from skywarden.server.app import create_app
from skywarden.server.http.routes import (
    ADMIN,
    KEY,
    MCP,
    PUBLIC,
    Door,
    add_route,
    area_rule,
    declare,
    door_of,
    rule_of_resource,
)
from tests.support.admin import ADMIN_HEADERS, create_key

EVERY_FEATURE = {
    "console_enabled": "true",
    "metrics_enabled": "true",
    "metrics_token": "m" * 40,
    "oidc_issuers": "https://issuer.example.test",
    "admin_oidc_audience": "api://skywarden",
    "oauth_resource_url": "https://mcp.example.test/v1/mcp",  # its metadata path is no probe address
    "console_oidc_client_id": "skywarden-console",
}


async def _door(request: web.Request) -> web.Response:
    return web.json_response({"door": door_of(request).value})


def routes_without_a_rule(app: web.Application) -> list[str]:
    return [
        f"{route.method} {route.resource.canonical if route.resource else route}"
        for route in app.router.routes()
        if rule_of_resource(route.resource) is None
    ]


def test_every_route_carries_a_rule(make_settings):
    """Every route of an app with every optional feature on, HEAD and the CORS preflights
    included: a route added without a rule would be judged by no one."""
    app = create_app(make_settings(**EVERY_FEATURE))
    canonicals = {resource.canonical for resource in app.router.resources()}
    assert {"/admin/oidc/start", "/metrics", "/.well-known/oauth-protected-resource/v1/mcp"} <= canonicals
    assert {route.method for route in app.router.routes()} >= {"HEAD", "OPTIONS"}
    assert routes_without_a_rule(app) == []


def test_a_route_added_without_a_rule_is_found(make_settings):
    app = create_app(make_settings())
    app.router.add_get("/api/forgotten", _door)
    assert routes_without_a_rule(app) == ["HEAD /api/forgotten", "GET /api/forgotten"]


def test_every_route_inside_an_area_carries_its_rule(make_settings):
    """An address no route answers is held to its area's rule; the routes there must agree."""
    app = create_app(make_settings(**EVERY_FEATURE))
    checked = 0
    for resource in app.router.resources():
        area = area_rule(resource.canonical)
        if area is not None:
            assert rule_of_resource(resource) == area, resource.canonical
            checked += 1
    assert checked >= 15


def test_one_path_has_one_rule():
    app = web.Application()
    add_route(app, "GET", "/x", _door, rule=PUBLIC)
    add_route(app, "POST", "/x", _door, rule=PUBLIC)
    with pytest.raises(ValueError, match="already added"):
        add_route(app, "DELETE", "/x", _door, rule=KEY)
    with pytest.raises(ValueError, match="already added"):
        declare(next(iter(app.router.resources())), ADMIN)
    assert sorted(route.method for route in app.router.routes()) == ["GET", "POST"]


def test_one_path_has_one_rule_however_far_apart_its_routes_are_added():
    """aiohttp reuses only the last resource for a path: routes of one path added with another
    path between them sit on two resources, which must still agree."""
    app = web.Application()
    add_route(app, "GET", "/x", _door, rule=PUBLIC)
    add_route(app, "GET", "/y", _door, rule=KEY)
    with pytest.raises(ValueError, match="already added"):
        add_route(app, "POST", "/x", _door, rule=KEY)
    add_route(app, "POST", "/x", _door, rule=PUBLIC)
    assert {rule_of_resource(r) for r in app.router.resources() if r.canonical == "/x"} == {PUBLIC}


@pytest.mark.parametrize("method", ["OPTIONS", "options", "*"])
def test_no_route_takes_options(method):
    """OPTIONS is a CORS preflight, answered before authentication: a handler of its own (or of
    every method) would run for anyone, whatever its rule."""
    app = web.Application()
    with pytest.raises(ValueError, match="preflight"):
        add_route(app, method, "/x", _door, rule=ADMIN)
    assert list(app.router.routes()) == []


def test_every_options_route_is_a_cors_preflight(make_settings):
    app = create_app(make_settings(**EVERY_FEATURE, cors_origins="https://app.example.test"))
    preflights = [route for route in app.router.routes() if route.method in {"OPTIONS", "*"}]
    assert preflights
    for route in preflights:
        assert route.method == "OPTIONS" and route.handler.__module__ == "aiohttp_cors.preflight_handler", route


async def test_a_rule_is_all_a_new_route_needs(make_settings, aiohttp_client):
    """Adding a route with its rule is enough: no table of paths to edit for admission, the 401's
    wording and challenge, the cache policy or the door."""
    app = create_app(make_settings())
    add_route(app, "GET", "/extra/public", _door, rule=PUBLIC)
    add_route(app, "GET", "/extra/key", _door, rule=KEY)
    add_route(app, "GET", "/extra/admin", _door, rule=ADMIN)
    add_route(app, "GET", "/extra/rpc", _door, rule=MCP)
    anonymous = await aiohttp_client(app)
    admin = await aiohttp_client(anonymous.server, headers=ADMIN_HEADERS)
    key = await create_key(admin)
    with_key = await aiohttp_client(anonymous.server, headers={"X-API-Key": key["key"]})

    resp = await anonymous.get("/extra/public")
    assert resp.status == 200 and await resp.json() == {"door": Door.PROBLEM.value}
    assert resp.headers.get("Cache-Control") != "no-store"

    for path, detail in [
        ("/extra/key", "A valid credential is required (X-API-Key or Authorization: Bearer)."),
        ("/extra/admin", "A valid admin token is required (Authorization: Bearer)."),
    ]:
        refused = await anonymous.get(path)
        assert refused.status == 401 and (await refused.json())["detail"] == detail, path
        assert refused.headers["Content-Type"].startswith("application/problem+json")
        assert refused.headers["Cache-Control"] == "no-store"
    refused = await anonymous.get("/extra/rpc")  # the JSON-RPC door: its refusals are JSON-RPC errors
    answer = await refused.json()
    assert refused.status == 401 and answer["jsonrpc"] == "2.0" and answer["id"] is None
    wanted = "Unauthorized: a valid API key is required (X-API-Key or Authorization: Bearer)."
    assert answer["error"]["message"] == wanted
    assert refused.headers["Cache-Control"] == "no-store"

    assert (await with_key.get("/extra/key")).status == 200
    assert await (await with_key.get("/extra/rpc")).json() == {"door": Door.JSON_RPC.value}
    assert (await with_key.get("/extra/admin")).status == 401
    assert (await admin.get("/extra/admin")).status == 200
    assert (await admin.get("/extra/key")).status == 401  # the admin token is no API key


@pytest.mark.parametrize(
    ("path", "anonymous", "admin"),
    [
        ("/nope", 401, 401),  # deny by default: a key first, then the 404
        ("/api/adminx", 401, 401),
        ("/api/admin/nope", 401, 404),  # an admin address answers only an admin
        ("/api/admin", 401, 404),
        ("/admin/nope", 404, 404),  # the console's addresses are public, on or off
        ("/api/docs/nope", 404, 404),
        ("/metrics", 401, 404),  # metrics off: the admin token still opens the address
    ],
)
async def test_an_address_no_route_answers_keeps_its_areas_rule(make_settings, aiohttp_client, path, anonymous, admin):
    app = create_app(make_settings(metrics_enabled="false", console_enabled="false"))
    client = await aiohttp_client(app)
    assert (await client.get(path)).status == anonymous
    assert (await client.get(path, headers=ADMIN_HEADERS)).status == admin


async def test_the_door_is_json_rpc_at_mcp_only(make_settings, aiohttp_client):
    """``door_of`` names the JSON-RPC door for /mcp and an upstream's /mcp/u/<name>, whatever the
    method (a 405 too), and the problem+json door for every other address, known or not."""
    app = create_app(make_settings(**EVERY_FEATURE))
    seen: dict[tuple[str, str], Door] = {}

    @web.middleware
    async def record(request: web.Request, handler):
        seen[request.method, request.path] = door_of(request)
        return await handler(request)

    app.middlewares.insert(0, record)
    client = await aiohttp_client(app)
    paths = {resource.canonical.replace("{", "").replace("}", "") for resource in app.router.resources()}
    paths |= {"/mcp/", "/mcp/u/x/y", "/mcp/ux", "/nope", "/api/admin/nope", "/admin/nope", "/metricsx"}
    json_rpc = {"/mcp", "/mcp/u/upstream", "/mcp/u/x/y"}
    for path in sorted(paths):
        for method in ("GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"):
            await client.request(method, path)
            assert seen[method, path] is (Door.JSON_RPC if path in json_rpc else Door.PROBLEM), (method, path)
