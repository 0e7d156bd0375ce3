from __future__ import annotations

import os
from pathlib import Path

import pytest
from skywarden.server.app import create_app
from skywarden.server.settings import Settings, load_settings

from tests.fake_nws import FakeNWS

REQUIRE_SERVICES = os.environ.get("SKYWARDEN_REQUIRE_SERVICES") == "1"


@pytest.fixture
async def fake_nws(aiohttp_server) -> FakeNWS:
    fake = FakeNWS()
    server = await aiohttp_server(fake.app())
    fake.url = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def make_settings(tmp_path: Path, fake_nws: FakeNWS):
    def make(**overrides) -> Settings:
        values = {
            "data_dir": str(tmp_path / "data"),
            "nws_base_url": fake_nws.url,
            "upstream_timeout": "5",
            "log_level": "debug",
        }
        values.update({k: v for k, v in overrides.items()})
        return load_settings(cli=values, environ={})

    return make


@pytest.fixture
def settings(make_settings) -> Settings:
    return make_settings()


@pytest.fixture
async def make_client(aiohttp_client, make_settings):
    async def make(settings: Settings | None = None, **kwargs):
        app = create_app(settings or make_settings(), **kwargs)
        return await aiohttp_client(app)

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()
