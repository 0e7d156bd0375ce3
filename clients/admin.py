"""``AdminClient``: the /api/admin/keys API with the admin token."""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import aiohttp

from skywarden.clients.client import masked, resolve_url
from skywarden.clients.http import Answer, HttpCore, RetryPolicy, Timeouts
from skywarden.clients.mapping import decode, problem_error


class AdminClient:
    """Admin API client; ``admin_token`` defaults to ``SKYWARDEN_ADMIN_TOKEN``."""

    def __init__(
        self,
        base_url: str | None = None,
        admin_token: str | None = None,
        *,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        verify_tls: bool = True,
        ca_file: str | None = None,
    ) -> None:
        self.base_url = resolve_url(base_url)
        self._token = admin_token if admin_token is not None else os.environ.get("SKYWARDEN_ADMIN_TOKEN")
        headers = {"Authorization": f"Bearer {self._token}"} if self._token else {}
        self._core = HttpCore(
            self.base_url,
            headers,
            session=session,
            timeouts=timeouts,
            retry=retry,
            verify_tls=verify_tls,
            ca_file=ca_file,
        )

    def __repr__(self) -> str:
        return f"AdminClient(url={self.base_url!r}, token={masked(self._token)})"

    async def __aenter__(self) -> AdminClient:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()

    async def close(self) -> None:
        await self._core.close()

    @staticmethod
    def _ok(answer: Answer, *statuses: int) -> Any:
        if answer.status not in statuses:
            raise problem_error(answer)
        return decode(answer) if answer.body else None

    @staticmethod
    def _object(answer: Answer, *statuses: int) -> dict[str, Any]:
        """The JSON object a successful answer carries."""
        body: dict[str, Any] = AdminClient._ok(answer, *statuses)
        return body

    async def create_key(self, name: str, **fields: Any) -> dict[str, Any]:
        """Create a key; the answer's ``key`` is the only time the full key is shown."""
        answer = await self._core.request("POST", "/api/admin/keys", json={"name": name, **fields}, idempotent=False)
        return self._object(answer, 201)

    async def list_keys(self, **filters: Any) -> list[dict[str, Any]]:
        query = "&".join(f"{k}={quote(str(v))}" for k, v in filters.items() if v is not None)
        answer = await self._core.request("GET", "/api/admin/keys" + (f"?{query}" if query else ""), idempotent=True)
        keys: list[dict[str, Any]] = self._object(answer, 200)["keys"]
        return keys

    async def get_key(self, key_id: str) -> dict[str, Any]:
        answer = await self._core.request("GET", f"/api/admin/keys/{quote(key_id, safe='')}", idempotent=True)
        return self._object(answer, 200)

    async def update_key(self, key_id: str, **changes: Any) -> dict[str, Any]:
        answer = await self._core.request(
            "PATCH", f"/api/admin/keys/{quote(key_id, safe='')}", json=changes, idempotent=True
        )
        return self._object(answer, 200)

    async def rotate_key(self, key_id: str, grace_seconds: int = 3600) -> dict[str, Any]:
        answer = await self._core.request(
            "POST",
            f"/api/admin/keys/{quote(key_id, safe='')}/rotate",
            json={"grace_seconds": grace_seconds},
            idempotent=False,
        )
        return self._object(answer, 200)

    async def revoke_key(self, key_id: str, reason: str | None = None) -> None:
        answer = await self._core.request(
            "DELETE",
            f"/api/admin/keys/{quote(key_id, safe='')}",
            json={"reason": reason} if reason else None,
            idempotent=True,
        )
        self._ok(answer, 204)
