"""Pick the key store implementation from ``database_url``."""

from __future__ import annotations

from skywarden.server.auth.store import KeyStore

SQLITE_SCHEME = "sqlite:///"


def open_store(database_url: str) -> KeyStore:
    if database_url.startswith(SQLITE_SCHEME):
        from skywarden.server.auth.sqlite_store import SQLiteKeyStore

        return SQLiteKeyStore(database_url.removeprefix(SQLITE_SCHEME))
    raise ValueError(f"database_url must start with {SQLITE_SCHEME}")
