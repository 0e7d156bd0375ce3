"""``--json`` before the command and after it mean the same, for every command of both CLIs
(``skywarden-client`` and ``skywarden``): walked from the parsers, so a command added later is covered."""

from __future__ import annotations

import argparse

import pytest

from skywarden.clients.cli import build_parser as client_parser
from skywarden.server.cli.main import build_parser as server_parser

REQUIRED_POSITIONALS = {
    "call": ["get_alerts"],
    "show": ["k1"],
    "rotate": ["k1"],
    "revoke": ["k1"],
    **{verb: ["calc"] for verb in ("add", "update", "enable", "disable", "remove")},
}
REQUIRED_OPTIONS = {"create": ["--name", "n"], "add": ["--options", "{}"], "update": ["--options", "{}"]}


def _commands(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[tuple[tuple[str, ...], bool]]:
    """Every full command path, and whether its own parser takes --json."""
    found = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    if not found and path:
        found.append((path, any("--json" in a.option_strings for a in parser._actions)))
    return found


def _argv(path: tuple[str, ...]) -> list[str]:
    argv = list(path)
    for word in path:
        argv += REQUIRED_POSITIONALS.get(word, []) + REQUIRED_OPTIONS.get(word, [])
    return argv


CLIENT = _commands(client_parser())
SERVER = [(path, takes) for path, takes in _commands(server_parser()) if takes]


def test_every_client_command_takes_json_and_the_server_cli_has_some():
    assert CLIENT and all(takes for _, takes in CLIENT), [p for p, t in CLIENT if not t]
    assert {path for path, _ in SERVER} >= {("tools",), ("keys", "create"), ("keys", "list")}


@pytest.mark.parametrize(
    ("build", "path"), [(client_parser, p) for p, _ in CLIENT] + [(server_parser, p) for p, _ in SERVER]
)
def test_json_before_or_after_the_command_is_the_same(build, path):
    parser = build()
    argv = _argv(path)
    assert parser.parse_args(argv).json is False
    assert parser.parse_args(["--json", *argv]).json is True
    assert parser.parse_args([*argv, "--json"]).json is True
    assert parser.parse_args(["--json", *argv, "--json"]).json is True
