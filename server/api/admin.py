"""Admin API under /api/admin: create, list, show, update, rotate and revoke keys; usage over
time and the recent denials (what the admin console shows)."""

from __future__ import annotations

from typing import TypedDict

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema
from marshmallow import Schema, fields

from skywarden.server.auth.key_operations import Actor, KeyOperations, key_view, load
from skywarden.server.auth.key_schemas import (
    DEFAULT_LIST_LIMIT,
    KEY_ENVIRONMENTS,
    KEY_ID_LENGTH,
    MAX_DENIALS,
    MAX_LIST_LIMIT,
    MAX_LIST_OFFSET,
    STATUSES,
    USAGE_WINDOWS,
    CreateKeySchema,
    DenialsQuerySchema,
    RevokeSchema,
    RotateSchema,
    UpdateKeySchema,
)
from skywarden.server.http.body import BodyReader
from skywarden.server.http.paths import ADMIN_DENIALS_PATH, ADMIN_KEYS_PATH, ADMIN_USAGE_PATH
from skywarden.server.http.problems import problem_responses
from skywarden.server.http.responses import json_response
from skywarden.server.http.routes import ADMIN, add_route
from skywarden.server.observability.denials import RecentDenials
from skywarden.server.request_state import state_of


class KeyOutSchema(Schema):
    id = fields.String(required=True)
    name = fields.String(required=True)
    owner = fields.String(allow_none=True)
    prefix = fields.String(required=True, metadata={"description": "Non-secret start of the key"})
    environment = fields.String(required=True)
    scopes = fields.List(fields.String(), required=True)
    status = fields.String(required=True, metadata={"enum": list(STATUSES)})
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    last_used_at = fields.DateTime(allow_none=True)
    use_count = fields.Integer()
    disabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    revoked_at = fields.DateTime(allow_none=True)
    revoked_reason = fields.String(allow_none=True)
    rate_limit = fields.String(allow_none=True)
    rate_limit_problem = fields.String(
        allow_none=True,
        metadata={
            "description": "Why the stored rate_limit refuses every request with the key (one an earlier "
            "version stored that allows nothing or is no rate); null when it works"
        },
    )
    metadata = fields.Dict()
    created_by = fields.String(allow_none=True, metadata={"description": '"admin", "cli" or a signed-in admin'})


class NewKeySchema(KeyOutSchema):
    key = fields.String(required=True, metadata={"description": "The full key. Shown once, never again."})


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeyOutSchema), required=True)


def actor_of(request: web.Request) -> Actor:
    state = state_of(request)
    principal = state.caller
    return Actor(principal.name, state.request_id or None, principal.identity_fields() or None)


class _AdminDocs(TypedDict):
    """What the ``docs`` of every admin operation starts with (its credentials come from the
    route's rule, ``api/openapi.py``)."""

    tags: list[str]


HEADERS_DOC = _AdminDocs(tags=["admin"])
KEY_ID_PARAM = [{"in": "path", "name": "key_id", "required": True, "schema": {"type": "string"}}]


class UsageBucketSchema(Schema):
    start = fields.DateTime(required=True)
    count = fields.Integer(required=True)


class TopKeySchema(Schema):
    key_id = fields.String(required=True)
    name = fields.String(required=True)
    prefix = fields.String(required=True)
    count = fields.Integer(required=True)


class UsageSchema(Schema):
    window = fields.String(required=True, metadata={"enum": list(USAGE_WINDOWS)})
    bucket = fields.String(required=True, metadata={"enum": ["hour", "day"]})
    key_id = fields.String(allow_none=True)
    series = fields.List(fields.Nested(UsageBucketSchema), required=True)
    total = fields.Integer(required=True)
    top = fields.List(fields.Nested(TopKeySchema), required=True)


class DenialSchema(Schema):
    time = fields.String(required=True)
    client_ip = fields.String(allow_none=True)
    status = fields.Integer(required=True)
    reason = fields.String(allow_none=True)
    method = fields.String()
    path = fields.String()
    key_id = fields.String(
        metadata={"description": "The key, whenever the store knows it (revoked, expired, disabled, rotated out too)"}
    )
    key_prefix = fields.String(
        metadata={"description": "Display prefix of the key presented (known or not, when it was well-formed)"}
    )
    subject = fields.String(metadata={"description": "The subject of a refused access token"})


class DenialListSchema(Schema):
    denials = fields.List(fields.Nested(DenialSchema), required=True)


