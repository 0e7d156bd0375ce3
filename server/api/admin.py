"""Admin API under /api/admin: create, list, show, update, rotate and revoke keys."""

from __future__ import annotations

import json
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs, response_schema
from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from skywarden.server.api.rest import problem_responses
from skywarden.server.appkeys import AUTHENTICATOR, KEY_STORE, REGISTRY, SECRET, SETTINGS
from skywarden.server.auth import keys
from skywarden.server.auth.records import KeyFilter, KeyRecord, utcnow
from skywarden.server.auth.store import KeyNotFound
from skywarden.server.http.body import read_json
from skywarden.server.http.problems import ProblemError, validation_problem
from skywarden.server.jsonutil import dumps
from skywarden.server.observability.audit import audit_admin_action

MAX_METADATA_BYTES = 4096
MAX_GRACE = timedelta(days=30)
ADMIN_SECURITY = [{"AdminToken": []}]
KEY_ENVIRONMENTS = ("live", "test", "dev")
STATUSES = ("active", "disabled", "revoked", "expired")


def _rate_limit(value: str | None) -> None:
    if value is None:
        return
    from limits import parse_many

    try:
        parse_many(value)
    except ValueError:
        raise ValidationError(
            "Must be a rate in the limits notation, e.g. '120/minute' or '10/second;1000/day'."
        ) from None


def _metadata(value: dict) -> None:
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValidationError(f"Must be at most {MAX_METADATA_BYTES} bytes as JSON.")


def _future(value: datetime | None) -> None:
    if value is not None and value <= utcnow():
        raise ValidationError("Must be in the future.")


