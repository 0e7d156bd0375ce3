"""The key store interface and the factory that picks an implementation from ``database_url``."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from skywarden.server.auth.records import HashMatch, KeyFilter, KeyRecord


class KeyNotFound(LookupError):
    pass


class KeyStore(Protocol):
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def ping(self) -> bool: ...

    async def create(self, record: KeyRecord, key_hash: str) -> None: ...
    async def get(self, key_id: str) -> KeyRecord | None: ...
    async def find_by_hash(self, key_hash: str) -> HashMatch | None: ...
    async def list(self, filters: KeyFilter) -> list[KeyRecord]: ...
    async def update(self, key_id: str, changes: dict[str, Any]) -> KeyRecord: ...
    async def revoke(self, key_id: str, reason: str | None, when: datetime) -> KeyRecord: ...
    async def rotate(
        self, key_id: str, new_hash: str, new_prefix: str, old_valid_until: datetime, when: datetime
    ) -> KeyRecord: ...
    async def record_usage(self, usage: dict[str, tuple[int, datetime]]) -> None: ...


def open_store(database_url: str) -> KeyStore:
    if database_url.startswith("sqlite:///"):
        from skywarden.server.auth.sqlite_store import SQLiteKeyStore

        return SQLiteKeyStore(database_url.removeprefix("sqlite:///"))
    raise ValueError("database_url must start with sqlite:///")
