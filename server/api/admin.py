"""Admin API under /api/admin: create, list, show, update, rotate and revoke keys."""

from __future__ import annotations

from aiohttp import web
from aiohttp_apigami import docs, request_schema, response_schema
from marshmallow import Schema, fields

from skywarden.server.api.responses import json_response
from skywarden.server.appkeys import KEY_OPERATIONS, PRINCIPAL, REQUEST_ID
from skywarden.server.auth.key_operations import Actor, key_view
from skywarden.server.auth.key_schemas import (
    DEFAULT_LIST_LIMIT,
    KEY_ENVIRONMENTS,
    MAX_LIST_LIMIT,
    MAX_LIST_OFFSET,
    STATUSES,
    CreateKeySchema,
    RevokeSchema,
    RotateSchema,
    UpdateKeySchema,
)
from skywarden.server.http.body import read_json
from skywarden.server.http.paths import ADMIN_KEYS_PATH
from skywarden.server.http.problems import problem_responses

ADMIN_SECURITY = [{"AdminToken": []}]


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
    metadata = fields.Dict()


class NewKeySchema(KeyOutSchema):
    key = fields.String(required=True, metadata={"description": "The full key. Shown once, never again."})


class KeyListSchema(Schema):
    keys = fields.List(fields.Nested(KeyOutSchema), required=True)


def _actor(request: web.Request) -> Actor:
    principal = request[PRINCIPAL]
    return Actor(principal.name, request.get(REQUEST_ID), principal.identity_fields() or None)


HEADERS_DOC = dict(tags=["admin"], security=ADMIN_SECURITY)
KEY_ID_PARAM = [{"in": "path", "name": "key_id", "required": True, "schema": {"type": "string"}}]


@docs(
    **HEADERS_DOC,
    summary="Create an API key (the key is in this answer only)",
    responses=problem_responses(400, 401, 408, 413, 415, 422, 429),
)
@request_schema(CreateKeySchema)
@response_schema(NewKeySchema, 201)
async def create_key(request: web.Request) -> web.Response:
    record, key = await request.app[KEY_OPERATIONS].create(await read_json(request), _actor(request))
    return json_response({**key_view(record), "key": key}, status=201)


@docs(
    **HEADERS_DOC,
    summary="List keys (never the key or its hash)",
    responses=problem_responses(400, 401, 422, 429),
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
async def list_keys(request: web.Request) -> web.Response:
    records = await request.app[KEY_OPERATIONS].list(dict(request.query))
    return json_response({"keys": [key_view(r) for r in records]})


@docs(**HEADERS_DOC, summary="Show one key", parameters=KEY_ID_PARAM, responses=problem_responses(400, 401, 404, 429))
@response_schema(KeyOutSchema, 200)
async def show_key(request: web.Request) -> web.Response:
    return json_response(key_view(await request.app[KEY_OPERATIONS].get(request.match_info["key_id"])))


@docs(
    **HEADERS_DOC,
    summary="Change name, owner, scopes, expiry, rate limit, metadata or disable a key",
    parameters=KEY_ID_PARAM,
    responses=problem_responses(400, 401, 404, 408, 409, 413, 415, 422, 429),
)
@request_schema(UpdateKeySchema)
@response_schema(KeyOutSchema, 200)
async def update_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    updated = await request.app[KEY_OPERATIONS].update(key_id, await read_json(request), _actor(request))
    return json_response(key_view(updated))


@docs(
    **HEADERS_DOC,
    summary="Rotate: a new key for the same record; the old one works for grace_seconds",
    parameters=KEY_ID_PARAM,
    responses=problem_responses(400, 401, 404, 408, 409, 413, 415, 422, 429),
)
@request_schema(RotateSchema, required=False)
@response_schema(NewKeySchema, 200)
async def rotate_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    body = await read_json(request, allow_empty=True)
    updated, key = await request.app[KEY_OPERATIONS].rotate(key_id, body, _actor(request))
    return json_response({**key_view(updated), "key": key})


@docs(
    **HEADERS_DOC,
    summary="Revoke a key (idempotent)",
    parameters=KEY_ID_PARAM,
    responses={204: {"description": "Revoked"}, **problem_responses(400, 401, 404, 408, 413, 415, 422, 429)},
)
@request_schema(RevokeSchema, required=False)
async def revoke_key(request: web.Request) -> web.Response:
    key_id = request.match_info["key_id"]
    await request.app[KEY_OPERATIONS].revoke(key_id, await read_json(request, allow_empty=True), _actor(request))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    one_key = ADMIN_KEYS_PATH + "/{key_id}"
    app.router.add_post(ADMIN_KEYS_PATH, create_key)
    app.router.add_get(ADMIN_KEYS_PATH, list_keys, allow_head=False)
    app.router.add_get(one_key, show_key, allow_head=False)
    app.router.add_patch(one_key, update_key)
    app.router.add_post(one_key + "/rotate", rotate_key)
    app.router.add_delete(one_key, revoke_key)
