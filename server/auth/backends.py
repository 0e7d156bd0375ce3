"""Pick the key store implementation from ``database_url``."""

from __future__ import annotations

from skywarden.server.auth.store import KeyStore

SQLITE_SCHEME = "sqlite:///"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(database_url: str) -> KeyStore:
    """The store for ``database_url``; drivers are imported only for the scheme in use."""
    if database_url.startswith(SQLITE_SCHEME):
        from skywarden.server.auth.sqlite_store import SQLiteKeyStore

        return SQLiteKeyStore(database_url.removeprefix(SQLITE_SCHEME))
    if database_url.startswith(POSTGRES_SCHEMES):
        from skywarden.server.auth.postgres_store import PostgresKeyStore

        return PostgresKeyStore(database_url)
    raise ValueError(f"database_url must start with {SQLITE_SCHEME} or {POSTGRES_SCHEMES[0]}")
