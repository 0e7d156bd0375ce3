"""Test helpers for tool-plugin authors: run Skywarden in-process with your tools and a fake upstream.

    from skywarden.server.testing import fake_upstream, running_app

    async def test_my_tool():
        async with fake_upstream({"/things/1": {"name": "one"}}) as upstream:
            async with running_app(tools=[MyTool()], tool_settings={"mytool": {"base_url": upstream.url}}) as app:
                key = await app.create_key(scopes=["my_tool"])
                status, body = await app.call_tool("my_tool", {"id": 1}, key)
                assert status == 200 and not body["isError"]

Everything is real: the app factory, the SQLite key store (in a temporary
folder), authentication, rate limits, both doors (REST and MCP) over loopback
HTTP. Only the outside API is played by ``fake_upstream``. See docs/plugins.md.
"""

from __future__ import annotations

import json
import secrets
import tempfile
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import aiohttp
import structlog
from aiohttp import web
from aiohttp.test_utils import TestServer

from skywarden.server.app import create_app
from skywarden.server.appkeys import SETTINGS
from skywarden.server.http.connections import GuardedAppRunner
from skywarden.server.http.paths import ADMIN_KEYS_PATH, MCP_PATH, TOOLS_PATH
from skywarden.server.observability.audit import audit_connection
from skywarden.server.observability.redaction import redacting_renderer
from skywarden.server.plugins.lifecycle import PluginStartError
from skywarden.server.plugins.model import InvalidToolError
from skywarden.server.plugins.registry import discover_tools, registry_of
from skywarden.server.plugins.settings import declared_settings
from skywarden.server.settings import Settings, SettingsError, load_settings

__all__ = [
    "Answer",
    "FakeUpstream",
    "InvalidToolError",
    "PluginStartError",
    "RunningApp",
    "SeenRequest",
    "SettingsError",
    "fake_upstream",
    "running_app",
]

MODERN_VERSION = "2026-07-28"


@dataclass(frozen=True)
class Answer:
    """A canned upstream answer; a bare dict or list in the routes means 200 with that JSON.
    ``body`` is sent as JSON, or as it is when it is ``bytes``."""

    body: Any
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass(frozen=True)
class SeenRequest:
    """A request the fake upstream received. Unpacks as ``(path, headers)``, its first form."""

    method: str
    path: str  # with the query, when there is one
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    def __iter__(self) -> Iterator[Any]:
        return iter((self.path, self.headers))


@dataclass
class FakeUpstream:
    url: str
    routes: dict[str, Any]
    requests: list[SeenRequest] = field(default_factory=list)