class AdminApi:
    """The admin handlers, with the key operations, the recent denials and the body reader from
    the app factory."""

    def __init__(self, operations: KeyOperations, denials: RecentDenials, body_reader: BodyReader) -> None:
        self.operations = operations
        self.recent_denials = denials
        self.read_json = body_reader.read_json

    @docs(
        **HEADERS_DOC,
        summary="Create an API key (the key is in this answer only)",
        responses=problem_responses(400, 408, 413, 415, 422),
    )
    @request_schema(CreateKeySchema, required=True)  # an empty body is a 400
    @response_schema(NewKeySchema, 201)
    async def create_key(self, request: web.Request) -> web.Response:
        record, key = await self.operations.create(await self.read_json(request), actor_of(request))
        return json_response({**key_view(record), "key": key}, status=201)

    @docs(
        **HEADERS_DOC,
        summary="List keys (never the key or its hash)",
        responses=problem_responses(422),
        parameters=[
            {"in": "query", "name": name, "schema": schema}
            for name, schema in [
                ("name", {"type": "string", "minLength": 1}),
                ("owner", {"type": "string"}),
                ("environment", {"type": "string", "enum": list(KEY_ENVIRONMENTS)}),
                ("status", {"type": "string", "enum": list(STATUSES)}),
                ("limit", {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": DEFAULT_LIST_LIMIT}),
                ("offset", {"type": "integer", "minimum": 0, "maximum": MAX_LIST_OFFSET, "default": 0}),
            ]
        ],
    )
    @response_schema(KeyListSchema, 200)
    async def list_keys(self, request: web.Request) -> web.Response:
        records = await self.operations.list(dict(request.query))
        return json_response({"keys": [key_view(r) for r in records]})

    @docs(**HEADERS_DOC, summary="Show one key", parameters=KEY_ID_PARAM, responses=problem_responses(404))
    @response_schema(KeyOutSchema, 200)
    async def show_key(self, request: web.Request) -> web.Response:
        return json_response(key_view(await self.operations.get(request.match_info["key_id"])))

    @docs(
        **HEADERS_DOC,
        summary="Change name, owner, scopes, expiry, rate limit, metadata or disable a key",
        parameters=KEY_ID_PARAM,
        responses=problem_responses(400, 404, 408, 409, 413, 415, 422),
    )
    @request_schema(UpdateKeySchema, required=True)  # an empty body is a 400
    @response_schema(KeyOutSchema, 200)
    async def update_key(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        updated = await self.operations.update(key_id, await self.read_json(request), actor_of(request))
        return json_response(key_view(updated))

    @docs(
        **HEADERS_DOC,
        summary="Rotate: a new key for the same record; the old one works for grace_seconds",
        parameters=KEY_ID_PARAM,
        responses=problem_responses(400, 404, 408, 409, 413, 415, 422),
    )
    @request_schema(RotateSchema, required=False)
    @response_schema(NewKeySchema, 200)
    async def rotate_key(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        body = await self.read_json(request, allow_empty=True)
        updated, key = await self.operations.rotate(key_id, body, actor_of(request))
        return json_response({**key_view(updated), "key": key})

    @docs(
        **HEADERS_DOC,
        summary="Revoke a key (idempotent)",
        parameters=KEY_ID_PARAM,
        responses={204: {"description": "Revoked"}, **problem_responses(400, 404, 408, 413, 415, 422)},
    )
    @request_schema(RevokeSchema, required=False)
    async def revoke_key(self, request: web.Request) -> web.Response:
        key_id = request.match_info["key_id"]
        await self.operations.revoke(key_id, await self.read_json(request, allow_empty=True), actor_of(request))
        return web.Response(status=204)

    @docs(
        **HEADERS_DOC,
        summary="Uses per hour (24h) or day (30d), for every key or one, and the keys used most",
        responses=problem_responses(422),
        parameters=[
            {
                "in": "query",
                "name": "window",
                "schema": {"type": "string", "enum": list(USAGE_WINDOWS), "default": "24h"},
            },
            {
                "in": "query",
                "name": "key_id",
                "schema": {"type": "string", "minLength": KEY_ID_LENGTH[0], "maxLength": KEY_ID_LENGTH[1]},
            },
            {"in": "query", "name": "top", "schema": {"type": "integer", "minimum": 1, "maximum": 50, "default": 10}},
        ],
    )
    @response_schema(UsageSchema, 200)
    async def usage(self, request: web.Request) -> web.Response:
        found = await self.operations.usage(dict(request.query))
        return json_response(UsageSchema().dump(found))

    @docs(
        **HEADERS_DOC,
        summary="The most recent denied requests (bad or missing credentials, scope, rate limits), newest first",
        responses=problem_responses(422),
        parameters=[
            {"in": "query", "name": "limit", "schema": {"type": "integer", "minimum": 1, "maximum": MAX_DENIALS}},
        ],
    )
    @response_schema(DenialListSchema, 200)
    async def denials(self, request: web.Request) -> web.Response:
        wanted = load(DenialsQuerySchema(), dict(request.query), "Some query parameters are not valid.")
        return json_response({"denials": await self.recent_denials.recent(wanted["limit"])})

    def add_routes(self, app: web.Application) -> None:
        add_route(app, "GET", ADMIN_USAGE_PATH, self.usage, rule=ADMIN)
        add_route(app, "GET", ADMIN_DENIALS_PATH, self.denials, rule=ADMIN)
        one_key = ADMIN_KEYS_PATH + "/{key_id}"
        add_route(app, "POST", ADMIN_KEYS_PATH, self.create_key, rule=ADMIN)
        add_route(app, "GET", ADMIN_KEYS_PATH, self.list_keys, rule=ADMIN)
        add_route(app, "GET", one_key, self.show_key, rule=ADMIN)
        add_route(app, "PATCH", one_key, self.update_key, rule=ADMIN)
        add_route(app, "POST", one_key + "/rotate", self.rotate_key, rule=ADMIN)
        add_route(app, "DELETE", one_key, self.revoke_key, rule=ADMIN)
