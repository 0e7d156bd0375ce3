"""The admin credential the test servers are started with, and creating a key through the admin API."""

from __future__ import annotations

from tests.support.logs import SECRETS

ADMIN_TOKEN = "test-admin-token-0123456789abcdefghijklmnop"
SECRETS.add(ADMIN_TOKEN)
ADMIN_HEADERS = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


async def create_key(admin_client, **fields) -> dict:
    fields.setdefault("name", "test key")
    resp = await admin_client.post("/api/admin/keys", json=fields)
    assert resp.status == 201, await resp.text()
    body = await resp.json()
    SECRETS.add(body["key"])
    return body