@asynccontextmanager
async def fake_upstream(routes: Mapping[str, Any]) -> AsyncIterator[FakeUpstream]:
    """A local HTTP server (on 127.0.0.1) answering from ``routes``, 404 for anything else.

    A route is a path (query included, when given), answered for GET and HEAD, or a method and
    a path (``"POST /things"``, ``"DELETE /things/1"``); its value is an ``Answer`` or the JSON
    of a 200. Every request is recorded in ``requests`` (method, path, headers, body).

    The server is on loopback, which the SSRF guard of ``context.http`` refuses unless the
    plugin's operator configured it: give its ``url`` as one of the plugin's URL settings (as
    ``running_app(tool_settings={"mygroup": {"base_url": upstream.url}})`` does), or allow
    loopback for the test with ``running_app(upstream_allowed_networks="127.0.0.1")``."""
    fake = FakeUpstream(url="", routes=dict(routes))

    async def answer(request: web.Request) -> web.Response:
        body = await request.read()
        fake.requests.append(SeenRequest(request.method, request.path_qs, dict(request.headers), body))
        found = None
        for key in _route_keys(request.method, request.path_qs, request.path):
            found = fake.routes.get(key)
            if found is not None:
                break
        if found is None:
            return web.json_response({"title": "Not Found", "status": 404}, status=404)
        canned = found if isinstance(found, Answer) else Answer(found)
        content = canned.body if isinstance(canned.body, bytes) else json.dumps(canned.body).encode()
        return web.Response(
            body=content,
            status=canned.status,
            headers=dict(canned.headers),
            content_type=canned.content_type,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", answer)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    fake.url = str(server.make_url("")).rstrip("/")
    try:
        yield fake
    finally:
        await server.close()


def _route_keys(method: str, path_qs: str, path: str) -> Iterator[str]:
    yield f"{method} {path_qs}"
    yield f"{method} {path}"
    if method in ("GET", "HEAD"):
        yield path_qs
        yield path


class SkywardenTestServer(TestServer):
    """aiohttp's TestServer, served the way ``skywarden serve`` serves: guarded connections
    (idle and slow-header timeout, parser refusals audited) and handler cancellation."""

    async def _make_runner(self, **kwargs: Any) -> web.AppRunner:
        settings = self.app[SETTINGS]
        kwargs.setdefault("handler_cancellation", True)
        return GuardedAppRunner(
            self.app,
            idle_timeout=settings.idle_timeout,
            auditor=audit_connection,
            **kwargs,
        )


@dataclass
class RunningApp:
    url: str
    admin_token: str
    settings: Settings
    session: aiohttp.ClientSession

    async def create_key(self, scopes: Iterable[str] = ("*",), **fields: Any) -> str:
        """Create a key through the admin API and return it (the only time it is shown)."""
        body = {"name": fields.pop("name", "test key"), "scopes": list(scopes), **fields}
        async with self.session.post(
            self.url + ADMIN_KEYS_PATH, json=body, headers={"Authorization": f"Bearer {self.admin_token}"}
        ) as resp:
            answer = await resp.json()
            if resp.status != 201:
                raise AssertionError(f"creating a key failed with {resp.status}: {answer}")
            key: str = answer["key"]
            return key

    async def list_tools(self, key: str) -> tuple[int, Any]:
        async with self.session.get(self.url + TOOLS_PATH, headers={"X-API-Key": key}) as resp:
            return resp.status, await resp.json(content_type=None)

    async def call_tool(self, name: str, arguments: Mapping[str, Any], key: str) -> tuple[int, Any]:
        """Call over REST: (HTTP status, the result or problem+json body)."""
        async with self.session.post(
            f"{self.url}{TOOLS_PATH}/{name}", json=dict(arguments), headers={"X-API-Key": key}
        ) as resp:
            return resp.status, await resp.json(content_type=None)

    async def call_tool_mcp(self, name: str, arguments: Mapping[str, Any], key: str) -> tuple[int, Any]:
        """Call over MCP (stateless revision 2026-07-28): (HTTP status, the JSON-RPC answer)."""
        message = {
            "jsonrpc": "2.0",
            "id": 1,
            "method": "tools/call",
            "params": {
                "name": name,
                "arguments": dict(arguments),
                "_meta": {
                    "io.modelcontextprotocol/protocolVersion": MODERN_VERSION,
                    "io.modelcontextprotocol/clientCapabilities": {},
                },
            },
        }
        headers = {
            "X-API-Key": key,
            "Accept": "application/json, text/event-stream",
            "MCP-Protocol-Version": MODERN_VERSION,
            "Mcp-Method": "tools/call",
            "Mcp-Name": name,
        }
        async with self.session.post(self.url + MCP_PATH, json=message, headers=headers) as resp:
            return resp.status, await resp.json(content_type=None)


def _log_plainly() -> None:
    """When the test run has not set up logging: the server's redaction, and tracebacks without
    their local variables (structlog's default shows them, and a request's locals hold secrets)."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.format_exc_info,
            redacting_renderer(structlog.dev.ConsoleRenderer(colors=False)),
        ],
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )


@asynccontextmanager
async def running_app(
    *,
    tools: Iterable[Any] | None = None,
    data_dir: str | None = None,
    **settings: Any,
) -> AsyncIterator[RunningApp]:
    """Serve Skywarden on a free loopback port with ``tools`` (default: every installed plugin).

    ``settings`` are Skywarden settings by name (e.g. ``rate_limit="5/minute"``), the plugins'
    settings by their full names (``acme_base_url=upstream.url``, ``acme_api_key="..."``) or as
    tables (``tool_settings={"acme": {...}}``). The plugins' start-up hooks run before this
    yields (a failing one raises ``PluginStartError``), their shutdown hooks when it ends. A
    missing or invalid setting raises ``SettingsError``; a tool the server cannot use,
    ``InvalidToolError`` (both naming what is wrong)."""
    _log_plainly()
    registry = registry_of(tools, "under test") if tools is not None else discover_tools()
    admin_token = "skw_test_admin_" + secrets.token_urlsafe(32)
    with tempfile.TemporaryDirectory(prefix="skywarden-test-") as temporary:
        values = {"data_dir": data_dir or temporary, "admin_token": admin_token, **settings}
        resolved = load_settings(
            cli=values,
            environ={},
            plugins=declared_settings(registry.plugins),
            cli_source=lambda name: f"running_app({name}=...)",
        )
        server = SkywardenTestServer(create_app(resolved, registry=registry), host="127.0.0.1")
        try:
            await server.start_server()  # a start that fails still closes what it opened
            async with aiohttp.ClientSession() as session:
                yield RunningApp(str(server.make_url("")).rstrip("/"), admin_token, resolved, session)
        finally:
            await server.close()
