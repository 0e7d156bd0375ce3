"""The fields an admin may set on a key, validated the same way for the admin API and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates, validates_schema

from skywarden.server.auth.records import ACTIVE, DISABLED, EXPIRED, REVOKED, utcnow
from skywarden.server.rates import parse_rate

MAX_METADATA_BYTES = 4096
MAX_GRACE = timedelta(days=30)
KEY_ENVIRONMENTS = ("live", "test", "dev")
STATUSES = (ACTIVE, DISABLED, REVOKED, EXPIRED)
DEFAULT_GRACE_SECONDS = 3600
MAX_LIST_LIMIT = 1000
DEFAULT_LIST_LIMIT = 100
MAX_LIST_OFFSET = 2**31 - 1  # within every store's integer range
LATEST_EXPIRY = datetime(9999, 1, 1, tzinfo=UTC)


def _rate_limit(value: str | None) -> None:
    if value is None:
        return
    if not value.strip():
        raise ValidationError("Must not be empty; null means the server's rate_limit.")
    try:
        parse_rate(value)
    except ValueError as exc:
        raise ValidationError(
            f"Must be a rate in the limits notation, e.g. '120/minute' or '10/second;1000/day': {exc}."
        ) from None


def _metadata(value: dict[str, Any]) -> None:
    if len(json.dumps(value)) > MAX_METADATA_BYTES:
        raise ValidationError(f"Must be at most {MAX_METADATA_BYTES} bytes as JSON.")


def _future(value: datetime | None) -> None:
    """In the future and within what every store can hold once converted to UTC."""
    if value is None:
        return
    try:
        in_utc = value.astimezone(UTC)
    except OverflowError:
        in_utc = None
    if in_utc is None or in_utc >= LATEST_EXPIRY:
        raise ValidationError(f"Must be before {LATEST_EXPIRY.isoformat().replace('+00:00', 'Z')}.")
    if in_utc <= utcnow():
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
    def _not_empty(self, data: dict[str, Any], **kwargs: Any) -> None:
        if not data:
            raise ValidationError("Give at least one field to change.")


class RotateSchema(Schema):
    class Meta:
        unknown = RAISE

    grace_seconds = fields.Integer(
        strict=True,
        load_default=DEFAULT_GRACE_SECONDS,
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
    limit = fields.Integer(load_default=DEFAULT_LIST_LIMIT, validate=validate.Range(1, MAX_LIST_LIMIT))
    offset = fields.Integer(load_default=0, validate=validate.Range(0, MAX_LIST_OFFSET))

    @validates("name")
    def _name(self, value: str, **kwargs: Any) -> None:
        if not value:
            raise ValidationError("Must not be empty.")


USAGE_WINDOWS = ("24h", "30d")
KEY_ID_LENGTH = (1, 64)  # a key id as a query parameter: shortest, longest
MAX_DENIALS = 500


class UsageQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    window = fields.String(load_default="24h", validate=validate.OneOf(USAGE_WINDOWS))
    key_id = fields.String(validate=validate.Length(*KEY_ID_LENGTH))
    top = fields.Integer(load_default=10, validate=validate.Range(1, 50))


class DenialsQuerySchema(Schema):
    class Meta:
        unknown = RAISE

    limit = fields.Integer(load_default=100, validate=validate.Range(1, MAX_DENIALS))