class _KeyFields(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(validate=validate.Length(min=1, max=100))
    owner = fields.String(allow_none=True, validate=validate.Length(max=200))
    scopes = fields.List(
        fields.String(validate=validate.Length(min=1, max=128)),
        validate=validate.Length(min=1, max=500),
        metadata={"description": 'Tool names this key may list and call; "*" for all tools'},
    )
    expires_at = fields.AwareDateTime(
        allow_none=True, validate=_future, metadata={"description": "ISO 8601 with a time zone"}
    )
    rate_limit = fields.String(
        allow_none=True, validate=_rate_limit, metadata={"description": "e.g. 120/minute; null for the default"}
    )
    metadata = fields.Dict(keys=fields.String(validate=validate.Length(max=100)), validate=_metadata)


class CreateKeySchema(_KeyFields):
    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    environment = fields.String(validate=validate.OneOf(KEY_ENVIRONMENTS))


class UpdateKeySchema(_KeyFields):
    disabled = fields.Boolean()
    disabled_reason = fields.String(allow_none=True, validate=validate.Length(max=500))

    @validates_schema
    def _not_empty(self, data: dict, **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")


class RotateSchema(Schema):
    class Meta:
        unknown = RAISE

    grace_seconds = fields.Integer(
        load_default=3600,
        validate=validate.Range(0, int(MAX_GRACE.total_seconds())),
        metadata={"description": "How long the old key keeps working (0-2592000 s)"},
    )


class RevokeSchema(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(allow_none=True, validate=validate.Length(max=500))


class ListQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String()
    owner = fields.String()
    environment = fields.String(validate=validate.OneOf(KEY_ENVIRONMENTS))
    status = fields.String(validate=validate.OneOf(STATUSES))
    limit = fields.Integer(load_default=100, validate=validate.Range(1, 1000))
    offset = fields.Integer(load_default=0, validate=validate.Range(0))

    @validates("name")
    def _name(self, value: str, **kwargs: Any) -> None:
        if not value:
            raise ValidationError("Must not be empty.")


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


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def key_view(record: KeyRecord) -> dict[str, Any]:
    return {
        "id": record.id,
        "name": record.name,
        "owner": record.owner,
        "prefix": record.prefix,
        "environment": record.environment,
        "scopes": record.scopes,
        "status": record.status(),
        "created_at": _iso(record.created_at),
        "updated_at": _iso(record.updated_at),
        "expires_at": _iso(record.expires_at),
        "last_used_at": _iso(record.last_used_at),
        "use_count": record.use_count,
        "disabled": record.disabled,
        "disabled_reason": record.disabled_reason,
        "revoked_at": _iso(record.revoked_at),
        "revoked_reason": record.revoked_reason,
        "rate_limit": record.rate_limit,
        "metadata": record.metadata,
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(body=dumps(data), status=status, content_type="application/json")


def _load(schema: Schema, data: Any) -> dict[str, Any]:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise validation_problem({"_schema": ["The body must be a JSON object."]})
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise validation_problem(exc.messages) from None


def unknown_scopes(registry: Any, scopes: list[str] | None) -> list[str]:
    """Scope names that are neither ``*`` nor a loaded tool (shared by the admin API and CLI)."""
    return [s for s in scopes or [] if s != "*" and registry.get(s) is None]


def _check_scopes(request: web.Request, scopes: list[str] | None) -> None:
    unknown = unknown_scopes(request.app[REGISTRY], scopes)
    if unknown:
        raise validation_problem({"scopes": [f"Unknown tool: {name}" for name in unknown]})


def _key_not_found() -> ProblemError:
    return ProblemError(404, "Not found", "There is no key with this id.", type="key-not-found")


def _refuse_if_revoked(record: KeyRecord, verb: str) -> None:
    if record.revoked_at is not None:
        raise ProblemError(409, "Conflict", f"A revoked key cannot be {verb}.", type="key-revoked")


async def _record_or_404(request: web.Request) -> KeyRecord:
    key_id = request.match_info["key_id"]
    record = await request.app[KEY_STORE].get(key_id) if len(key_id) <= 64 else None
    if record is None:
        raise _key_not_found()
    return record


def new_key_id() -> str:
    return "key_" + secrets.token_hex(10)


async def create_key_record(
    store: Any, secret: bytes, *, name: str, environment: str, scopes: list[str] | None = None, **optional: Any
) -> tuple[KeyRecord, str]:
    """Create a key; the one place a full key exists. Shared by the admin API and the CLI."""
    key = keys.generate_key(environment)
    record = KeyRecord(
        id=new_key_id(),
        name=name,
        prefix=keys.display_prefix(key),
        environment=environment,
        scopes=list(scopes or ["*"]),
        created_at=utcnow(),
        owner=optional.get("owner"),
        expires_at=optional.get("expires_at"),
        rate_limit=optional.get("rate_limit"),
        metadata=optional.get("metadata") or {},
    )
    await store.create(record, keys.hash_key(key, secret))
    return record, key


async def rotate_key_record(store: Any, secret: bytes, record: KeyRecord, grace_seconds: int) -> tuple[KeyRecord, str]:
    key = keys.generate_key(record.environment)
    now = utcnow()
    updated = await store.rotate(
        record.id, keys.hash_key(key, secret), keys.display_prefix(key), now + timedelta(seconds=grace_seconds), now
    )
    return updated, key


HEADERS_DOC = dict(tags=["admin"], security=ADMIN_SECURITY)
KEY_ID_PARAM = [{"in": "path", "name": "key_id", "required": True, "schema": {"type": "string"}}]


@docs(
    **HEADERS_DOC,
    summary="Create an API key (the key is in this answer only)",
    responses=problem_responses(400, 401, 413, 415, 422),
)
@response_schema(NewKeySchema, 201)
async def create_key(request: web.Request) -> web.Response:
    data = _load(CreateKeySchema(), await read_json(request))
    _check_scopes(request, data.get("scopes"))
    environment = data.pop("environment", None) or request.app[SETTINGS].key_environment
    record, key = await create_key_record(request.app[KEY_STORE], request.app[SECRET], environment=environment, **data)
    view = key_view(record)
    audit_admin_action(request, "key.create", record.id, before=None, after=view)
    return _json({**view, "key": key}, status=201)


@docs(
    **HEADERS_DOC,
    summary="List keys (never the key or its hash)",
    responses=problem_responses(400, 401, 422),
    parameters=[
        {"in": "query", "name": n, "schema": {"type": t}}
        for n, t in [
            ("name", "string"),
            ("owner", "string"),
            ("environment", "string"),
            ("status", "string"),
            ("limit", "integer"),
            ("offset", "integer"),
        ]
    ],
)
@response_schema(KeyListSchema, 200)
async def list_keys(request: web.Request) -> web.Response:
    try:
        query = ListQuerySchema().load(dict(request.query))
    except ValidationError as exc:
        raise validation_problem(exc.messages, "Some query parameters are not valid.") from None
    await request.app[AUTHENTICATOR].flush_usage()
    records = await request.app[KEY_STORE].list(KeyFilter(**query))
    return _json({"keys": [key_view(r) for r in records]})


@docs(**HEADERS_DOC, summary="Show one key", parameters=KEY_ID_PARAM, responses=problem_responses(401, 404))
@response_schema(KeyOutSchema, 200)
async def show_key(request: web.Request) -> web.Response:
    await request.app[AUTHENTICATOR].flush_usage()
    return _json(key_view(await _record_or_404(request)))


@docs(
    **HEADERS_DOC,
    summary="Change name, owner, scopes, expiry, rate limit, metadata or disable a key",
    parameters=KEY_ID_PARAM,
    responses=problem_responses(400, 401, 404, 415, 422),
)
@response_schema(KeyOutSchema, 200)
async def update_key(request: web.Request) -> web.Response:
    record = await _record_or_404(request)
    data = _load(UpdateKeySchema(), await read_json(request))
    _check_scopes(request, data.get("scopes"))
    _refuse_if_revoked(record, "changed")
    before = key_view(record)
    try:
        updated = await request.app[KEY_STORE].update(record.id, data)
    except KeyNotFound:
        raise _key_not_found() from None
    request.app[AUTHENTICATOR].invalidate(record.id)
    after = key_view(updated)
    audit_admin_action(request, "key.update", record.id, before=before, after=after)
    return _json(after)


@docs(
    **HEADERS_DOC,
    summary="Rotate: a new key for the same record; the old one works for grace_seconds",
    parameters=KEY_ID_PARAM,
    responses=problem_responses(400, 401, 404, 415, 422),
)
@response_schema(NewKeySchema, 200)
async def rotate_key(request: web.Request) -> web.Response:
    record = await _record_or_404(request)
    data = _load(RotateSchema(), await read_json(request, allow_empty=True))
    _refuse_if_revoked(record, "rotated")
    try:
        updated, key = await rotate_key_record(
            request.app[KEY_STORE], request.app[SECRET], record, data["grace_seconds"]
        )
    except KeyNotFound:
        raise ProblemError(409, "Conflict", "The key was revoked meanwhile.", type="key-revoked") from None
    request.app[AUTHENTICATOR].invalidate(record.id)
    view = key_view(updated)
    audit_admin_action(
        request,
        "key.rotate",
        record.id,
        before=key_view(record),
        after={**view, "grace_seconds": data["grace_seconds"]},
    )
    return _json({**view, "key": key})


@docs(
    **HEADERS_DOC,
    summary="Revoke a key (idempotent)",
    parameters=KEY_ID_PARAM,
    responses={204: {"description": "Revoked"}, **problem_responses(400, 401, 404, 415, 422)},
)
async def revoke_key(request: web.Request) -> web.Response:
    record = await _record_or_404(request)
    data = _load(RevokeSchema(), await read_json(request, allow_empty=True))
    if record.revoked_at is None:
        updated = await request.app[KEY_STORE].revoke(record.id, data.get("reason"), utcnow())
        request.app[AUTHENTICATOR].invalidate(record.id)
        audit_admin_action(request, "key.revoke", record.id, before=key_view(record), after=key_view(updated))
    return web.Response(status=204)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/api/admin/keys", create_key)
    app.router.add_get("/api/admin/keys", list_keys, allow_head=False)
    app.router.add_get("/api/admin/keys/{key_id}", show_key, allow_head=False)
    app.router.add_patch("/api/admin/keys/{key_id}", update_key)
    app.router.add_post("/api/admin/keys/{key_id}/rotate", rotate_key)
    app.router.add_delete("/api/admin/keys/{key_id}", revoke_key)
