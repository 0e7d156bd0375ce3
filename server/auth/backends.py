"""Pick the key store implementation from ``database_url``, and open it with one clear failure.

Every opener (the server's start-up, the supervisor of ``--workers``, each CLI command) goes
through ``open_checked``: whatever stops a store from opening (no database, no role, a wrong
password, nothing listening, a bad URL, a folder that cannot be written, a file that is not a
database) becomes a ``StoreOpenError`` whose message is one line naming the store (never its
password), what is wrong and what to do.
"""

from __future__ import annotations

import contextlib

from skywarden.server.auth.records import SchemaTooNew
from skywarden.server.auth.store import KeyStore
from skywarden.server.auth.store_urls import POSTGRES_SCHEMES, SQLITE_SCHEME, display_url

__all__ = ["POSTGRES_SCHEMES", "SQLITE_SCHEME", "StoreOpenError", "display_url", "open_checked", "open_store"]


class StoreOpenError(Exception):
    """The key store cannot be opened; the message is one line: where, what, and what to do."""


def open_store(database_url: str) -> KeyStore:
    """The store for ``database_url``; drivers are imported only for the scheme in use."""
    if database_url.startswith(SQLITE_SCHEME):
        from skywarden.server.auth.sqlite_store import SQLiteKeyStore

        return SQLiteKeyStore(database_url.removeprefix(SQLITE_SCHEME))
    if database_url.startswith(POSTGRES_SCHEMES):
        from skywarden.server.auth.postgres_store import PostgresKeyStore

        return PostgresKeyStore(database_url)
    raise ValueError(f"database_url must start with {SQLITE_SCHEME} or {POSTGRES_SCHEMES[0]}")


async def open_checked(store: KeyStore, migrate: bool = True) -> None:
    """``store.open``, with any failure turned into a one-line ``StoreOpenError``."""
    try:
        await store.open(migrate=migrate)
    except Exception as exc:
        with contextlib.suppress(Exception):
            await store.close()
        if isinstance(exc, SchemaTooNew):
            reason = f"{exc}; run a Skywarden as new as the one that upgraded it"
        else:
            reason = store.explain_open_failure(exc)
        raise StoreOpenError(f"cannot open the key store {store.location}: {reason}") from None
