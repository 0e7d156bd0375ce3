"""``skywarden db status|upgrade|copy``: the key store's schema, and moving keys between stores.

``copy`` moves every key with its hashes (rotated-out ones and their grace periods included),
scopes, limits, history and usage, so existing keys keep working — provided the target is
served with the same server secret (key hashes are HMACs with it). The target must hold no
keys yet; it is migrated first.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from skywarden.server.auth.backends import SQLITE_SCHEME, display_url, open_checked, open_store
from skywarden.server.auth.key_operations import CLI_ACTOR
from skywarden.server.auth.records import KeyFilter, KeyRecord, StoredHash
from skywarden.server.auth.store import KeyStore
from skywarden.server.cli.keys import CliError, describe_store, store_path
from skywarden.server.observability.audit import audit_operator_action
from skywarden.server.rates import stored_rate_problem
from skywarden.server.settings import Settings, parse_database_url

STORE_SETTINGS = ("data_dir", "database_url", "log_level", "log_format", "log_file", "audit_log_file")
STATUS_PAGE = 500  # keys read at a time while looking for unusable rate limits
COPY_SETTINGS = ("data_dir", "log_level", "log_format", "log_file", "audit_log_file")  # the stores are --from/--to
UPSTREAMS_SINCE = 4  # the schema version that keeps upstreams


def add_db_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser], add_setting_flags: Callable[..., None]
) -> None:
    db = sub.add_parser("db", help="the key store: schema version, upgrade, copy between stores")
    db_sub = db.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    status = db_sub.add_parser("status", help="the store's schema version (changes nothing)")
    status.set_defaults(handler=_status, changes_state=False)
    upgrade = db_sub.add_parser("upgrade", help="apply pending schema migrations")
    upgrade.set_defaults(handler=_upgrade, changes_state=True)
    for parser in (status, upgrade):
        add_setting_flags(parser, STORE_SETTINGS)
    copy = db_sub.add_parser("copy", help="copy every key from one store to another (same server secret)")
    copy.add_argument("--from", dest="source", required=True, metavar="URL", help="sqlite:///… or postgresql://…")
    copy.add_argument("--to", dest="target", required=True, metavar="URL", help="sqlite:///… or postgresql://…")
    copy.set_defaults(handler=_copy, changes_state=True)
    add_setting_flags(copy, COPY_SETTINGS)


async def _status(args: argparse.Namespace, settings: Settings) -> int:
    path = store_path(settings)
    if path is not None and not path.exists():
        raise CliError(f"no {describe_store(settings)}")
    store = open_store(settings.resolved_database_url)
    await open_checked(store, migrate=False)
    try:
        version = await store.schema_version()
        newest = store.NEWEST_VERSION
        problems = await _rate_problems(store) if version == newest else []
    finally:
        await store.close()
    state = "up to date" if version == newest else f"{newest - version} migration(s) pending"
    print(f"{describe_store(settings)}: schema version {version} of {newest} ({state})")
    for record, problem in problems:
        shown = (record.rate_limit or "")[:100]
        print(
            f"key {record.id} ({record.name}): rate_limit {shown!r}: {problem}; every request "
            f"with it is refused until it is changed (PATCH /api/admin/keys/{record.id} with a rate_limit, or null)"
        )
    return 0


async def _rate_problems(store: KeyStore) -> list[tuple[KeyRecord, str]]:
    """Keys (not revoked) whose stored rate limit refuses every request: one an earlier version
    stored that allows nothing or is no rate (``rates.stored_rate``)."""
    found, offset = [], 0
    while page := await store.list(KeyFilter(limit=STATUS_PAGE, offset=offset)):
        for record in page:
            problem = stored_rate_problem(record.rate_limit)
            if problem is not None and record.revoked_at is None:
                found.append((record, problem))
        offset += len(page)
    return found


async def _upgrade(args: argparse.Namespace, settings: Settings) -> int:
    store = open_store(settings.resolved_database_url)
    await open_checked(store, migrate=False)
    try:
        before = await store.schema_version()
    finally:
        await store.close()
    await open_checked(store)
    try:
        version = await store.schema_version()
    finally:
        await store.close()
    audit_operator_action(
        CLI_ACTOR.name, "db.upgrade", store=display_url(settings.resolved_database_url), before=before, after=version
    )
    print(f"{describe_store(settings)}: schema version {version} (up to date)")
    return 0


def _store_url(flag: str, url: str) -> str:
    try:
        return parse_database_url(url)
    except ValueError as exc:
        raise CliError(f"{flag}: {exc}") from None


async def _copy(args: argparse.Namespace, settings: Settings) -> int:
    source_url, target_url = _store_url("--from", args.source), _store_url("--to", args.target)
    if source_url == target_url:
        raise CliError("--from and --to name the same store")
    if source_url.startswith(SQLITE_SCHEME) and not Path(source_url.removeprefix(SQLITE_SCHEME)).exists():
        raise CliError(f"--from: no SQLite store at {source_url.removeprefix(SQLITE_SCHEME)}")
    source, target = open_store(source_url), open_store(target_url)
    copied: list[tuple[KeyRecord, list[StoredHash]]] = []
    await open_checked(source, migrate=False)
    try:
        await open_checked(target)
        try:
            if await target.list(KeyFilter(limit=1)) or await target.list_upstreams():
                raise CliError("the target store already holds keys or upstreams; copy into an empty one")
            keys = await source.export_keys()
            # upstreams are kept from schema version 4 on; their credentials stay sealed as they are
            upstreams = await source.list_upstreams() if await source.schema_version() >= UPSTREAMS_SINCE else []
            copied_upstreams = 0
            try:
                for record, hashes in keys:
                    await target.import_key(record, hashes)
                    copied.append((record, hashes))
                for upstream in upstreams:
                    await target.add_upstream(upstream, len(upstreams))
                    copied_upstreams += 1
            finally:  # a copy that stopped half-way is audited too, with what it copied
                audit_operator_action(
                    CLI_ACTOR.name,
                    "db.copy",
                    source=display_url(source_url),
                    target=display_url(target_url),
                    keys=len(copied),
                    upstreams=copied_upstreams,
                    complete=len(copied) == len(keys) and copied_upstreams == len(upstreams),
                )
        finally:
            await target.close()
    finally:
        await source.close()
    revoked = sum(1 for record, _ in copied if record.revoked_at is not None)
    kept = sum(len(h) for _, h in copied)
    print(f"copied {len(copied)} keys ({revoked} revoked) with {kept} hashes, and {copied_upstreams} upstreams")
    return 0
