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


ADMIN_TOKEN = "test-admin-token-0123456789abcdefghijklmnop"
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


@pytest.fixture
def make_settings(tmp_path: Path, fake_nws: FakeNWS):
    def make(**overrides) -> Settings:
        values = {
            "data_dir": str(tmp_path / "data"),
            "admin_token": ADMIN_TOKEN,
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
async def make_server(aiohttp_server, make_settings):
    async def make(settings: Settings | None = None, **kwargs):
        return await aiohttp_server(create_app(settings or make_settings(), **kwargs))

    return make


async def create_key(admin_client, **fields) -> dict:
    fields.setdefault("name", "test key")
    resp = await admin_client.post("/api/admin/keys", json=fields)
    assert resp.status == 201, await resp.text()
    return await resp.json()


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
