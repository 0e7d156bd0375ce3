"""``skywarden``: run the server, list tools, manage keys on the store directly.

The installed plugins are discovered once, before the arguments are read: ``serve`` takes their
settings as flags (a group per plugin in ``serve --help``), and every command knows their names
in the environment and the config file.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from skywarden.server import __version__
from skywarden.server.auth.credentials import CredentialError
from skywarden.server.cli.keys import CliError
from skywarden.server.cli.tls import TLSConfigError
from skywarden.server.settings import (
    PluginSetting,
    PluginSettings,
    Settings,
    SettingsError,
    default_of,
    env_name,
    flag_name,
    load_settings,
    setting_fields,
)

if TYPE_CHECKING:
    from skywarden.server.cli.discovery import Logged
    from skywarden.server.plugins.registry import ToolRegistry


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


def _plugin_help(setting: PluginSetting) -> str:
    """Help, kind, variable and default; a secret's default is never shown."""
    notes = [note for note in (setting.kind, setting.secret and f"or {flag_name(setting.name + '_file')}") if note]
    text = setting.help + (f" ({'; '.join(notes)})" if notes else "") + f"; env {env_name(setting.name)}"
    if setting.required:
        text += " (required)"
    elif not setting.secret:
        text += f" (default: {_show_default(setting.default)})"
    return text.replace("%", "%%")  # argparse formats help with %


def _add_plugin_flags(parser: argparse.ArgumentParser, plugins: Sequence[PluginSettings]) -> None:
    """A group per plugin with settings; old names (aliases) are accepted but not listed."""
    for plugin in plugins:
        if not plugin.settings:
            continue
        group = parser.add_argument_group(f"plugin {plugin.title}".replace("%", "%%"))
        for setting in plugin.settings:
            group.add_argument(
                flag_name(setting.name), dest=setting.name, default=None, metavar=setting.name.upper(),
                help=_plugin_help(setting),
            )  # fmt: skip
            if setting.secret:
                group.add_argument(
                    flag_name(setting.name + "_file"), dest=setting.name + "_file", default=None, metavar="PATH",
                    help=f"file holding {setting.name}; env {env_name(setting.name + '_file')}",
                )  # fmt: skip
            for name, (old, _) in setting.spellings().items():
                if old:
                    group.add_argument(flag_name(name), dest=name, default=None, help=argparse.SUPPRESS)


def add_json_flag(parser: argparse.ArgumentParser) -> None:
    """``--json`` after a command, as before it: SUPPRESS keeps the command's parser from
    overwriting a ``--json`` given before the command with its own default."""
    parser.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")


def _show_default(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return ",".join(str(v) for v in value) or "none"
    if value is None:
        return "none"
    if isinstance(value, Mapping):
        return "none" if not value else str(dict(value))
    return str(value) if value != "" else "unset"


def build_parser(plugins: Sequence[PluginSettings] = ()) -> argparse.ArgumentParser:
    """The parser; ``plugins`` (``plugins.settings.declared_settings``) add their flags to ``serve``."""
    parser = argparse.ArgumentParser(prog="skywarden", description="Skywarden MCP tool server")
    parser.add_argument("--version", action="version", version=f"skywarden {__version__}")
    parser.add_argument(
        "--json", action="store_true", help="machine-readable output, for the commands that print (here or after them)"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the server")
    _add_setting_flags(serve)
    _add_plugin_flags(serve, plugins)

    tools = sub.add_parser("tools", help="list the tools that load, and from which distribution")
    add_json_flag(tools)
    serve.set_defaults(changes_state=False)  # the server audits with its own settings
    tools.set_defaults(changes_state=False)

    from skywarden.server.cli.db import add_db_commands
    from skywarden.server.cli.keys import add_admin_commands
    from skywarden.server.cli.upstreams import add_upstream_commands

    add_admin_commands(sub, _add_setting_flags, add_json_flag)
    add_upstream_commands(sub, _add_setting_flags, add_json_flag)
    add_db_commands(sub, _add_setting_flags)
    return parser


def settings_from_args(
    args: argparse.Namespace, plugins: Sequence[PluginSettings] | None = None, *, check_plugins: bool = True
) -> Settings:
    """The settings from the flags, the environment and the config file. With ``plugins``, theirs
    too (``check_plugins=False``: their names are known, their values neither checked nor kept)."""
    cli = {f.name: getattr(args, f.name, None) for f in setting_fields()}
    for plugin in plugins or ():
        for setting in plugin.settings:
            cli.update({name: getattr(args, name, None) for name in setting.spellings()})
    return load_settings(
        cli=cli, config_path=getattr(args, "config", None), plugins=plugins, check_plugins=check_plugins
    )


def _command_of(argv: Sequence[str]) -> str | None:
    """The command named (the top-level options take no values), or None."""
    return next((arg for arg in argv if not arg.startswith("-")), None)


def _cmd_tools(args: argparse.Namespace, registry: ToolRegistry) -> int:
    import json

    if args.json:
        print(json.dumps([{"name": t.name, "title": t.title, "distribution": t.distribution} for t in registry]))
    else:
        for t in registry:
            print(f"{t.name:<32} {t.distribution:<32} {t.title}")
    return 0


def _cmd_serve(settings: Settings, registry: ToolRegistry, logged: Logged) -> int:
    if settings.workers > 1:
        from skywarden.server.cli.workers import supervise

        return supervise(settings, logged)
    from skywarden.server.cli.serve import serve

    return serve(settings, registry, logged)


def _run_store_command(args: argparse.Namespace, settings: Settings, logged: Logged) -> int:
    """A ``keys``, ``upstreams``, ``admin-token`` or ``db`` command; one that changes state runs only once its
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
    from skywarden.server.cli.discovery import replay_logged

    replay_logged(logged)
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
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        if _command_of(argv) is None:  # --help, --version, or no command: no plugin is needed
            build_parser().parse_args(argv)
            return 2
        from skywarden.server.cli.discovery import discover_plugins, replay_logged
        from skywarden.server.plugins.settings import declared_settings

        registry, logged = discover_plugins()
        plugins = declared_settings(registry.plugins)
        args = build_parser(plugins).parse_args(argv)
        if args.command == "tools":
            replay_logged(logged)
            return _cmd_tools(args, registry)
        if args.command == "serve":
            return _cmd_serve(settings_from_args(args, plugins), registry, logged)
        # commands that run no tool know the plugins' names, and neither need nor check their values
        return _run_store_command(args, settings_from_args(args, plugins, check_plugins=False), logged)
    except (SettingsError, CliError, CredentialError, TLSConfigError) as exc:
        print(f"skywarden: {exc}", file=sys.stderr)
        return 2
    except Exception as exc:  # start-up failures: one clear line, no trace
        from skywarden.server.auth.backends import StoreOpenError
        from skywarden.server.cli.serve import StartError
        from skywarden.server.plugins.lifecycle import PluginStartError
        from skywarden.server.plugins.registry import DuplicateToolError

        if isinstance(exc, (DuplicateToolError, PluginStartError, StartError, StoreOpenError, OSError)):
            print(f"skywarden: {exc}", file=sys.stderr)
            return 1
        raise


if __name__ == "__main__":
    sys.exit(main())
