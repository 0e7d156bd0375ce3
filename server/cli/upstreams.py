"""``skywarden upstreams ...``: the upstreams kept in the key store, directly (docs/gateway.md).

The same operations and rules as the admin API (``auth.upstream_operations``). Running servers
hear of a change at once through Redis when ``redis_url`` is set, else within
``STORE_POLL_SECONDS`` (they read the store that often).
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from collections.abc import Awaitable, Callable
from typing import Any

from skywarden.server.auth.key_operations import CLI_ACTOR
from skywarden.server.auth.upstream_operations import StoredEntry, UpstreamOperations, config_view
from skywarden.server.cli.keys import STORE_SETTINGS, CliError, command_store
from skywarden.server.settings import Settings

UPSTREAM_SETTINGS = (
    *STORE_SETTINGS,
    "upstreams",
    "gateway_separator",
    "upstream_admin_commands",
    "upstream_admin_env",
)
MAX_OPTIONS_FILE_BYTES = 1024 * 1024


def add_upstream_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    add_setting_flags: Callable[..., None],
    add_json_flag: Callable[[argparse.ArgumentParser], None],
) -> None:
    upstreams = sub.add_parser("upstreams", help="manage the upstream MCP servers kept in the key store")
    actions = upstreams.add_subparsers(dest="upstreams_command", required=True, metavar="ACTION")

    listing = actions.add_parser("list", help="list the upstreams: declared in settings and stored")
    listing.set_defaults(handler=_list, changes_state=False)
    show = actions.add_parser("show", help="show one upstream (never a credential)")
    show.add_argument("name")
    show.set_defaults(handler=_show, changes_state=False)

    add = actions.add_parser("add", help="add an upstream: the options of its table as JSON or a file")
    add.add_argument("name")
    update = actions.add_parser("update", help="change a stored upstream's options (null restores a default)")
    update.add_argument("name")
    for parser, handler in ((add, _add), (update, _update)):
        given = parser.add_mutually_exclusive_group(required=True)
        given.add_argument("--options", metavar="JSON", help='e.g. \'{"url": "https://mcp.example.com/mcp"}\'')
        given.add_argument("--options-file", metavar="PATH", help="a TOML table or a JSON object of options")
        parser.set_defaults(handler=handler, changes_state=True)

    for verb, enabled in (("enable", True), ("disable", False)):
        toggle = actions.add_parser(verb, help=f"{verb} a stored upstream")
        toggle.add_argument("name")
        toggle.set_defaults(handler=_toggle, enabled=enabled, changes_state=True)
    remove = actions.add_parser("remove", help="remove a stored upstream")
    remove.add_argument("name")
    remove.set_defaults(handler=_remove, changes_state=True)

    for parser in (listing, show, add, update, remove, *(actions.choices[v] for v in ("enable", "disable"))):
        add_json_flag(parser)
        add_setting_flags(parser, UPSTREAM_SETTINGS)


async def _with_operations(
    settings: Settings, action: Callable[[UpstreamOperations], Awaitable[Any]], *, writes: bool, seals: bool = False
) -> Any:
    """Run ``action`` on the store; only a command that stores options (``seals``: credentials are
    sealed with the servers' secret) reads the server secret."""
    async with command_store(settings, writes=writes, needs_secret=seals) as (store, shared, secret):
        operations = UpstreamOperations(
            store=store,
            secret=secret,
            declared=settings.upstreams,
            separator=settings.gateway_separator,
            admin_commands=settings.upstream_admin_commands,
            admin_env=settings.upstream_admin_env,
            changed=lambda: shared.broadcast.publish("upstreams-changed"),
        )
        return await action(operations)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    if args.options is not None:
        try:
            found = json.loads(args.options)
        except (ValueError, RecursionError):
            raise CliError("--options: not valid JSON") from None
    else:
        try:
            with open(args.options_file, "rb") as fh:
                raw = fh.read(MAX_OPTIONS_FILE_BYTES + 1)
        except OSError as exc:
            raise CliError(f"--options-file: {args.options_file} cannot be read: {exc.strerror}") from None
        if len(raw) > MAX_OPTIONS_FILE_BYTES:
            raise CliError(f"--options-file: larger than {MAX_OPTIONS_FILE_BYTES} bytes")
        try:
            text = raw.decode()
            found = json.loads(text) if text.lstrip().startswith("{") else tomllib.loads(text)
        except (ValueError, RecursionError):  # UnicodeDecodeError and TOMLDecodeError are ValueErrors
            raise CliError("--options-file: neither a TOML table nor a JSON object") from None
    if not isinstance(found, dict):
        raise CliError("--options: must be a JSON object of the upstream's options")
    return found


def _entry_view(entry: StoredEntry) -> dict[str, Any]:
    view: dict[str, Any] = {"name": entry.record.name, "source": "admin"}
    if entry.config is not None:
        view["options"] = config_view(entry.config)
    else:
        view["problem"] = entry.problem
    view.update(
        created_at=entry.record.created_at.isoformat(),
        updated_at=entry.record.updated_at.isoformat(),
        created_by=entry.record.created_by,
    )
    return view


def _print(view: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(view))
        return
    for name, value in view.items():
        print(f"{name:>12}: {value}")


async def _list(args: argparse.Namespace, settings: Settings) -> int:
    entries = await _with_operations(settings, lambda ops: ops.entries(), writes=False)
    views: list[dict[str, Any]] = [
        {"name": c.name, "source": "settings", "options": config_view(c)} for c in settings.upstreams
    ]
    views += [_entry_view(e) for e in entries if e.record.name not in {c.name for c in settings.upstreams}]
    views.sort(key=lambda v: str(v["name"]))
    if args.json:
        print(json.dumps(views))
    elif views:
        print(f"{'NAME':<32} {'SOURCE':<8} {'STATE':<8} WHERE")
    for v in [] if args.json else views:
        options = v.get("options", {})
        where = options.get("command") or options.get("url") or v.get("problem", "")
        enabled = "enabled" if options.get("enabled") else "disabled" if options else "unusable"
        print(f"{v['name']:<32} {v['source']:<8} {enabled:<8} {where}")
    return 0


async def _show(args: argparse.Namespace, settings: Settings) -> int:
    declared = next((c for c in settings.upstreams if c.name == args.name), None)
    if declared is not None:
        _print({"name": declared.name, "source": "settings", "options": config_view(declared)}, args.json)
        return 0
    entry = await _with_operations(settings, lambda ops: ops.get(args.name), writes=False)
    _print(_entry_view(entry), args.json)
    return 0


async def _changed(args: argparse.Namespace, settings: Settings, change: Callable[[UpstreamOperations], Any]) -> int:
    async def run(ops: UpstreamOperations) -> StoredEntry:
        await change(ops)
        return await ops.get(args.name)

    _print(_entry_view(await _with_operations(settings, run, writes=True, seals=True)), args.json)
    return 0


async def _add(args: argparse.Namespace, settings: Settings) -> int:
    body = {**_options(args), "name": args.name}
    return await _changed(args, settings, lambda ops: ops.add(body, CLI_ACTOR))


async def _update(args: argparse.Namespace, settings: Settings) -> int:
    body = _options(args)
    return await _changed(args, settings, lambda ops: ops.update(args.name, body, CLI_ACTOR))


async def _toggle(args: argparse.Namespace, settings: Settings) -> int:
    return await _changed(args, settings, lambda ops: ops.update(args.name, {"enabled": args.enabled}, CLI_ACTOR))


async def _remove(args: argparse.Namespace, settings: Settings) -> int:
    await _with_operations(settings, lambda ops: ops.remove(args.name, CLI_ACTOR), writes=True)
    print(f"removed upstream {args.name}", file=sys.stderr)
    return 0
