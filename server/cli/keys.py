"""``skywarden keys ...`` and ``skywarden admin-token rotate``: the store directly, for bootstrap and break-glass.

These work without a running server (and while one runs: SQLite WAL and
PostgreSQL both allow it). A running server notices changes when its key cache
entry expires (``key_cache_ttl``); revoke through the admin API for instant effect.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from skywarden.server.auth.backends import SQLITE_SCHEME, display_url, open_checked, open_store
from skywarden.server.auth.credentials import ADMIN_HASH_FILE_NAME, load_server_secret, rotate_admin_token
from skywarden.server.auth.key_operations import CLI_ACTOR, KeyOperations, key_view
from skywarden.server.auth.key_schemas import DEFAULT_GRACE_SECONDS, KEY_ENVIRONMENTS, MAX_LIST_LIMIT, STATUSES
from skywarden.server.auth.store import KeyStore
from skywarden.server.errors import ApiError, ValidationFailed, flatten_errors
from skywarden.server.observability.audit import audit_operator_action
from skywarden.server.plugins.registry import discover_tools
from skywarden.server.settings import Settings
from skywarden.server.shared.backends import SharedState, open_shared_state
from skywarden.server.upstreams import UpstreamConfig, grantable_names


def add_admin_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_setting_flags: Callable[..., None],
    add_json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    keys = sub.add_parser("keys", help="manage API keys on the store directly")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--owner")
    create.add_argument(
        "--scope",
        action="append",
        dest="scopes",
        help="tool name, a scope name tools declare (e.g. weather), or * (repeatable; default *)",
    )
    create.add_argument("--environment", choices=KEY_ENVIRONMENTS)
    create.add_argument("--expires-at", help="ISO 8601 time with zone, e.g. 2027-01-01T00:00:00Z")
    create.add_argument("--rate-limit", help="e.g. 120/minute")
    create.add_argument("--metadata", help="JSON object")
    create.set_defaults(handler=_create, changes_state=True)

    listing = keys_sub.add_parser("list", help="list keys (never the key itself)")
    listing.add_argument("--owner")
    listing.add_argument("--status", choices=STATUSES)
    listing.set_defaults(handler=_list, changes_state=False)

    show = keys_sub.add_parser("show", help="show one key")
    show.add_argument("key_id")
    show.set_defaults(handler=_show, changes_state=False)

    revoke = keys_sub.add_parser("revoke", help="revoke a key")
    revoke.add_argument("key_id")
    revoke.add_argument("--reason")
    revoke.set_defaults(handler=_revoke, changes_state=True)

    rotate = keys_sub.add_parser("rotate", help="issue a new key; the old one works for --grace-seconds")
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=int, default=DEFAULT_GRACE_SECONDS)
    rotate.set_defaults(handler=_rotate, changes_state=True)

    for parser in (create, listing, show, revoke, rotate):
        add_json_flag(parser)
        add_setting_flags(parser, STORE_SETTINGS)

    token = sub.add_parser("admin-token", help="manage the admin token")
    token_sub = token.add_subparsers(dest="token_command", required=True, metavar="ACTION")
    rotate_token = token_sub.add_parser("rotate", help="generate a new admin token, print it once")
    add_setting_flags(rotate_token, STORE_SETTINGS)
    rotate_token.set_defaults(handler=_rotate_admin_token, changes_state=True)


# The settings these commands read (the rest are the server's business).
STORE_SETTINGS = (
    "data_dir",
    "database_url",
    "secret",
    "secret_file",
    "admin_token",
    "admin_token_file",
    "key_environment",
    "redis_url",
    "redis_key_prefix",
    "log_level",
    "log_format",
    "log_file",
    "audit_log_file",
)


class CliError(Exception):
    """A user error: printed as one line, exit code 2."""


def store_path(settings: Settings) -> Path | None:
    """The SQLite file behind ``database_url``, or None for a server database."""
    url = settings.resolved_database_url
    return Path(url.removeprefix(SQLITE_SCHEME)) if url.startswith(SQLITE_SCHEME) else None


def describe_store(settings: Settings) -> str:
    path = store_path(settings)
    if path is None:
        return f"key store {display_url(settings.resolved_database_url)}"
    return f"key store {path} (data_dir {Path(settings.data_dir).resolve()})"


def refuse_a_local_secret_for_a_shared_store(settings: Settings) -> None:
    """Keys made with a secret generated here would verify on no server sharing the store."""
    if store_path(settings) is None and not (settings.secret or settings.secret_file):
        raise CliError(
            "a shared key store's keys are hashed with the servers' secret: set secret_file "
            "(--secret-file or SKYWARDEN_SECRET_FILE) to the file they read; nothing was changed"
        )


@asynccontextmanager
async def command_store(
    settings: Settings, *, writes: bool, needs_secret: bool
) -> AsyncIterator[tuple[KeyStore, SharedState, bytes]]:
    """The store for one command, Redis (with it, running servers hear of every change at once)
    and the server secret (``needs_secret``: a command that hashes a key or seals a credential).
    A read-only command never creates a store (or a secret); an ``ApiError`` becomes one line."""
    path = store_path(settings)
    if not writes and path is not None and not path.exists():
        raise CliError(
            f"no {describe_store(settings)}; run the command where the server keeps its data, "
            "or pass --data-dir / --database-url"
        )
    if needs_secret:
        refuse_a_local_secret_for_a_shared_store(settings)
    secret = load_server_secret(settings.secret, settings.secret_file, settings.data_dir) if needs_secret else b""
    store = open_store(settings.resolved_database_url)
    await open_checked(store)
    print(f"skywarden: using {describe_store(settings)}", file=sys.stderr)
    shared = open_shared_state(settings)
    try:
        yield store, shared, secret
    except ApiError as exc:
        raise CliError(one_line(exc)) from None
    finally:
        await store.close()
        if shared.client is not None:
            await shared.client.aclose()


async def _with_operations(
    settings: Settings, action: Callable[[KeyOperations], Awaitable[Any]], *, writes: bool, hashes: bool = False
) -> Any:
    """Run ``action`` on the store; only a command that makes a key (``hashes``) reads the server secret."""
    async with command_store(settings, writes=writes, needs_secret=hashes) as (store, shared, secret):
        stored = [u.name for u in await store.list_upstreams()]
        upstreams: list[UpstreamConfig | str] = [*settings.upstreams, *stored]
        operations = KeyOperations(
            store=store,
            secret=secret,
            tool_names=lambda: grantable_names(
                discover_tools().grantable_names(), upstreams, settings.gateway_separator
            ),
            default_environment=settings.key_environment,
            changed=lambda key_id: shared.broadcast.publish("key-changed", key_id),
            flush_usage=lambda: shared.broadcast.publish("flush-usage"),
        )
        return await action(operations)


FLAG_NAMES = {
    "expires_at": "--expires-at",
    "rate_limit": "--rate-limit",
    "scopes": "--scope",
    "grace_seconds": "--grace-seconds",
}


def one_line(error: ApiError) -> str:
    if isinstance(error, ValidationFailed):
        return "; ".join(
            f"{FLAG_NAMES.get(e['field'], e['field'])}: {' '.join(e['messages'])}" for e in flatten_errors(error.errors)
        )
    return error.detail


def _print_key(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view))
        return
    for name, value in view.items():
        if name != "key":
            print(f"{name:>16}: {value}")
    if "key" in view:
        print(f"\n{'key':>16}: {view['key']}\n\nStore it now: the key is shown once and cannot be recovered.")


def _create_fields(args: argparse.Namespace) -> dict[str, Any]:
    data: dict[str, Any] = {"name": args.name}
    for name in ("owner", "scopes", "environment", "expires_at", "rate_limit"):
        if getattr(args, name, None) is not None:
            data[name] = getattr(args, name)
    if args.metadata is not None:
        try:
            data["metadata"] = json.loads(args.metadata)
        except ValueError:
            raise CliError("--metadata: not valid JSON") from None
    return data


async def _create(args: argparse.Namespace, settings: Settings) -> int:
    data = _create_fields(args)
    record, key = await _with_operations(settings, lambda ops: ops.create(data, CLI_ACTOR), writes=True, hashes=True)
    _print_key({**key_view(record), "key": key}, args.json)
    return 0


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    query = {k: v for k, v in (("owner", args.owner), ("status", args.status)) if v is not None}
    records = await _with_operations(settings, lambda ops: ops.list({**query, "limit": MAX_LIST_LIMIT}), writes=False)
    views = [key_view(r) for r in records]
    if args.json:
        print(json.dumps(views))
    elif views:
        print(f"{'ID':<26} {'PREFIX':<18} {'STATUS':<9} NAME")
        for v in views:
            print(f"{v['id']:<26} {v['prefix']:<18} {v['status']:<9} {v['name']}")
    return 0


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    record = await _with_operations(settings, lambda ops: ops.get(args.key_id), writes=False)
    _print_key(key_view(record), args.json)
    return 0


async def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    body = {"reason": args.reason} if args.reason is not None else {}
    updated = await _with_operations(settings, lambda ops: ops.revoke(args.key_id, body, CLI_ACTOR), writes=True)
    _print_key(key_view(updated), args.json)
    return 0


async def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    body = {"grace_seconds": args.grace_seconds}
    updated, key = await _with_operations(
        settings, lambda ops: ops.rotate(args.key_id, body, CLI_ACTOR), writes=True, hashes=True
    )
    _print_key({**key_view(updated), "key": key}, args.json)
    return 0


async def _rotate_admin_token(args: argparse.Namespace, settings: Settings) -> int:
    if settings.admin_token or settings.admin_token_file:
        raise CliError("the admin token comes from admin_token/admin_token_file; change it there")
    if store_path(settings) is None:
        raise CliError(
            "servers sharing a key store read the admin token from admin_token_file "
            "(SKYWARDEN_ADMIN_TOKEN_FILE); write a new token of 32 or more characters into that file"
        )
    token = rotate_admin_token(settings.data_dir)
    audit_operator_action(
        CLI_ACTOR.name, "admin_token.rotate", hash_file=str(Path(settings.data_dir).resolve() / ADMIN_HASH_FILE_NAME)
    )
    print(
        f"New admin token (shown once; restart running servers to use it):\n\n    {token}\n",
        file=sys.stdout,
    )
    return 0
