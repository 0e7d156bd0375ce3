"""The structure docs/architecture.md describes, held by tests: the folders of server/ are layers
(a module imports only its own folder and the layers below it), no import cycle, the CLI never
imports HTTP handlers, tool plugins never see the server, key stores are opened through one
function, and no code cites files outside the repo."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.support.sources import syntax_tree

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


def _imports(path: Path, known: set[str], *, typing_too: bool = False) -> set[str]:
    """Every skywarden module this file imports, at any depth; those under ``if TYPE_CHECKING``
    only with ``typing_too``."""
    result: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node) and not typing_too:
            return
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("skywarden"):
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                result.add(candidate if candidate in known else node.module)
        elif isinstance(node, ast.Import):
            result.update(a.name for a in node.names if a.name.startswith("skywarden"))
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(syntax_tree(path))
    return {m for m in result if m in known}


def _graph(*, typing_too: bool = False) -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known, typing_too=typing_too) for name, path in modules.items()}


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
        for node in ast.walk(syntax_tree(path)):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "open":
                receiver = ast.unparse(node.func.value)
                if receiver not in not_stores and receiver not in ("os", "io", "sqlite3", "zipfile"):
                    calls.append(f"{name}: {receiver}.open(...)")
    assert calls == [], "open a key store with auth.backends.open_checked"


# The layers of server/, from the bottom up (docs/architecture.md draws them). A module may import
# its own folder and any folder of a lower layer; the folders of one layer never import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("tools",),  # skywarden.tools, the plugin contract: it never imports the server
    ("core",),  # the modules directly in server/: errors, settings, principal, request state, ...
    ("plugins",),  # discovery, registry, schemas, the HTTP client: the server side of skywarden.tools
    ("http",),
    ("observability",),
    ("gateway",),  # upstream MCP servers: their connections, their tools as registered tools
    ("calls",),
    ("identity",),
    ("auth",),
    ("mcp", "api", "console"),  # the doors
    ("shared",),
    ("app",),  # server/app.py (the factory) and server/testing.py, built on it
    ("cli",),
)
TOP_MODULES = frozenset({"app", "testing"})  # directly in server/, yet the top: they wire everything
# appkeys names the type of each thing the factory puts on the app, which lives in the layer that
# makes it. Those imports are for annotations only (under TYPE_CHECKING): they never run, so they
# add no dependency at run time, and a module reading a key from a lower layer gets no more than
# the key. Every other module's TYPE_CHECKING imports keep the order too.
TYPING_EXEMPT = frozenset({"skywarden.server.appkeys"})


def folder_of(module: str) -> str:
    """The layer folder of a skywarden module: a folder of server/, "core", "app" or "tools"."""
    parts = module.split(".")
    if parts[1] != "server":
        return parts[1]
    if len(parts) == 2:
        return "core"  # the package itself: its version
    if (ROOT / "server" / parts[2]).is_dir():
        return parts[2]
    return "app" if parts[2] in TOP_MODULES else "core"


def rank_of(folder: str) -> int:
    """Its layer's place from the bottom; a package outside the layers (clients) is above them all."""
    return next((rank for rank, layer in enumerate(LAYERS) if folder in layer), len(LAYERS))


def layer_violations(graph: dict[str, set[str]]) -> list[str]:
    found = []
    for module, imported in graph.items():
        if not module.startswith("skywarden.server"):
            continue
        own = folder_of(module)
        for target in imported:
            other = folder_of(target)
            if other != own and rank_of(other) >= rank_of(own):
                found.append(f"{module} ({own}) imports {target} ({other})")
    return sorted(found)


def test_the_layer_check_finds_an_upward_or_sideways_import():
    graph = {
        "skywarden.server.http.errors": {"skywarden.server.mcp.protocol", "skywarden.server.errors"},
        "skywarden.server.api.rest": {"skywarden.server.mcp.wire", "skywarden.server.http.body"},
        "skywarden.server.errors": {"skywarden.server.app"},
        "skywarden.server.cli.main": {"skywarden.server.app", "skywarden.server.plugins.registry"},
    }
    assert layer_violations(graph) == [
        "skywarden.server.api.rest (api) imports skywarden.server.mcp.wire (mcp)",
        "skywarden.server.errors (core) imports skywarden.server.app (app)",
        "skywarden.server.http.errors (http) imports skywarden.server.mcp.protocol (mcp)",
    ]


def test_the_layers_name_every_folder_of_the_server_once():
    named = [folder for layer in LAYERS for folder in layer]
    folders = {p.name for p in (ROOT / "server").iterdir() if (p / "__init__.py").exists()}
    assert len(named) == len(set(named))
    assert set(named) == folders | {"tools", "core", "app"}
    assert all((ROOT / "server" / f"{name}.py").exists() for name in TOP_MODULES)
    assert {folder_of(m) for m in _modules()} <= set(named) | {"clients"}


def test_every_import_keeps_the_layer_order():
    """TYPE_CHECKING imports too, but for ``TYPING_EXEMPT`` (see there)."""
    graph = _graph()
    with_types = _graph(typing_too=True)
    for module in with_types.keys() - TYPING_EXEMPT:
        graph[module] = with_types[module]
    assert layer_violations(graph) == []


def _request_uses(node: ast.AST) -> str | None:
    """``request[...]`` or ``request.app`` / ``request.config_dict``: the source text, else None."""
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name) and node.value.id == "request":
        return ast.unparse(node)
    if isinstance(node, ast.Attribute) and node.attr in {"app", "config_dict"}:
        if isinstance(node.value, ast.Name) and node.value.id == "request":
            return ast.unparse(node)
    return None


