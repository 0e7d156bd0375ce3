"""What an admin can do to keys, shared by the admin API and the ``skywarden keys`` CLI.

Input is validated with the schemas in ``auth.key_schemas``; refusals are
``ApiError``s (404 unknown key, 409 revoked, 422 bad field) that the API
renders as problem+json and the CLI prints as one line. Each change is audited
with the actor that made it, and the verified-key cache hears of it at once.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable, Iterable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from marshmallow import Schema, ValidationError

from skywarden.server import keys
from skywarden.server.auth.key_schemas import (
    CreateKeySchema,
    ListQuerySchema,
    RevokeSchema,
    RotateSchema,
    UpdateKeySchema,
    UsageQuerySchema,
)
from skywarden.server.auth.records import KeyFilter, KeyNotFound, KeyRecord, usage_hour, utcnow
from skywarden.server.auth.store import KeyStore
from skywarden.server.errors import KEY_NOT_FOUND, KEY_REVOKED, ApiError, ValidationFailed
from skywarden.server.observability.audit import audit_admin_action
from skywarden.server.rates import stored_rate_problem
from skywarden.server.upstreams import UPSTREAM_SCOPE_PREFIX

KEY_ID_PREFIX = "key_"
KEY_ID_RANDOM_BYTES = 10
MAX_KEY_ID_LENGTH = 64


def new_key_id() -> str:
    return KEY_ID_PREFIX + secrets.token_hex(KEY_ID_RANDOM_BYTES)


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z") if value else None


def key_view(record: KeyRecord) -> dict[str, Any]:
    """A key as admins see it: everything but the key and its hash."""
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
        "rate_limit_problem": stored_rate_problem(record.rate_limit),
        "metadata": record.metadata,
        "created_by": record.created_by,
    }


def load(schema: Schema, data: Any, detail: str = "Some fields are not valid.") -> dict[str, Any]:
    """Validate admin input; a 422 ``ValidationFailed`` names each bad field."""
    if not isinstance(data, dict):
        raise ValidationFailed({"_schema": ["The body must be a JSON object."]})
    try:
        loaded: dict[str, Any] = schema.load(data)
        return loaded
    except ValidationError as exc:
        raise ValidationFailed(exc.messages_dict, detail) from None


def _key_not_found(key_id: str) -> ApiError:
    return ApiError(KEY_NOT_FOUND, f"There is no key with id {key_id[:MAX_KEY_ID_LENGTH]!r}.")


def _refuse_if_revoked(record: KeyRecord, verb: str) -> None:
    if record.revoked_at is not None:
        raise ApiError(KEY_REVOKED, f"A revoked key cannot be {verb}.")


@dataclass(frozen=True)
class Actor:
    """Who made an admin change, for the audit log."""

    name: str
    request_id: str | None = None
    identity: dict[str, str] | None = None  # an admin signed in with an access token

    @property
    def display_name(self) -> str:
        """Who, in a word: a signed-in admin's email or name, else "admin" or "cli"."""
        found = self.identity or {}
        return (found.get("email") or found.get("subject_name") or found.get("subject") or self.name)[:200]


CLI_ACTOR = Actor("cli")


def _audit(actor: Actor, action: str, key_id: str, **views: Any) -> None:
    audit_admin_action(actor.name, actor.request_id, action, key_id, identity=actor.identity, **views)


