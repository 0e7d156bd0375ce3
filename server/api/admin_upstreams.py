"""Admin API under /api/admin/upstreams: list the upstreams (declared in settings or added by an
admin) with their state and tools; add, change, disable and remove the ones an admin added."""

from __future__ import annotations

from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import Schema, fields

from skywarden.server.api.admin import HEADERS_DOC, actor_of
from skywarden.server.auth.upstream_operations import StoredEntry, UpstreamOperations, config_view
from skywarden.server.gateway.gateway import Gateway
from skywarden.server.http.body import BodyReader
from skywarden.server.http.paths import ADMIN_UPSTREAMS_PATH
from skywarden.server.http.problems import problem_responses
from skywarden.server.http.responses import json_response
from skywarden.server.http.routes import ADMIN, add_route
from skywarden.server.upstreams import UpstreamConfig, upstream_scopes

STATES = ["starting", "up", "down", "disabled", "unusable"]
NAME_PARAM = [{"in": "path", "name": "name", "required": True, "schema": {"type": "string"}}]
REQUEST_BODY: dict[str, Any] = {
    "required": True,
    "description": "The options of a [skywarden.upstreams.NAME] table (docs/gateway.md), as JSON; "
    "env and headers values are text, kept sealed and never shown",
    "content": {"application/json": {"schema": {"type": "object"}}},
}


class UpstreamOutSchema(Schema):
    name = fields.String(required=True)
    source = fields.String(required=True, metadata={"enum": ["settings", "admin"]})
    state = fields.String(required=True, metadata={"enum": STATES})
    tools = fields.List(fields.String(), required=True, metadata={"description": "Its tools as clients see them"})
    grants = fields.List(
        fields.String(), metadata={"description": "The scopes that grant all its tools (not for an unusable one)"}
    )
    last_error = fields.String(required=True)
    problem = fields.String(metadata={"description": "Why a stored upstream cannot be used (state unusable)"})
    options = fields.Dict(metadata={"description": "Its options; of env and headers only the names"})
    calls = fields.Integer()
    errors = fields.Integer()
    restarts = fields.Integer()
    created_at = fields.DateTime(allow_none=True)
    updated_at = fields.DateTime(allow_none=True)
    created_by = fields.String(allow_none=True)


class UpstreamListSchema(Schema):
    upstreams = fields.List(fields.Nested(UpstreamOutSchema), required=True)


def _iso(entry: StoredEntry | None, name: str) -> str | None:
    if entry is None:
        return None
    value = getattr(entry.record, name)
    return str(value.isoformat().replace("+00:00", "Z"))


class UpstreamAdminApi:
    def __init__(self, operations: UpstreamOperations, gateway: Gateway, body_reader: BodyReader) -> None:
        self.operations = operations
        self.gateway = gateway
        self.read_json = body_reader.read_json

    def _view(self, config: UpstreamConfig | None, entry: StoredEntry | None) -> dict[str, Any]:
        name = config.name if config is not None else entry.record.name if entry is not None else ""
        view: dict[str, Any] = {"name": name, "source": "settings" if entry is None else "admin"}
        if config is None:
            assert entry is not None
            view.update(state="unusable", tools=[], last_error="", problem=entry.problem, options={})
        else:
            view.update(self.gateway.status(name), options=config_view(config))
            view["grants"] = list(upstream_scopes(name, self.gateway.separator))
        if entry is not None:
            view.update(
                created_at=_iso(entry, "created_at"),
                updated_at=_iso(entry, "updated_at"),
                created_by=entry.record.created_by,
            )
        return view

    async def _all(self) -> list[dict[str, Any]]:
        views = [self._view(c, None) for c in self.operations.declared]
        declared = {c.name for c in self.operations.declared}
        views += [self._view(e.config, e) for e in await self.operations.entries() if e.record.name not in declared]
        return sorted(views, key=lambda v: str(v["name"]))

    @docs(**HEADERS_DOC, summary="List the upstreams, their state and tools (never a credential)")
    @response_schema(UpstreamListSchema, 200)
    async def list_upstreams(self, request: web.Request) -> web.Response:
        return json_response({"upstreams": await self._all()})

    @docs(**HEADERS_DOC, summary="Show one upstream", parameters=NAME_PARAM, responses=problem_responses(404))
    @response_schema(UpstreamOutSchema, 200)
    async def show_upstream(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        declared = next((c for c in self.operations.declared if c.name == name), None)
        if declared is not None:
            return json_response(self._view(declared, None))
        entry = await self.operations.get(name)
        return json_response(self._view(entry.config, entry))

    async def _stored_view(self, name: str) -> dict[str, Any]:
        entry = await self.operations.get(name)
        return self._view(entry.config, entry)

    @docs(
        **HEADERS_DOC,
        requestBody=REQUEST_BODY,
        summary="Add an upstream: {name, and the options of its table}; every instance starts it",
        responses=problem_responses(400, 408, 409, 413, 415, 422),
    )
    @response_schema(UpstreamOutSchema, 201)
    async def add_upstream(self, request: web.Request) -> web.Response:
        config = await self.operations.add(await self.read_json(request), actor_of(request))
        return json_response(await self._stored_view(config.name), status=201)

    @docs(
        **HEADERS_DOC,
        requestBody=REQUEST_BODY,
        summary="Change an added upstream's options (enabled: false disables it; null restores a default)",
        parameters=NAME_PARAM,
        responses=problem_responses(400, 404, 408, 409, 413, 415, 422),
    )
    @response_schema(UpstreamOutSchema, 200)
    async def update_upstream(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        await self.operations.update(name, await self.read_json(request), actor_of(request))
        return json_response(await self._stored_view(name))

    @docs(
        **HEADERS_DOC,
        summary="Remove an added upstream; its tools go at once on every instance",
        parameters=NAME_PARAM,
        responses={204: {"description": "Removed"}, **problem_responses(404, 409)},
    )
    async def remove_upstream(self, request: web.Request) -> web.Response:
        await self.operations.remove(request.match_info["name"], actor_of(request))
        return web.Response(status=204)

    def add_routes(self, app: web.Application) -> None:
        one = ADMIN_UPSTREAMS_PATH + "/{name}"
        add_route(app, "GET", ADMIN_UPSTREAMS_PATH, self.list_upstreams, rule=ADMIN)
        add_route(app, "POST", ADMIN_UPSTREAMS_PATH, self.add_upstream, rule=ADMIN)
        add_route(app, "GET", one, self.show_upstream, rule=ADMIN)
        add_route(app, "PATCH", one, self.update_upstream, rule=ADMIN)
        add_route(app, "DELETE", one, self.remove_upstream, rule=ADMIN)