def test_per_request_state_is_one_object_reached_through_state_of():
    """No request key but ``request_state.STATE``, and no module but request_state reads or
    writes a request's own values: a new per-request value is a field of ``RequestState``."""
    found = []
    for name, path in _modules().items():
        if name == "skywarden.server.request_state":
            continue
        for node in ast.walk(syntax_tree(path)):
            if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("RequestKey"):
                found.append(f"{name}: {ast.unparse(node)}")
            used = _request_uses(node)
            if used is not None and used.startswith("request["):
                found.append(f"{name}: {used}")
    assert found == []


def test_nothing_looks_things_up_on_the_app():
    """Every part of the request path, route handlers included, is given what it needs when the
    factory builds the app: no ``request.app[...]`` or ``request.config_dict``. Reading the app's
    router (``http/routes.py``: the rule of a known path, for a 405) is not a look-up of a part."""
    found = []
    for name, path in _modules().items():
        tree = syntax_tree(path)
        routers = {
            id(node.value) for node in ast.walk(tree) if isinstance(node, ast.Attribute) and node.attr == "router"
        }
        for node in ast.walk(tree):
            used = _request_uses(node)
            if used is not None and not used.startswith("request[") and id(node) not in routers:
                found.append(f"{name}: {used}")
    assert found == [], "inject it from the app factory (server/app.py)"


def test_no_pattern_ends_in_a_dollar_which_lets_a_final_newline_in():
    """``$`` also matches before a final newline, so ``"calc\\n"`` would pass a name check: every
    anchored pattern of the code ends in ``\\Z`` instead."""
    dollar = re.compile(r"""re\.(?:compile|match|fullmatch|search)\(\s*r?(["'])[^"']*\$\1""")
    found = [
        f"{path.relative_to(ROOT)}:{number}"
        for folder in ("server", "tools", "clients")
        for path in sorted((ROOT / folder).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if dollar.search(line)
    ]
    assert found == []


HTTPX_ONE_OFFS = frozenset({"request", "stream", "get", "head", "options", "post", "put", "patch", "delete"})


def _server_nodes(*skipped: str) -> Iterator[tuple[str, ast.AST]]:
    """Every node of every server module but ``testing`` (a caller of the server, not one of its
    clients) and ``skipped``, with its module's name."""
    for name, path in _modules().items():
        if name.startswith("skywarden.server") and name not in ("skywarden.server.testing", *skipped):
            yield from ((name, node) for node in ast.walk(syntax_tree(path)))


def _says(call: ast.Call, keyword: str, value: str) -> bool:
    return any(k.arg == keyword and ast.unparse(k.value) == value for k in call.keywords)


def test_every_http_client_of_the_server_keeps_no_cookies():
    """One client serves every caller: a cookie one caller's answer set would go with another's
    requests. An aiohttp client is made by ``outbound.client_session`` only, and an httpx client
    is given ``outbound.no_cookie_jar()``. ``testing.running_app``'s client is the test's own,
    a caller of the server, not one of its clients."""
    found, makers, httpx_clients = [], set(), 0
    for name, node in _server_nodes("skywarden.server.outbound"):
        if not isinstance(node, ast.Call):
            continue
        called = ast.unparse(node.func)
        module, _, function = called.rpartition(".")
        if function == "client_session":
            makers.add(name)
        if called.endswith("AsyncClient"):
            httpx_clients += 1
        if called.endswith("ClientSession") or (module == "aiohttp" and function == "request"):
            found.append(f"{name}: {ast.unparse(node)}")
        if module.startswith("httpx") and function in HTTPX_ONE_OFFS:
            found.append(f"{name}: {ast.unparse(node)}")
        if called.endswith(("AsyncClient", "httpx2.Client", "httpx.Client")) and not _says(
            node, "cookies", "no_cookie_jar()"
        ):
            found.append(f"{name}: {ast.unparse(node)}")
    assert found == [], "make it with outbound.client_session, or give it cookies=no_cookie_jar()"
    assert len(makers) >= 3 and httpx_clients >= 1  # the gateway's, the plugins', the issuers'; the SDK's


def test_no_aiohttp_request_of_the_server_follows_a_redirect():
    """A redirect would carry what a request holds (a credential, a code, a caller's arguments)
    to wherever the answer points, past the address checks: every aiohttp request the server
    makes (``async with session.<method>(...)``) says ``allow_redirects=False``, and the httpx
    client given to the MCP SDK follows none itself (the SDK follows a redirect within the
    upstream's origin only, by its own rule). ``testing.py`` is a caller of the server, not one
    of its clients."""
    methods = {"get", "head", "options", "post", "put", "patch", "delete", "request"}
    found, seen = [], 0
    for name, node in _server_nodes():
        if isinstance(node, ast.Call) and ast.unparse(node.func).endswith("AsyncClient"):
            seen += 1
            if not _says(node, "follow_redirects", "False"):
                found.append(f"{name}: {ast.unparse(node)[:120]}")
        if not isinstance(node, ast.AsyncWith):
            continue
        for item in node.items:
            call = item.context_expr
            if isinstance(call, ast.Call) and isinstance(call.func, ast.Attribute) and call.func.attr in methods:
                seen += 1
                if not _says(call, "allow_redirects", "False"):
                    found.append(f"{name}: {ast.unparse(call)[:120]}")
    assert seen >= 6  # the gateway's two, the plugins', the keys', the console's token exchange; httpx's
    assert found == []