@dataclass
class KeyOperations:
    store: KeyStore
    secret: bytes
    tool_names: Callable[[], Iterable[str]]
    default_environment: str
    changed: Callable[[str], Awaitable[None]] | None = None  # drop the key from every verified-key cache
    flush_usage: Callable[[], Awaitable[None]] | None = None  # make use counts current (every instance) before a read

    def _check_scopes(self, scopes: list[str] | None) -> None:
        names = self.tool_names()
        known = names if isinstance(names, AbstractSet) else set(names)  # GrantableNames: upstream prefixes too
        unknown = [s for s in scopes or [] if s != "*" and s not in known]
        if unknown:
            raise ValidationFailed({"scopes": [_unknown_scope(name) for name in unknown]})

    async def _changed(self, key_id: str) -> None:
        if self.changed is not None:
            await self.changed(key_id)

    async def _current_usage(self) -> None:
        if self.flush_usage is not None:
            await self.flush_usage()

    async def get(self, key_id: str) -> KeyRecord:
        await self._current_usage()
        record = await self.store.get(key_id) if len(key_id) <= MAX_KEY_ID_LENGTH else None
        if record is None:
            raise _key_not_found(key_id)
        return record

    async def list(self, query: dict[str, Any]) -> list[KeyRecord]:
        filters = load(ListQuerySchema(), query, "Some query parameters are not valid.")
        await self._current_usage()
        return await self.store.list(KeyFilter(**filters))

    async def usage(self, query: dict[str, Any]) -> dict[str, Any]:
        """Uses over the last 24 hours (hourly buckets) or 30 days (daily), for every key or one,
        and the keys used most; made current on every instance first."""
        wanted = load(UsageQuerySchema(), query, "Some query parameters are not valid.")
        await self._current_usage()
        hourly = wanted["window"] == "24h"
        step, buckets = (timedelta(hours=1), 24) if hourly else (timedelta(days=1), 30)
        now = usage_hour(utcnow())
        end = now + timedelta(hours=1) if hourly else now.replace(hour=0) + timedelta(days=1)
        start = end - step * buckets
        series = [0] * buckets
        per_key: dict[str, int] = {}
        for key_id, hour, count in await self.store.usage_since(start):
            if "key_id" in wanted and key_id != wanted["key_id"]:
                continue
            index = int((hour - start) / step)
            if 0 <= index < buckets:
                series[index] += count
                per_key[key_id] = per_key.get(key_id, 0) + count
        top = []
        for key_id, count in sorted(per_key.items(), key=lambda item: (-item[1], item[0]))[: wanted["top"]]:
            record = await self.store.get(key_id)
            if record is not None:
                top.append({"key_id": key_id, "name": record.name, "prefix": record.prefix, "count": count})
        return {
            "window": wanted["window"],
            "bucket": "hour" if hourly else "day",
            "key_id": wanted.get("key_id"),
            "series": [{"start": start + step * i, "count": n} for i, n in enumerate(series)],
            "total": sum(series),
            "top": top,
        }

    async def create(self, data: Any, actor: Actor) -> tuple[KeyRecord, str]:
        """Create a key; the one place a full key exists. Returns the record and the key."""
        fields = load(CreateKeySchema(), data)
        self._check_scopes(fields.get("scopes"))
        environment = fields.pop("environment", None) or self.default_environment
        key = keys.generate_key(environment)
        record = KeyRecord(
            id=new_key_id(),
            name=fields["name"],
            prefix=keys.display_prefix(key),
            environment=environment,
            scopes=list(fields.get("scopes") or ["*"]),
            created_at=utcnow(),
            owner=fields.get("owner"),
            expires_at=fields.get("expires_at"),
            rate_limit=fields.get("rate_limit"),
            metadata=fields.get("metadata") or {},
            created_by=actor.display_name,
        )
        await self.store.create(record, keys.hash_key(key, self.secret))
        _audit(actor, "key.create", record.id, before=None, after=key_view(record))
        return record, key

    async def update(self, key_id: str, data: Any, actor: Actor) -> KeyRecord:
        changes = load(UpdateKeySchema(), data)
        self._check_scopes(changes.get("scopes"))
        record = await self.get(key_id)
        _refuse_if_revoked(record, "changed")
        try:
            updated = await self.store.update(record.id, changes)
        except KeyNotFound:
            raise _key_not_found(key_id) from None
        await self._changed(record.id)
        _audit(actor, "key.update", record.id, before=key_view(record), after=key_view(updated))
        return updated

    async def rotate(self, key_id: str, data: Any, actor: Actor) -> tuple[KeyRecord, str]:
        """A new key for the same record; the old one keeps working for ``grace_seconds``."""
        grace = load(RotateSchema(), data)["grace_seconds"]
        record = await self.get(key_id)
        _refuse_if_revoked(record, "rotated")
        key = keys.generate_key(record.environment)
        now = utcnow()
        try:
            updated = await self.store.rotate(
                record.id,
                keys.hash_key(key, self.secret),
                keys.display_prefix(key),
                now + timedelta(seconds=grace),
                now,
            )
        except KeyNotFound:
            raise ApiError(KEY_REVOKED, "The key was revoked meanwhile.") from None
        await self._changed(record.id)
        _audit(
            actor,
            "key.rotate",
            record.id,
            before=key_view(record),
            after={**key_view(updated), "grace_seconds": grace},
        )
        return updated, key

    async def revoke(self, key_id: str, data: Any, actor: Actor) -> KeyRecord:
        """Revoke (idempotent: revoking a revoked key changes and audits nothing)."""
        reason = load(RevokeSchema(), data).get("reason")
        record = await self.get(key_id)
        if record.revoked_at is not None:
            return record
        updated = await self.store.revoke(record.id, reason, utcnow())
        await self._changed(record.id)
        _audit(actor, "key.revoke", record.id, before=key_view(record), after=key_view(updated))
        return updated


def _unknown_scope(name: str) -> str:
    """Why a scope is refused: ``upstream:<name>`` names an upstream, anything else a tool."""
    if name.startswith(UPSTREAM_SCOPE_PREFIX):
        upstream = name.removeprefix(UPSTREAM_SCOPE_PREFIX)[:64]
        return f"No upstream named {upstream!r}: {UPSTREAM_SCOPE_PREFIX}<name> grants an upstream's tools."
    return f"Unknown tool: {name}"
