"""The structure docs/architecture.md describes, held by tests: no import cycle, the CLI never
imports HTTP handlers, tool plugins never see the server, key stores are opened through one
function, and no code cites files outside the repo."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = {"server": "skywarden.server", "tools": "skywarden.tools", "clients": "skywarden.clients"}


def _modules() -> dict[str, Path]:
    found = {}
    for folder, package in PACKAGES.items():
        for path in (ROOT / folder).rglob("*.py"):
            parts = path.relative_to(ROOT / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def _is_type_checking(node: ast.If) -> bool:
    return isinstance(node.test, ast.Name) and node.test.id == "TYPE_CHECKING"


def _imports(path: Path, known: set[str]) -> set[str]:
    """Every skywarden module this file imports, at any depth, except under ``if TYPE_CHECKING``."""
    result: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skywarden"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                result.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            result.update(a.name for a in node.names if a.name.startswith("skywarden"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in result if m in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) for name, path in modules.items()}


def test_the_graph_is_read():
    graph = _graph()
    assert "skywarden.server.calls.pipeline" in graph["skywarden.server.app"]
    assert "skywarden.server.errors" in graph["skywarden.server.calls.pipeline"]


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    visiting: set[str] = set()
    done: set[str] = set()

    def walk(node: str, trail: list[str]) -> list[str] | None:
        visiting.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt in visiting:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in done and (found := walk(nxt, [*trail, nxt])):
                return found
        visiting.discard(node)
        done.add(node)
        return None

    for module in sorted(graph):
        if module not in done and (found := walk(module, [module])):
            return found
    return None


def test_the_cycle_finder_finds_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle():
    assert find_cycle(_graph()) is None


def test_cli_never_imports_http_handlers():
    graph = _graph()
    for module, imported in graph.items():
        if module.startswith("skywarden.server.cli"):
            assert not {m for m in imported if m.startswith("skywarden.server.api")}, module


def test_tool_plugins_never_import_the_server():
    graph = _graph()
    for module, imported in graph.items():
        if module.startswith("skywarden.tools"):
            assert not {m for m in imported if m.startswith("skywarden.server")}, module


def test_no_code_or_doc_cites_a_file_outside_the_repository():
    texts = [p for folder in (*PACKAGES, "docs", "benchmarks") for p in (ROOT / folder).rglob("*.*")]
    texts.append(ROOT / "README.md")
    offenders = [str(p) for p in texts if p.suffix in {".py", ".md"} and "DESIGN.md" in p.read_text()]
    assert offenders == []


def test_key_stores_are_opened_only_through_open_checked():
    """So that every opener (serve, --workers, each CLI command) fails in one clear line; other
    things with an ``open()`` are listed by name."""
    not_stores = {"identity.http", "upstream"}
    calls = []
    for name, path in _modules().items():
        if name == "skywarden.server.auth.backends":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open":
                receiver = ast.unparse(node.func.value)
                if receiver not in not_stores and receiver not in ("os", "io", "sqlite3", "zipfile"):
                    calls.append(f"{name}: {receiver}.open(...)")
    assert calls == [], "open a key store with auth.backends.open_checked"
