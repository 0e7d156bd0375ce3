"""Every install command the docs, the examples and the error messages give refers to something
that works: Skywarden itself only from a checkout or a wheel built from one (it is on no package
index), with extras that setup.cfg declares; a driver hint names this Python's pip and the
extra's own requirements."""

from __future__ import annotations

import configparser
import re
import shlex
import sys
from pathlib import Path

import pytest

from skywarden.server.extras import extra_requirements, install_command
from skywarden.server.settings import SettingsError, load_settings

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ["README.md", "docs/**/*.md", "examples/**/*", "server/**/*.py", "clients/**/*.py", "tools/**/*.py"]
SOURCES += ["scripts/*", "setup.cfg", "pyproject.toml"]
COMMAND = re.compile(r"pip (?:install|wheel)\b([^\n`#]*)")


def declared_extras() -> dict[str, list[str]]:
    config = configparser.ConfigParser()
    config.read(ROOT / "setup.cfg")
    return {name: value.split() for name, value in config["options.extras_require"].items()}


def texts() -> dict[str, str]:
    found = {}
    for pattern in SOURCES:
        for path in ROOT.glob(pattern):
            if path.is_file() and "__pycache__" not in path.parts:
                found[str(path.relative_to(ROOT))] = path.read_text(errors="replace")
    return found


def install_targets(line: str) -> list[str]:
    """What a ``pip install``/``pip wheel`` command installs: its arguments that are not options."""
    try:
        words = shlex.split(line, posix=True)
    except ValueError:
        words = line.split()
    targets, skip = [], False
    for word in words:
        if skip:
            skip = False
        elif word in ("-w", "--wheel-dir", "-r", "-c", "--find-links", "-f"):
            skip = True
        elif not word.startswith("-") and word not in (";", "&&", "||", "\\"):
            targets.append(word)
    return targets


def commands() -> list[tuple[str, str]]:
    """(file, what follows ``pip install``) for every command outside a comment line."""
    return [
        (name, match.group(1))
        for name, text in texts().items()
        for line in text.splitlines()
        if not line.lstrip().startswith("#")
        for match in COMMAND.finditer(line)
    ]


def test_the_scan_finds_the_documented_commands():
    found = {name for name, _ in commands()}
    assert {"README.md", "docs/deployment.md", "examples/mcp_client.py"} <= found


@pytest.mark.parametrize(("where", "line"), commands())
def test_every_install_command_refers_to_something_that_works(where, line):
    extras = declared_extras()
    for target in install_targets(line):
        if "{" in target or target.startswith("$spec"):  # a template; the code that fills it is tested below
            continue
        name, _, wanted = target.partition("[")
        if name.startswith((".", "/", "$(")) or name.endswith(".whl"):
            for extra in filter(None, wanted.rstrip("]").split(",")):
                assert extra in extras, f"{where}: {target!r} asks for extra {extra!r}, setup.cfg has {sorted(extras)}"
        else:
            project = re.match(r"[A-Za-z0-9_.-]+", name).group(0).lower()
            assert project != "skywarden", f"{where}: {line.strip()!r}: Skywarden is on no package index"


def test_nothing_names_skywarden_as_a_package_to_fetch():
    for where, text in texts().items():
        assert not re.search(r"\bskywarden\[", text), f"{where} names skywarden[...] as if it were on an index"


@pytest.mark.parametrize("extra", ["postgres", "redis"])
def test_a_driver_hint_installs_the_extras_own_requirements_into_this_python(extra):
    command = install_command(extra)
    assert command.startswith(f"{sys.executable} -m pip install ")
    declared = sorted(r.replace(" ", "") for r in declared_extras()[extra])
    assert sorted(_normalised(r) for r in extra_requirements(extra)) == sorted(_normalised(r) for r in declared)
    for requirement in extra_requirements(extra):
        assert shlex.quote(requirement) in command


def _normalised(requirement: str) -> tuple[str, frozenset[str]]:
    name = re.match(r"[A-Za-z0-9_.-]+", requirement).group(0).lower()
    return name, frozenset(requirement[len(name) :].replace(" ", "").split(","))


@pytest.mark.parametrize(
    ("setting", "value", "module", "extra"),
    [
        ("database_url", "postgresql://skywarden@127.0.0.1:5432/skywarden", "asyncpg", "postgres"),
        ("redis_url", "redis://127.0.0.1:6379/0", "redis", "redis"),
        ("event_loop", "uvloop", "uvloop", None),
    ],
)
def test_a_setting_that_needs_a_missing_driver_names_the_command(monkeypatch, setting, value, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # the import now fails as if it were not installed
    with pytest.raises(SettingsError) as info:
        load_settings(cli={setting: value}, environ={})
    expected = install_command(extra) if extra else f"{sys.executable} -m pip install uvloop"
    assert expected in str(info.value)
