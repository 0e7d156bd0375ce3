from __future__ import annotations

import functools
import re
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from skywarden.server.app import create_app
from skywarden.server.observability.logging_setup import close_sinks, configure_logging
from skywarden.server.plugins import registry as plugin_registry
from skywarden.server.plugins.registry import discover_tools
from skywarden.server.plugins.settings import declared_settings
from skywarden.server.settings import PluginSettings, Settings, load_settings
from skywarden.server.testing import SkywardenTestServer
from tests.support.admin import ADMIN_HEADERS, ADMIN_TOKEN, create_key
from tests.support.fake_nws import FakeNWS
from tests.support.logs import CAPTURED, SECRETS
from tests.support.oidc_provider import KEY_POOL


@pytest.fixture(scope="session", autouse=True)
def no_secret_in_any_log_line():
    sinks = configure_logging("debug", "json", stream=CAPTURED, cache_loggers=False)
    yield
    for sink in sinks:
        sink.drain()
    from tests.support.server_process import SUBPROCESS_LINES

    any_secret = re.compile("|".join(map(re.escape, sorted(SECRETS, key=len, reverse=True))))
    leaks = [
        (found[0][:12] + "…", line[:200])
        for line in CAPTURED.lines + SUBPROCESS_LINES
        if SECRETS and (found := any_secret.search(line))
    ]
    close_sinks()
    assert not leaks, f"secrets found in logs: {leaks[:5]}"


@pytest.fixture(scope="session", autouse=True)
def installed_entry_points_read_once():
    """Every app a test makes discovers the installed plugins. What is installed does not change
    during a run (a test that adds a plugin passes its own ``paths`` or puts it on ``sys.path``),
    so the entry points are read once instead of once per app."""
    installed = list(plugin_registry.entry_points())
    path = list(sys.path)
    read = plugin_registry.entry_points

    def entry_points(paths: list[str] | None = None):
        return iter(installed) if paths is None and sys.path == path else read(paths)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plugin_registry, "entry_points", entry_points)
        yield


@pytest.fixture(autouse=True)
def signing_keys_of_its_own():
    """Each test's ``SigningKey.new`` keys differ from each other (they are reused across tests)."""
    KEY_POOL.next_test()


@pytest.fixture
async def fake_nws(aiohttp_server) -> FakeNWS:
    fake = FakeNWS()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@functools.cache
def installed_plugins() -> tuple[PluginSettings, ...]:
    """The settings the installed plugins declare (``weather_*`` among them), discovered once."""
    return declared_settings(discover_tools().plugins)


@pytest.fixture
def make_settings(tmp_path: Path, fake_nws: FakeNWS):
    def make(plugins: Sequence[PluginSettings] | None = None, **overrides) -> Settings:
        """Settings for a test server; ``plugins``: those whose settings it reads (default: the
        installed ones); the weather plugin's calls go to the fake NWS."""
        plugins = installed_plugins() if plugins is None else tuple(plugins)
        values = {
            "data_dir": str(tmp_path / "data"),
            "admin_token": ADMIN_TOKEN,
            "upstream_timeout": "5",
            "log_level": "debug",
        }
        if any(plugin.name == "weather" for plugin in plugins):
            values["weather_base_url"] = fake_nws.url
        values.update(overrides)
        return load_settings(cli=values, environ={}, plugins=plugins)

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
async def make_server(make_settings):
    """Real servers on loopback, served as ``skywarden serve`` serves (guarded connections)."""
    servers: list[SkywardenTestServer] = []

    async def make(settings: Settings | None = None, port: int | None = None, **kwargs):
        app = create_app(settings or make_settings(), **kwargs)
        server = SkywardenTestServer(app, host="127.0.0.1", **({"port": port} if port else {}))
        await server.start_server()
        servers.append(server)
        return server

    yield make
    for server in servers:
        await server.close()


@pytest.fixture
async def make_client(aiohttp_client, make_server):
    """A client whose requests carry a fresh API key (``client.api_key``); ``client.admin`` holds the admin token."""

    async def make(settings: Settings | None = None, scopes: list[str] | None = None, **kwargs):
        server = await make_server(settings, **kwargs)
        admin = await aiohttp_client(server, headers=ADMIN_HEADERS)
        key = await create_key(admin, scopes=scopes or ["*"])
        client = await aiohttp_client(server, headers={"X-API-Key": key["key"]})
        client.api_key = key["key"]
        client.key_id = key["id"]
        client.admin = admin
        client.anonymous = await aiohttp_client(server)
        return client

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
async def issuer():
    """A loopback OpenID issuer whose keys and configuration a test can take away (``tests/support/fake_idp.py``)."""
    from tests.support.fake_idp import FakeIssuer

    fake = FakeIssuer()
    await fake.start()
    yield fake
    await fake.stop()
