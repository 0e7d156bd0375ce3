"""Why a key store would not open, and what to do about it: one line per failure, never a password.

``backends.open_checked`` puts the store's location in front of these reasons.
"""

from __future__ import annotations

import getpass
import os
import socket
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from skywarden.server.auth.store_urls import url_passwords
from skywarden.server.settings import POSTGRES_URL_SHAPE

DEFAULT_PORT = "5432"


@dataclass(frozen=True)
class PostgresTarget:
    """Host, port, role and database a PostgreSQL URL names, with libpq's defaults for what it leaves out."""

    host: str
    port: str
    role: str
    database: str

    @classmethod
    def of(cls, dsn: str) -> PostgresTarget:
        rest = dsn.partition("://")[2]
        userinfo, at, tail = rest.rpartition("@")
        location, _, query = tail.partition("?")
        hostport, _, database = location.partition("/")
        params = dict(p.partition("=")[::2] for p in query.split("&") if p)
        if hostport.startswith("["):
            host, _, port = hostport[1:].partition("]")
            port = port.removeprefix(":")
        else:
            host, _, port = hostport.partition(":")
        role = userinfo.split(":", 1)[0] if at else ""
        role = role or params.get("user") or os.environ.get("PGUSER") or getpass.getuser()
        return cls(
            host=host or params.get("host") or os.environ.get("PGHOST") or "localhost",
            port=port or params.get("port") or os.environ.get("PGPORT") or DEFAULT_PORT,
            role=role,
            database=database or params.get("dbname") or os.environ.get("PGDATABASE") or role,
        )

    def tool_args(self) -> str:
        return f"-h {self.host} -p {self.port}"


def explain_postgres(dsn: str, exc: BaseException, timeout: float) -> str:
    """Why PostgreSQL refused or could not be reached, and the command or change that fixes it."""
    reason = _postgres_reason(PostgresTarget.of(dsn), exc, timeout)
    for password in url_passwords(dsn):
        reason = reason.replace(password, "***")
    return reason


def _postgres_reason(t: PostgresTarget, exc: BaseException, timeout: float) -> str:
    import asyncpg

    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    superuser = "as a PostgreSQL superuser"
    if isinstance(exc, asyncpg.InvalidCatalogNameError):
        return f"{message}; create it, {superuser}: createdb {t.tool_args()} -O {t.role} {t.database}"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError) and "does not exist" in message:
        return (
            f"{message}; create it, {superuser}: createuser {t.tool_args()} --pwprompt {t.role} "
            f"(and give it the database: createdb {t.tool_args()} -O {t.role} {t.database})"
        )
    if isinstance(exc, asyncpg.InvalidPasswordError):
        return f"{message}; correct the password in the URL, or set the role's: ALTER ROLE {t.role} PASSWORD '...'"
    if isinstance(exc, asyncpg.InvalidAuthorizationSpecificationError):
        return f"{message}; let role {t.role} connect from this host (pg_hba.conf), or use another role"
    if isinstance(exc, asyncpg.InsufficientPrivilegeError):
        return (
            f"{message}; role {t.role} may not create Skywarden's tables: make it the database's owner "
            f"({superuser}: ALTER DATABASE {t.database} OWNER TO {t.role})"
        )
    if isinstance(exc, asyncpg.PostgresError):
        return f"{message} (SQLSTATE {exc.sqlstate})"
    if isinstance(exc, asyncpg.ClientConfigurationError):
        return f"the URL is not usable: {message}"
    if isinstance(exc, ConnectionRefusedError):
        return f"nothing accepts connections at {t.host}:{t.port}; start PostgreSQL there, or correct the host and port"
    if isinstance(exc, socket.gaierror):
        return f"the host {t.host} is not known; correct the host in the URL"
    if isinstance(exc, TimeoutError):
        return f"no answer from {t.host}:{t.port} within {timeout:g} s; check the host, the port and any firewall"
    if isinstance(exc, OSError):
        return f"cannot connect to {t.host}:{t.port} ({exc.strerror or message}); check the host and port"
    if isinstance(exc, (ValueError, TypeError, OverflowError)):  # the driver's URL parser: its text may quote it
        return f"the URL does not parse; it must look like {POSTGRES_URL_SHAPE}"
    return f"{type(exc).__name__}: {message}"


def explain_sqlite(path: str, exc: BaseException) -> str:
    """Why the SQLite file could not be created or opened, and what to do."""
    where = "set data_dir or database_url to a folder this user can write"
    if isinstance(exc, OSError):  # making its folder
        return f"cannot create the folder {Path(path).parent} ({exc.strerror or exc}); {where}"
    if isinstance(exc, sqlite3.Error):
        name = getattr(exc, "sqlite_errorname", "")
        if Path(path).is_dir():
            return f"{path} is a folder, not a database file; {where}"
        if name == "SQLITE_NOTADB":
            return f"{path} is not a SQLite database ({exc}); point database_url at Skywarden's database file"
        if name in ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_IOERR"):
            return f"cannot write {path} ({exc}); this user must be able to write the file and its folder, or {where}"
        return f"{exc} ({name or type(exc).__name__})"
    return f"{type(exc).__name__}: {exc}"
