"""``skywarden-client``: health, tools, call, and key administration from the shell.

Exit codes: 0 ok, 1 the tool answered isError, 2 usage, 3 authentication (401),
4 permission (403), 5 not found, 6 invalid arguments, 7 rate limited, 8 server
error, 9 transport (connection, timeout, TLS), 10 other.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

from skywarden.clients.admin import AdminClient
from skywarden.clients.client import SkywardenClient
from skywarden.clients.errors import SkywardenError
from skywarden.clients.http import Timeouts

EXIT_USAGE = 2


class UsageError(Exception):
    pass


def parse_arg(pair: str) -> tuple[str, Any]:
    """``k=v``: the value is JSON when it parses as JSON, else the plain string."""
    key, sep, value = pair.partition("=")
    if not sep or not key:
        raise UsageError(f"--arg expects key=value, got {pair!r}")
    try:
        return key, json.loads(value)
    except ValueError:
        return key, value


def _output_flags() -> argparse.ArgumentParser:
    """``--json`` for every command, after it as before it: SUPPRESS keeps a command's parser from
    overwriting a ``--json`` given before the command with its own default."""
    flags = argparse.ArgumentParser(add_help=False)
    flags.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="machine-readable output")
    return flags


def build_parser() -> argparse.ArgumentParser:
    output = [_output_flags()]
    parser = argparse.ArgumentParser(prog="skywarden-client", description="Client for a Skywarden server")
    parser.add_argument(
        "--url",
        help="the server's base URL, e.g. http://127.0.0.1:8080 (env SKYWARDEN_URL; a trailing /mcp is refused)",
    )
    parser.add_argument("--api-key", help="API key (prefer env SKYWARDEN_API_KEY: flags show up in process lists)")
    parser.add_argument("--admin-token", help="admin token for 'keys' (prefer env SKYWARDEN_ADMIN_TOKEN)")
    parser.add_argument(
        "--token-file",
        default=os.environ.get("SKYWARDEN_TOKEN_FILE"),
        help="file holding an admin's OIDC access token (or the admin token) for 'keys' (env SKYWARDEN_TOKEN_FILE);"
        " env SKYWARDEN_ACCESS_TOKEN holds one directly",
    )
    parser.add_argument("--transport", choices=("rest", "mcp"), default="rest", help="how to reach tools")
    parser.add_argument("--json", action="store_true", help="machine-readable output (here or after the command)")
    parser.add_argument("--timeout", type=float, default=60.0, help="total seconds per request")
    parser.add_argument("--ca-file", help="CA bundle to verify the server's certificate")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("health", parents=output, help="is the server up")
    sub.add_parser("tools", parents=output, help="list the tools this key may use")
    call = sub.add_parser("call", parents=output, help="call a tool")
    call.add_argument("tool")
    call.add_argument("--arg", action="append", default=[], metavar="KEY=VALUE", help="an argument (repeatable)")
    call.add_argument("--args-json", metavar="JSON", help="all arguments as one JSON object")

    keys = sub.add_parser("keys", parents=output, help="manage API keys (admin token)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser("create", parents=output)
    create.add_argument("--name", required=True)
    create.add_argument("--owner")
    create.add_argument("--scope", action="append", dest="scopes")
    create.add_argument("--environment", choices=("live", "test", "dev"))
    create.add_argument("--expires-at")
    create.add_argument("--rate-limit")
    create.add_argument("--metadata", help="JSON object")
    listing = keys_sub.add_parser("list", parents=output)
    listing.add_argument("--owner")
    listing.add_argument("--status", choices=("active", "disabled", "revoked", "expired"))
    show = keys_sub.add_parser("show", parents=output)
    show.add_argument("key_id")
    rotate = keys_sub.add_parser("rotate", parents=output)
    rotate.add_argument("key_id")
    rotate.add_argument("--grace-seconds", type=int, default=3600)
    revoke = keys_sub.add_parser("revoke", parents=output)
    revoke.add_argument("key_id")
    revoke.add_argument("--reason")
    return parser


def call_arguments(args: argparse.Namespace) -> dict[str, Any]:
    arguments: dict[str, Any] = {}
    if args.args_json is not None:
        try:
            loaded = json.loads(args.args_json)
        except ValueError as exc:
            raise UsageError(f"--args-json is not valid JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise UsageError("--args-json must be a JSON object")
        arguments.update(loaded)
    for pair in args.arg:
        key, value = parse_arg(pair)
        arguments[key] = value
    return arguments


@contextlib.asynccontextmanager
async def spinner(label: str, enabled: bool) -> AsyncIterator[None]:
    """A small progress indicator on a terminal while a slow call runs."""
    if not enabled:
        yield
        return

    async def spin() -> None:
        for frame in itertools.cycle("|/-\\"):
            sys.stderr.write(f"\r{frame} {label}")
            sys.stderr.flush()
            await asyncio.sleep(0.1)

    task = asyncio.create_task(spin())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sys.stderr.write("\r" + " " * (len(label) + 2) + "\r")


def emit(data: Any, as_json: bool, human: str) -> None:
    print(json.dumps(data, indent=2) if as_json else human)


async def run_tools_commands(args: argparse.Namespace) -> int:
    if args.command != "health" and not (args.api_key or os.environ.get("SKYWARDEN_API_KEY")):
        raise UsageError("no API key is set: set SKYWARDEN_API_KEY (or pass --api-key)")
    client = SkywardenClient(
        args.url, args.api_key, transport=args.transport, timeouts=Timeouts(total=args.timeout), ca_file=args.ca_file
    )
    async with client:
        if args.command == "health":
            health = await client.health()
            emit(health, args.json, f"{health.get('status')} (version {health.get('version')})")
            return 0
        if args.command == "tools":
            tools = await client.list_tools()
            emit(
                [{"name": t.name, "title": t.title, "description": t.description} for t in tools],
                args.json,
                "\n".join(f"{t.name:<28} {t.title or ''}" for t in tools) or "(no tools)",
            )
            return 0
        arguments = call_arguments(args)
        async with spinner(f"calling {args.tool}", sys.stderr.isatty() and not args.json):
            result = await client.call_tool(args.tool, arguments)
        body = {"content": result.content, "structuredContent": result.structured_content, "isError": result.is_error}
        human = result.text or json.dumps(result.structured_content, indent=2)
        emit(body, args.json, ("Tool error: " if result.is_error else "") + human)
        return 1 if result.is_error else 0


def admin_credential(args: argparse.Namespace) -> str:
    """The admin token or an admin's access token, first found of: --admin-token, --token-file,
    SKYWARDEN_ADMIN_TOKEN, SKYWARDEN_ACCESS_TOKEN."""
    if args.admin_token:
        return str(args.admin_token)
    if args.token_file:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(f"--token-file {args.token_file}: cannot be read ({exc.strerror or 'error'})") from None
        except UnicodeDecodeError:
            raise UsageError(f"--token-file {args.token_file}: is not a text file") from None
        if not token or any(c.isspace() for c in token):
            raise UsageError(f"--token-file {args.token_file}: must hold one token and nothing else")
        return token
    from_env = os.environ.get("SKYWARDEN_ADMIN_TOKEN") or os.environ.get("SKYWARDEN_ACCESS_TOKEN")
    if not from_env:
        raise UsageError(
            "no admin credential is set: set SKYWARDEN_ADMIN_TOKEN or SKYWARDEN_ACCESS_TOKEN"
            " (or pass --admin-token or --token-file)"
        )
    return from_env


async def run_keys_commands(args: argparse.Namespace) -> int:
    token = admin_credential(args)
    async with AdminClient(args.url, token, timeouts=Timeouts(total=args.timeout), ca_file=args.ca_file) as admin:
        action = args.keys_command
        if action == "create":
            fields: dict[str, Any] = {
                k: getattr(args, k)
                for k in ("owner", "scopes", "environment", "expires_at", "rate_limit")
                if getattr(args, k) is not None
            }
            if args.metadata is not None:
                try:
                    fields["metadata"] = json.loads(args.metadata)
                except ValueError:
                    raise UsageError("--metadata is not valid JSON") from None
            key = await admin.create_key(args.name, **fields)
            emit(
                key, args.json, f"{key['id']}  {key['prefix']}\n\n{key['key']}\n\nStore the key now: it is shown once."
            )
        elif action == "list":
            keys = await admin.list_keys(owner=args.owner, status=args.status)
            emit(
                keys,
                args.json,
                "\n".join(f"{k['id']:<26} {k['prefix']:<18} {k['status']:<9} {k['name']}" for k in keys),
            )
        elif action == "show":
            key = await admin.get_key(args.key_id)
            emit(key, args.json, "\n".join(f"{k:>16}: {v}" for k, v in key.items()))
        elif action == "rotate":
            key = await admin.rotate_key(args.key_id, args.grace_seconds)
            emit(
                key,
                args.json,
                f"{key['id']}  {key['prefix']}\n\n{key['key']}\n\nThe old key works for {args.grace_seconds} s.",
            )
        else:
            await admin.revoke_key(args.key_id, args.reason)
            emit({"id": args.key_id, "status": "revoked"}, args.json, f"{args.key_id} revoked")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        runner = run_keys_commands if args.command == "keys" else run_tools_commands
        return asyncio.run(runner(args))
    except UsageError as exc:
        print(f"skywarden-client: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except SkywardenError as exc:
        if args.json:
            error = {
                "type": type(exc).__name__,
                "message": exc.message,
                "status": exc.status,
                "request_id": exc.request_id,
            }
            fields = getattr(exc, "field_errors", None)
            if fields:
                error["field_errors"] = fields
            retry_after = getattr(exc, "retry_after", None)
            if retry_after is not None:
                error["retry_after"] = retry_after
            print(json.dumps({"error": error}))
        else:
            print(f"skywarden-client: {type(exc).__name__}: {exc}", file=sys.stderr)
            for field, messages in getattr(exc, "field_errors", {}).items():
                print(f"  {field}: {' '.join(messages)}", file=sys.stderr)
        return exc.exit_code
    except ValueError as exc:
        print(f"skywarden-client: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
