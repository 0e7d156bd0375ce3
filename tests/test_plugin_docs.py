"""docs/plugins.md runs as written.

Every code block says on its first line what it is: a file (``# acme_words/acme_words.py``) or,
for a shell session (a ``sh`` block), where it runs. The files of the packages kept under
tests/plugins are those packages byte for byte (acme_words is installed into the test
environment by scripts/test, as the page says); every other module loads as tools; the test
files pass under plain pytest with no configuration; the config file is accepted; and the shell
sessions print what the page shows, run against a server.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shlex
import subprocess
import sys
import tomllib
import warnings
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from skywarden.server.cli.main import build_parser
from skywarden.server.plugins.registry import discover_tools, registry_of
from skywarden.server.plugins.settings import declared_settings, settings_instance
from skywarden.server.settings import load_settings
from skywarden.server.testing import running_app
from skywarden.tools import Plugin, ToolSpec
from tests.support.admin import create_key
from tests.support.logs import drain_logs

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "plugins.md"
PACKAGES = ROOT / "tests" / "plugins"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```[ \t]*$", re.MULTILINE | re.DOTALL)
FILE_PATH = re.compile(r"[a-z][a-z0-9_]*(/[a-z][a-z0-9_]*)*\.(py|toml)")
LANGUAGES = {"py": "python", "toml": "toml"}


@dataclass(frozen=True)
class Block:
    language: str
    line: int  # where the block starts on the page
    header: str  # its first line
    body: str  # the rest: the file's text, or the session

    @property
    def path(self) -> str:
        return self.header.removeprefix("# ")

    @property
    def package(self) -> str:
        return self.path.split("/")[0]

    @property
    def kept(self) -> Path | None:
        """The file under tests/plugins this block is, when its package is kept there."""
        return PACKAGES / self.path if (PACKAGES / self.package).is_dir() and "/" in self.path else None

    def __str__(self) -> str:
        return f"docs/plugins.md:{self.line} ({self.header})"


def page_blocks(text: str) -> list[Block]:
    found = []
    for match in FENCE.finditer(text):
        header, _, body = match.group(2).partition("\n")
        found.append(Block(match.group(1), text.count("\n", 0, match.start()) + 1, header, body))
    return found


BLOCKS = page_blocks(DOC.read_text())
FILES = [b for b in BLOCKS if b.language != "sh"]
MODULES = [b for b in FILES if b.path.endswith(".py") and "/tests/" not in b.path]
TEST_FILES = [b for b in FILES if "/tests/test_" in b.path]
SESSIONS = [b for b in BLOCKS if b.language == "sh"]


def test_every_block_says_what_it_is():
    assert FILES and SESSIONS
    for block in BLOCKS:
        assert block.header.startswith("# "), f"{block}: the first line names the file, or where a session runs"
        if block.language == "sh":
            assert block.body.startswith("$ "), f"{block}: a session starts with a command"
            continue
        assert FILE_PATH.fullmatch(block.path), f"{block}: not a file's path"
        assert LANGUAGES[block.path.rsplit(".", 1)[1]] == block.language, f"{block}: fence language"
    paths = [b.path for b in FILES]
    assert len(paths) == len(set(paths)), "one block per file"


def test_the_kept_example_packages_are_the_documented_files():
    documented = {b.package for b in FILES if b.kept is not None}
    assert documented == {"acme_words", "acme_things"}
    for block in FILES:
        if block.kept is not None:
            assert block.kept.is_file(), f"{block}: no such file under tests/plugins"
            assert block.body == block.kept.read_text(), f"{block} differs from {block.kept}"
    for package in documented:
        kept = {
            str(p.relative_to(PACKAGES))
            for p in (PACKAGES / package).rglob("*")
            if p.is_file() and "__pycache__" not in p.parts and not any(x.endswith(".egg-info") for x in p.parts)
        }
        assert kept == {b.path for b in FILES if b.package == package}, "every file of the package is on the page"


def test_the_installed_example_is_the_one_page_package_under_25_lines():
    """The "Done when" of issue 31: one file under 25 lines, packaging included."""
    package = PACKAGES / "acme_words"
    lines = len((package / "pyproject.toml").read_text().splitlines()) + len(
        (package / "acme_words.py").read_text().splitlines()
    )
    assert lines < 25
    project = tomllib.loads((package / "pyproject.toml").read_text())["project"]
    installed = metadata.distribution(project["name"])
    assert installed.version == project["version"]
    assert {(ep.group, ep.name, ep.value) for ep in installed.entry_points} == {
        ("skywarden.tools", "word_count", "acme_words:word_count")
    }
    spec = importlib.util.find_spec("acme_words")
    assert spec is not None and spec.origin is not None, "install tests/plugins/acme_words (scripts/test does)"
    assert Path(spec.origin).resolve() == package / "acme_words.py"


def load_module(path: Path, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    name = f"plugin_docs_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module


def tools_of(module: ModuleType) -> list[Any]:
    """What an entry point could name in the module: its plugins, its tools of no plugin, its
    class-form tool objects."""
    found = []
    for value in vars(module).values():
        if isinstance(value, Plugin) or (isinstance(value, ToolSpec) and value.plugin is None):
            found.append(value)
        elif not isinstance(value, type) and callable(getattr(value, "call", None)) and hasattr(value, "Arguments"):
            found.append(value)
    return found


def write_files(root: Path) -> None:
    """Every file block, written under ``root`` at its path."""
    for block in FILES:
        target = root / block.path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(block.body)


@pytest.mark.parametrize("block", MODULES, ids=lambda b: b.path)
def test_each_module_loads_as_tools(block, tmp_path, monkeypatch):
    write_files(tmp_path)
    objects = tools_of(load_module(tmp_path / block.path, monkeypatch))
    assert objects, f"{block} declares no tool"
    registry = registry_of(objects, "docs")
    assert len(registry) >= len(objects)


@pytest.mark.slow  # starts subprocesses
def test_the_test_files_pass_as_written_with_no_configuration(tmp_path):
    """Plain pytest and pytest-asyncio in its default (strict) mode: no ini file, no conftest."""
    write_files(tmp_path)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "SKYWARDEN_"))}
    env["PYTHONPATH"] = os.pathsep.join(sorted({str(tmp_path / b.package) for b in MODULES}))
    tests = [str(tmp_path / b.path) for b in TEST_FILES]
    command = [sys.executable, "-m", "pytest", "-c", os.devnull, "--rootdir", str(tmp_path), "-p", "no:cacheprovider"]
    run = _run([*command, "-q", *tests], tmp_path, env)
    expected = sum(len(re.findall(r"^async def test_|^def test_", b.body, re.MULTILINE)) for b in TEST_FILES)
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(rf"^{expected} passed in [0-9.]+s", run.stdout, re.MULTILINE), run.stdout


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.slow  # starts subprocesses
def test_the_page_code_is_ruff_clean(tmp_path):
    """As the example packages are: formatted, imports sorted as an author's project sorts them."""
    write_files(tmp_path)
    ruff = str(Path(sys.executable).with_name("ruff"))
    config = ["--config", str(PACKAGES / "ruff.toml"), "--no-cache"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUFF_")}
    for command in (["check", *config, "."], ["format", *config, "--check", "--diff", "."]):
        run = _run([ruff, *command], tmp_path, env)
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_config_file_is_accepted(tmp_path, monkeypatch):
    """Read as `skywarden serve --config` reads it, with the plugins of the page known; the
    secret file's folder is moved into a scratch folder."""
    write_files(tmp_path)
    [config] = [b for b in FILES if b.path == "skywarden.toml"]
    secret = tmp_path / "acme-api-key"
    secret.write_text("k-from-a-file\n")
    text = config.body.replace("/run/secrets/acme-api-key", str(secret))
    assert text != config.body
    (tmp_path / "skywarden.toml").write_text(text)
    registry = registry_of(tools_of(load_module(tmp_path / "acme_things/acme_things.py", monkeypatch)), "docs")
    settings = load_settings(
        cli={"data_dir": str(tmp_path)},
        environ={},
        config_path=tmp_path / "skywarden.toml",
        plugins=declared_settings(registry.plugins),
    )
    [acme] = registry.plugins
    values = settings_instance(acme, settings)
    assert values.base_url == "https://api.acme.example" and values.api_key.reveal() == "k-from-a-file"


# Shell sessions: `$ ` starts a command (a trailing backslash continues it), the lines after it
# are its output. In the output, a line `...` stands for any lines, and `...` within a line for
# any text. `NAME=value` alone sets a variable; a value with `...` takes the matching word of
# the previous command's output (the key it printed).


@dataclass
class Command:
    text: str
    output: list[str] = field(default_factory=list)


def commands(block: Block) -> list[Command]:
    found: list[Command] = []
    for line in block.body.splitlines():
        if line.startswith("$ "):
            found.append(Command(line[2:]))
        elif found and found[-1].text.endswith("\\"):
            found[-1].text = found[-1].text[:-1].rstrip() + " " + line.strip()
        else:
            found[-1].output.append(line)
    return found


def words(command: str, variables: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The variables set before the program, and the program's words."""
    expanded = re.sub(r"\$(\w+)", lambda m: variables[m.group(1)], command)
    tokens = shlex.split(expanded, comments=True)
    assigned = {}
    while tokens and re.fullmatch(r"[A-Z_]+=.*", tokens[0]):
        name, _, value = tokens.pop(0).partition("=")
        assigned[name] = value
    return assigned, tokens


def loose(text: str, wildcard: str = r"[^\n]*?") -> str:
    """A regular expression of a line's text: any run of blanks for blanks, ``wildcard`` for ``...``."""
    pieces = [r"[ \t]+".join(map(re.escape, part.split())) for part in text.split("...")]
    return wildcard.join(pieces)


def output_pattern(lines: list[str]) -> re.Pattern[str]:
    parts = []
    for line in lines:
        if line.strip() == "...":
            parts.append(r"(?:[^\n]*\n)*?")
        else:
            parts.append(r"[ \t]*" + loose(line.strip()) + r"[ \t]*\n")
    return re.compile("".join(parts))


def taken(value: str, shown: list[str], printed: str) -> str:
    """``value`` itself, or with ``...`` in it: what was printed where the page shows it."""
    if "..." not in value:
        return value
    [line] = [line for line in shown if value in line]
    before, _, after = line.strip().partition(value)
    word = loose(value, r"\S+")
    found = re.search(rf"^[ \t]*{loose(before)}[ \t]*({word})[ \t]*{loose(after)}[ \t]*$", printed, re.MULTILINE)
    assert found, f"no {value} printed where the page shows: {line}"
    return found.group(1)


def test_the_shell_commands_are_real():
    """Each command names what exists (the test below runs them): the CLIs accept their
    arguments, pip installs a package kept under tests/plugins, curl calls a documented tool."""
    parser = build_parser(declared_settings(discover_tools().plugins))
    variables = {"KEY": "skw_live_x"}
    tools = {name for block in MODULES for name in re.findall(r"^async def (\w+)", block.body, re.MULTILINE)}
    for block in SESSIONS:
        for command in commands(block):
            assigned, argv = words(command.text, variables)
            if not argv:
                assert assigned, f"{block}: {command.text}"
                continue
            program, *args = argv
            if program == "skywarden":
                parser.parse_args(args)
            elif program == "skywarden-client":
                from skywarden.clients.cli import build_parser as client_parser

                client_parser().parse_args(args)
            elif program == "pip":
                assert args[:2] == ["install", "-e"] and (PACKAGES / args[2]).is_dir(), command.text
            elif program == "curl":
                url = next(a for a in args if a.startswith("http"))
                assert url.rsplit("/", 1)[1] in tools and "/api/mcp/tools/" in url, command.text
            else:
                raise AssertionError(f"{block}: no check for {program}")


@pytest.mark.slow  # starts subprocesses
async def test_the_shell_sessions_print_what_the_page_shows(tmp_path):
    """Each session against `skywarden serve` (running_app with every installed plugin, on the
    data folder the commands use by default): `skywarden` and `skywarden-client` run as
    processes, curl's requests are sent as it would send them, `pip install -e` is what
    scripts/test did (checked above)."""
    data_dir = tmp_path / ".skywarden"
    async with running_app(data_dir=str(data_dir)) as app:
        variables: dict[str, str] = {}
        for block in SESSIONS:
            previous, shown = "", []
            for command in commands(block):
                assigned, argv = words(command.text, variables)
                if not argv:
                    variables.update({name: taken(value, shown, previous) for name, value in assigned.items()})
                    continue
                previous, shown = await run_command(app, argv, assigned, tmp_path), command.output
                assert output_pattern(command.output).fullmatch(previous), f"{block}: $ {command.text}\n{previous}"


async def run_command(app: Any, argv: list[str], assigned: dict[str, str], cwd: Path) -> str:
    program, *args = argv
    if program == "pip":
        return ""
    if program == "curl":
        return await replay_curl(app, args)
    module = {"skywarden": "skywarden.server.cli.main", "skywarden-client": "skywarden.clients.cli"}[program]
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    env.update(assigned, SKYWARDEN_URL=app.url)
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", module, *args, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, (argv, out)
    return out.decode()


async def replay_curl(app: Any, args: list[str]) -> str:
    """The request `curl -s -X METHOD -H ... -d ... URL` sends, to the app, and the body it prints."""
    method, headers, data, url = "GET", {}, None, ""
    given = iter(args)
    for arg in given:
        if arg == "-X":
            method = next(given)
        elif arg == "-H":
            name, _, value = next(given).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(given)
        elif arg.startswith("http://127.0.0.1:8080/"):
            url = app.url + arg.removeprefix("http://127.0.0.1:8080")
        else:
            assert arg == "-s", f"curl {arg} is not replayed"
    async with app.session.request(method, url, headers=headers, data=data) as resp:
        return await resp.text() + "\n"


async def test_the_installed_example_is_served_like_a_built_in(make_client, make_settings):
    """acme_words as installed: discovered, scoped, validated, rate-limited and audited."""
    registry = discover_tools()
    assert registry.get("word_count").distribution == "acme-words 1.0.0"
    client = await make_client(make_settings(rate_limit="4/minute"), registry=registry)
    key = await create_key(client.admin, name="word counter", scopes=["words"])
    headers = {"X-API-Key": key["key"]}
    listed = await (await client.get("/api/mcp/tools", headers=headers)).json()
    assert [tool["name"] for tool in listed["tools"]] == ["word_count"]
    counted = await client.post("/api/mcp/tools/word_count", json={"text": "one two three"}, headers=headers)
    assert (await counted.json())["structuredContent"] == {"result": 3}
    refused = await client.post("/api/mcp/tools/word_count", json={"text": "", "colour": "red"}, headers=headers)
    assert refused.status == 422
    assert {e["field"] for e in (await refused.json())["errors"]} == {"text", "colour"}
    assert (await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"}, headers=headers)).status == 403
    over = await client.post("/api/mcp/tools/word_count", json={"text": "four"}, headers=headers)
    assert over.status == 429 and over.headers["Retry-After"]
    events = [e for e in drain_logs() if e.get("audit") and e.get("key_id") == key["id"] and e["event"] == "request"]
    assert [(e.get("tool"), e["status"], e["outcome"]) for e in events] == [
        (None, 200, "allowed"),
        ("word_count", 200, "allowed"),
        ("word_count", 422, "error"),
        ("get_alerts", 403, "denied"),
        (None, 429, "denied"),
    ]


async def test_an_authors_tests_see_no_warning_from_the_server():
    """aiohttp warns about a library's string app key on every start; it is kept out of the
    test runs of plugin authors, whose pytest would show it."""
    from acme_words import word_count

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        async with running_app(tools=[word_count]) as app:
            assert (await app.list_tools(await app.create_key()))[0] == 200
    assert [str(w.message) for w in seen] == []


def test_the_readme_example_is_a_tool(monkeypatch, tmp_path):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Writing a tool\n", 1)[1].split("\n## ", 1)[0]
    [code] = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)
    (tmp_path / "readme_tool.py").write_text(code)
    objects = tools_of(load_module(tmp_path / "readme_tool.py", monkeypatch))
    [described] = registry_of(objects, "readme")
    assert described.input_schema["required"] and described.output_schema is not None
    assert "docs/plugins.md" in section
