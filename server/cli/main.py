"""``skywarden``: run the server, list tools, manage keys on the store directly."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from skywarden.server import __version__
from skywarden.server.auth.credentials import CredentialError
from skywarden.server.cli.keys import CliError
from skywarden.server.cli.tls import TLSConfigError
from skywarden.server.settings import Settings, SettingsError, default_of, env_name, load_settings, setting_fields


def _add_setting_flags(parser: argparse.ArgumentParser, only: tuple[str, ...] | None = None) -> None:
    group = parser.add_argument_group("settings (flag > environment > config file > default)")
    group.add_argument("--config", metavar="PATH", help="TOML config file (env SKYWARDEN_CONFIG)")
    for f in setting_fields():
        if only is not None and f.name not in only:
            continue
        default = "" if f.metadata.get("secret") else f" (default: {_show_default(default_of(f))})"
        group.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']}; env {env_name(f.name)}{default}",
        )


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json`` after a command, as before it: SUPPRESS keeps the command's parser from
    overwriting a ``--json`` given before the command with its own default."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def _show_default(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(value) or "none"
    if isinstance(value, Mapping):
        return "none" if not value else str(dict(value))
    return str(value) if value != "" else "unset"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="skywarden", description="Skywarden MCP tool server")
    parser.add_argument("--version", action="version", version=f"skywarden {__version__}")
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output, for the commands that print (here or after them)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    _add_setting_flags(serve)

    tools = sub.add_parser("tools", help="list the tools that load, and from which distribution")
    add_json_flag(tools)
    serve.set_defaults(changes_state=False)  # the server audits with its own settings
    tools.set_defaults(changes_state=False)

    from skywarden.server.cli.db import add_db_commands
    from skywarden.server.cli.keys import add_admin_commands

    add_admin_commands(sub, _add_setting_flags, add_json_flag)
    add_db_commands(sub, _add_setting_flags)
    return parser


def settings_from_args(args: argparse.Namespace) -> Settings:
    cli = {f.name: getattr(args, f.name, None) for f in setting_fields()}
    return load_settings(cli=cli, config_path=getattr(args, "config", None))


def _cmd_tools(args: argparse.Namespace) -> int:
    import json

    from skywarden.server.plugins.registry import discover_tools

    registry = discover_tools()
    if args.json:
        print(json.dumps([{"name": t.name, "title": t.title, "distribution": t.distribution} for t in registry]))
    else:
        for t in registry:
            print(f"{t.name:<32} {t.distribution:<32} {t.title}")
    return 0


def _cmd_serve(settings: Settings) -> int:
    if settings.workers > 1:
        from skywarden.server.cli.workers import supervise

        return supervise(settings)
    from skywarden.server.cli.serve import serve

    return serve(settings)


def _run_store_command(args: argparse.Namespace, settings: Settings) -> int:
    """A ``keys``, ``admin-token`` or ``db`` command; one that changes state runs only once its
    audit file is open (``audit_trail``)."""
    from skywarden.server.cli.audit_trail import audit_write_failed, cli_audit_file, require_audit_file
    from skywarden.server.observability.logging_setup import close_sinks, configure_logging

    audit = require_audit_file(settings) if args.changes_state else cli_audit_file(settings)
    sinks = configure_logging(
        settings.log_level,
        settings.log_format,
        stream=sys.stderr,
        log_file=settings.log_file,
        audit_log_file=audit.path,
    )
    try:
        code: int = asyncio.run(args.handler(args, settings))
    finally:
        close_sinks()
    lost = audit_write_failed(audit, sinks) if args.changes_state else None
    if lost:
        print(f"skywarden: {lost}", file=sys.stderr)
        return 1
    return code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        if args.command == "tools":
            return _cmd_tools(args)
        settings = settings_from_args(args)
        if args.command == "serve":
            return _cmd_serve(settings)
        return _run_store_command(args, settings)
    except (SettingsError, CliError, CredentialError, TLSConfigError) as exc:
        print(f"skywarden: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # start-up failures: one clear line, no trace
        from skywarden.server.auth.backends import StoreOpenError
        from skywarden.server.cli.serve import StartError
        from skywarden.server.plugins.registry import DuplicateToolError

        if isinstance(exc, (DuplicateToolError, StartError, StoreOpenError, OSError)):
            print(f"skywarden: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
