"""``skywarden keys ...`` and ``skywarden admin-token rotate``: the store directly, for bootstrap and break-glass.

These work without a running server (and while one runs: SQLite WAL and
PostgreSQL both allow it). A running server notices changes when its key cache
entry expires (``key_cache_ttl``); revoke through the admin API for instant effect.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any

from marshmallow import ValidationError

from skywarden.server.settings import Settings


def add_admin_commands(sub: argparse._SubParsersAction, add_setting_flags: Callable[..., None]) -> None:
    keys = sub.add_parser("keys", help="manage API keys on the store directly")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--owner")
    create.add_argument("--scope", action="append", dest="scopes", help="tool name or * (repeatable; default *)")
    create.add_argument("--environment", choices=("live", "test", "dev"))
    create.add_argument("--expires-at", help="ISO 8601 time with zone, e.g. 2027-01-01T00:00:00Z")
    create.add_argument("--rate-limit", help="e.g. 120/minute")
    create.add_argument("--metadata", help="JSON object")
    create.set_defaults(handler=_create)

    listing = keys_sub.add_parser("list", help="list keys (never the key itself)")
    listing.add_argument("--owner")
    listing.add_argument("--status", choices=("active", "disabled", "revoked", "expired"))
    listing.set_defaults(handler=_list)

    show = keys_sub.add_parser("show", help="show one key")
    show.add_argument("key_id")
    show.set_defaults(handler=_show)

    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason")
    revoke.set_defaults(handler=_revoke)

    rotate = keys_sub.add_parser("rotate", help="issue a new key; the old one works for --grace-seconds")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=int, default=3600)
    rotate.set_defaults(handler=_rotate)

    for parser in (create, listing, show, revoke, rotate):
        parser.add_argument("--json", action="store_true", help="machine-readable output")
        add_setting_flags(parser, STORE_SETTINGS)

    token = sub.add_parser("admin-token", help="manage the admin token")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    rotate_token = token_sub.add_parser("rotate", help="generate a new admin token, print it once")
    add_setting_flags(rotate_token, STORE_SETTINGS)
    rotate_token.set_defaults(handler=_rotate_admin_token)


# The settings these commands read (the rest are the server's business).
STORE_SETTINGS = (
    "data_dir",
    "database_url",
    "secret",
    "secret_file",
    "admin_token",
    "admin_token_file",
    "key_environment",
    "log_level",
    "log_format",
    "log_file",
    "audit_log_file",
)


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


async def _with_store(settings: Settings, action: Callable[[Any, bytes], Any]) -> Any:
    from skywarden.server.auth.credentials import load_server_secret
    from skywarden.server.auth.store import open_store

    secret = load_server_secret(settings.secret, settings.secret_file, settings.data_dir)
    store = open_store(settings.resolved_database_url)
    await store.open()
    try:
        return await action(store, secret)
    finally:
        await store.close()


def _print_key(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view))
        return
    for name, value in view.items():
        if name != "key":
            print(f"{name:>16}: {value}")
    if "key" in view:
        print(f"\n{'key':>16}: {view['key']}\n\nStore it now: the key is shown once and cannot be recovered.")


def _parse_create(args: argparse.Namespace) -> dict[str, Any]:
    from skywarden.server.api.admin import CreateKeySchema

    data: dict[str, Any] = {"name": args.name}
    for name in ("owner", "scopes", "environment", "expires_at", "rate_limit"):
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if args.metadata is not None:
        try:
            data["metadata"] = json.loads(args.metadata)
        except ValueError:
            raise CliError("--metadata: not valid JSON") from None
    try:
        return CreateKeySchema().load(data)
    except ValidationError as exc:
        from skywarden.server.http.problems import describe_errors

        raise CliError(describe_errors(exc.messages)) from None


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.api.admin import create_key_record, key_view, unknown_scopes
    from skywarden.server.observability.audit import audit_cli_action
    from skywarden.tools.registry import discover_tools

    data = _parse_create(args)
    unknown = unknown_scopes(discover_tools(), data.get("scopes"))
    if unknown:
        raise CliError(f"--scope: unknown tool {', '.join(unknown)}")
    environment = data.pop("environment", None) or settings.key_environment

    async def action(store, secret):
        return await create_key_record(store, secret, environment=environment, **data)

    record, key = await _with_store(settings, action)
    view = key_view(record)
    audit_cli_action("key.create", record.id, before=None, after=view)
    _print_key({**view, "key": key}, args.json)
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.api.admin import key_view
    from skywarden.server.auth.records import KeyFilter

    async def action(store, secret):
        return await store.list(KeyFilter(owner=args.owner, status=args.status, limit=1000))

    records = await _with_store(settings, action)
    views = [key_view(r) for r in records]
    if args.json:
        print(json.dumps(views))
    else:
        for v in views:
            print(f"{v['id']:<26} {v['prefix']:<18} {v['status']:<9} {v['name']}")
    return 0


async def _get(settings: Settings, key_id: str):
    async def action(store, secret):
        return await store.get(key_id)

    record = await _with_store(settings, action)
    if record is None:
        raise CliError(f"no key with id {key_id!r}")
    return record


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.api.admin import key_view

    _print_key(key_view(await _get(settings, args.key_id)), args.json)
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.api.admin import key_view
    from skywarden.server.auth.records import utcnow
    from skywarden.server.observability.audit import audit_cli_action

    record = await _get(settings, args.key_id)

    async def action(store, secret):
        return await store.revoke(record.id, args.reason, utcnow())

    updated = await _with_store(settings, action)
    if record.revoked_at is None:
        audit_cli_action("key.revoke", record.id, before=key_view(record), after=key_view(updated))
    _print_key(key_view(updated), args.json)
    return 0


async def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.api.admin import MAX_GRACE, key_view, rotate_key_record
    from skywarden.server.observability.audit import audit_cli_action

    if not 0 <= args.grace_seconds <= MAX_GRACE.total_seconds():
        raise CliError(f"--grace-seconds: must be from 0 to {int(MAX_GRACE.total_seconds())}")
    record = await _get(settings, args.key_id)
    if record.revoked_at is not None:
        raise CliError("a revoked key cannot be rotated")

    async def action(store, secret):
        return await rotate_key_record(store, secret, record, args.grace_seconds)

    updated, key = await _with_store(settings, action)
    audit_cli_action("key.rotate", record.id, before=key_view(record), after=key_view(updated))
    _print_key({**key_view(updated), "key": key}, args.json)
    return 0


async def _rotate_admin_token(args: argparse.Namespace, settings: Settings) -> int:
    from skywarden.server.auth.credentials import rotate_admin_token

    if settings.admin_token or settings.admin_token_file:
        raise CliError("the admin token comes from admin_token/admin_token_file; change it there")
    token = rotate_admin_token(settings.data_dir)
    print(
        f"New admin token (shown once; restart running servers to use it):\n\n    {token}\n",
        file=sys.stdout,
    )
    return 0
