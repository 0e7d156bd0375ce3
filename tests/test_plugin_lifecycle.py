"""Plugins' start-up and shutdown hooks: in order, with a context of the plugin, a failed start
stopped clearly and cleaned up, a failed shutdown logged without stopping the others."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import pytest

import skywarden.server.testing as testing
from skywarden.server.app import create_app
from skywarden.server.http.paths import TOOLS_PATH
from skywarden.server.plugins.http_client import PluginHttp
from skywarden.server.plugins.lifecycle import PluginStartError
from skywarden.server.plugins.registry import PluginInfo, ToolRegistry
from skywarden.server.plugins.settings import declared_settings
from skywarden.server.testing import SkywardenTestServer, fake_upstream, running_app
from tests.support.admin import ADMIN_HEADERS
from tests.support.logs import SECRETS, drain_logs
from tests.support.plugin_settings_samples import AcmeSettings, ShowSettings, acme_plugin, tool_of

API_KEY = "acme-lifecycle-" + "k" * 24
SECRETS.add(API_KEY)


class Recorder:
    """Hooks that note when they ran, in one shared list."""

    def __init__(self) -> None:
        self.events: list[str] = []

    def hook(self, name: str, fail: BaseException | None = None) -> Any:
        async def hook(context: Any) -> None:
            self.events.append(name)
            if fail is not None:
                raise fail

        hook.__name__ = name
        return hook


def plugin(name: str, recorder: Recorder, *, startup: tuple = (), shutdown: tuple = ()) -> PluginInfo:
    return PluginInfo(name, f"{name}-tools 1.0", name.title(), startup=startup, shutdown=shutdown)


@pytest.fixture
def installed(monkeypatch):
    """Make running_app's "every installed plugin" these plugins (with acme's show_settings tool)."""

    def install(*plugins: PluginInfo) -> None:
        acme = next((p for p in plugins if p.name == "acme"), None)
        tools = [tool_of("acme", ShowSettings())] if acme is not None else []
        monkeypatch.setattr(testing, "discover_tools", lambda: ToolRegistry(tools, plugins=list(plugins)))

    return install


async def test_start_up_hooks_run_in_plugin_order_and_shutdown_hooks_in_reverse(installed):
    r = Recorder()
    installed(
        plugin("beta", r, startup=(r.hook("b.start"),), shutdown=(r.hook("b.stop"),)),
        plugin("alpha", r, startup=(r.hook("a.one"), r.hook("a.two")), shutdown=(r.hook("a.last"), r.hook("a.first"))),
        plugin("gamma", r),
    )
    async with running_app():
        assert r.events == ["a.one", "a.two", "b.start"]
    assert r.events == ["a.one", "a.two", "b.start", "b.stop", "a.last", "a.first"]


async def test_hooks_get_the_plugin_context_and_tools_see_the_state(installed):
    seen: dict[str, Any] = {}

    async def connect(ctx: Any) -> None:
        seen.update(settings=ctx.settings, principal=ctx.principal, http=ctx.http)
        ctx.state.greeting = (await ctx.http.get_json(f"{ctx.settings.base_url}/hello", service="Acme"))["hi"]
        ctx.log.info("acme connected")

    async def disconnect(ctx: Any) -> None:
        seen["state at shutdown"] = dict(vars(ctx.state))

    installed(acme_plugin(startup=(connect,), shutdown=(disconnect,)))
    async with fake_upstream({"/hello": {"hi": "there"}}) as upstream:  # the upstream pool is open for start-up hooks
        async with running_app(acme_api_key=API_KEY, acme_base_url=upstream.url) as app:
            key = await app.create_key(scopes=["show_settings"])
            status, body = await app.call_tool("show_settings", {}, key)
    assert status == 200 and body["structuredContent"]["state"] == {"greeting": "there"}
    assert isinstance(seen["settings"], AcmeSettings) and seen["settings"].api_key.reveal() == API_KEY
    assert seen["principal"] is None and isinstance(seen["http"], PluginHttp)
    assert seen["state at shutdown"] == {"greeting": "there"}
    (logged,) = [e for e in drain_logs() if e.get("event") == "acme connected"]
    assert logged["plugin"] == "acme"


async def test_a_failing_start_up_hook_stops_the_start_and_shuts_down_what_started(installed):
    r = Recorder()
    installed(
        plugin("alpha", r, startup=(r.hook("a.start"),), shutdown=(r.hook("a.stop"),)),
        plugin(
            "beta",
            r,
            startup=(r.hook("connect", ConnectionError("refused by db.beta.test")),),
            shutdown=(r.hook("b.stop"),),
        ),
        plugin("gamma", r, startup=(r.hook("c.start"),), shutdown=(r.hook("c.stop"),)),
    )
    with pytest.raises(PluginStartError) as info:
        async with running_app():
            pytest.fail("the app must not start")
    assert str(info.value) == "plugin beta: start-up hook connect failed: ConnectionError: refused by db.beta.test"
    assert r.events == ["a.start", "connect", "a.stop"]  # beta never started, gamma never reached
    (logged,) = [e for e in drain_logs() if e.get("event") == "plugin start-up hook failed" and e["plugin"] == "beta"]
    assert logged["hook"] == "connect" and logged["error"] == "ConnectionError: refused by db.beta.test"


async def test_a_plugin_whose_later_start_up_hook_fails_is_shut_down_too(installed):
    r = Recorder()
    installed(
        plugin("alpha", r, startup=(r.hook("open"), r.hook("warm", ValueError("cold"))), shutdown=(r.hook("close"),))
    )
    with pytest.raises(PluginStartError, match=r"^plugin alpha: start-up hook warm failed: ValueError: cold$"):
        async with running_app():
            pass
    assert r.events == ["open", "warm", "close"]


async def test_a_start_up_hook_that_never_ends_is_stopped_by_the_time_limit(installed):
    r = Recorder()

    async def hang(context: Any) -> None:
        await asyncio.Event().wait()

    installed(plugin("alpha", r, startup=(hang,), shutdown=(r.hook("close"),)))
    with pytest.raises(PluginStartError) as info:
        async with running_app(plugin_hook_timeout="0.01"):
            pass
    assert str(info.value) == (
        "plugin alpha: start-up hook hang failed: TimeoutError: still running after 0.01 s (plugin_hook_timeout)"
    )
    assert r.events == []


async def test_a_failing_shutdown_hook_is_logged_and_the_others_still_run(installed):
    r = Recorder()
    installed(
        plugin("alpha", r, shutdown=(r.hook("a.flush", RuntimeError("disk full")), r.hook("a.close"))),
        plugin("beta", r, shutdown=(r.hook("b.close", OSError("gone")),)),
    )
    async with running_app():
        pass
    assert r.events == ["b.close", "a.flush", "a.close"]
    failed = [e for e in drain_logs() if e.get("event") == "plugin shutdown hook failed"]
    assert {(e["plugin"], e["hook"], e["error"]) for e in failed} >= {
        ("alpha", "a.flush", "RuntimeError: disk full"),
        ("beta", "b.close", "OSError: gone"),
    }


async def test_shutdown_hooks_run_after_the_last_call_has_ended(make_settings):
    """The server stops taking calls, lets the one in flight finish, then runs the shutdown hooks."""
    running, release, ended = asyncio.Event(), asyncio.Event(), asyncio.Event()
    seen: dict[str, bool] = {}

    class Slow(ShowSettings):
        name = "slow"

        async def call(self, arguments: dict[str, Any], context: Any) -> Any:
            running.set()
            await release.wait()
            ended.set()
            return await super().call(arguments, context)

    async def record(context: Any) -> None:
        seen["call had ended"] = ended.is_set()

    registry = ToolRegistry([tool_of("acme", Slow())], plugins=[acme_plugin(tools=("slow",), shutdown=(record,))])
    settings = make_settings(declared_settings(registry.plugins), acme_api_key=API_KEY)
    app = create_app(settings, registry=registry)

    async def stopping(app: Any) -> None:  # the server no longer accepts; now let the call finish
        release.set()

    app.on_shutdown.append(stopping)
    server = SkywardenTestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        async with aiohttp.ClientSession() as http:
            made = await http.post(
                str(server.make_url("/api/admin/keys")), json={"name": "t", "scopes": ["slow"]}, headers=ADMIN_HEADERS
            )
            key = (await made.json())["key"]
            SECRETS.add(key)
            call = asyncio.create_task(
                http.post(str(server.make_url(f"{TOOLS_PATH}/slow")), json={}, headers={"X-API-Key": key})
            )
            await asyncio.wait([call, asyncio.ensure_future(running.wait())], return_when=asyncio.FIRST_COMPLETED)
            assert running.is_set(), await (await call).text()
            await server.close()
            answer = await call
            assert answer.status == 200
    finally:
        await server.close()
    assert seen == {"call had ended": True}
