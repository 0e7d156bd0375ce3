"""A key store that will not open says so in one line: where (never with its password), what is
wrong and what to do. Real PostgreSQL and SQLite for every failure they can produce here; the
driver's own exceptions for the ones this machine cannot (a wrong password under trust
authentication, an unknown host without asking DNS)."""

from __future__ import annotations

import socket
import sqlite3

import asyncpg
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from skywarden.server.auth.backends import StoreOpenError, open_checked, open_store
from skywarden.server.auth.open_failures import explain_postgres, explain_sqlite
from skywarden.server.auth.store_urls import display_url, url_passwords
from skywarden.server.settings import SettingsError, hide_url_passwords, load_settings
from tests.support.services import fresh_postgres_database, postgres_role_without_rights, postgres_url

PASSWORD = "hunter2-never-shown"


def free_port() -> int:
    """A port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def open_error(url: str, migrate: bool = True) -> str:
    with pytest.raises(StoreOpenError) as info:
        await open_checked(open_store(url), migrate=migrate)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"cannot open the key store {display_url(url)}: ")
    for password in url_passwords(url) or [PASSWORD]:
        assert password not in message
    return message


@pytest.fixture
async def postgres_reachable():
    async with fresh_postgres_database():  # skips (or fails in CI) when there is no PostgreSQL
        yield


@pytest.mark.parametrize("migrate", [True, False])
async def test_a_database_that_does_not_exist(postgres_reachable, migrate):
    message = await open_error(postgres_url("skywarden_no_such_db", password=PASSWORD), migrate)
    assert 'database "skywarden_no_such_db" does not exist' in message
    assert "createdb -h 127.0.0.1 -p 5432 -O " in message and message.endswith(" skywarden_no_such_db")


async def test_a_role_that_does_not_exist(postgres_reachable):
    message = await open_error(postgres_url("postgres", "skywarden_no_such_role", PASSWORD))
    assert 'role "skywarden_no_such_role" does not exist' in message
    assert "createuser -h 127.0.0.1 -p 5432 --pwprompt skywarden_no_such_role" in message


async def test_a_role_that_may_not_create_the_tables():
    async with postgres_role_without_rights() as url:
        message = await open_error(url)
    assert "permission denied" in message and "OWNER TO skywarden_test_role_" in message
    assert "role-password-1" not in message


async def test_nothing_listening():
    port = free_port()
    message = await open_error(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/skywarden")
    assert f"nothing accepts connections at 127.0.0.1:{port}" in message


async def test_a_url_the_driver_refuses(postgres_reachable):
    message = await open_error(f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/postgres?sslmode=sometimes")
    assert "the URL is not usable" in message and "sslmode" in message


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
async def test_a_schema_newer_than_this_skywarden(tmp_path, kind):
    async with fresh_postgres_database() as pg:
        url = f"sqlite:///{tmp_path / 'keys.db'}" if kind == "sqlite" else pg
        store = open_store(url)
        await open_checked(store)
        if kind == "sqlite":
            await store.db.execute("INSERT INTO schema_version VALUES (99)")
            await store.db.commit()
        else:
            await store.pool.execute("INSERT INTO schema_version VALUES (99)")
        await store.close()
        message = await open_error(url)
    assert "schema version 99 is newer than this Skywarden's" in message


def test_failures_this_machine_cannot_produce():
    dsn = f"postgresql://skywarden:{PASSWORD}@db.internal:6543/keys"
    wrong = asyncpg.InvalidPasswordError('password authentication failed for user "skywarden"')
    assert "correct the password in the URL" in explain_postgres(dsn, wrong, 5)
    assert "db.internal is not known" in explain_postgres(dsn, socket.gaierror(-2, "Name or service not known"), 5)
    assert "no answer from db.internal:6543 within 5 s" in explain_postgres(dsn, TimeoutError(), 5)
    hba = asyncpg.InvalidAuthorizationSpecificationError('no pg_hba.conf entry for host "10.0.0.9"')
    assert "pg_hba.conf" in explain_postgres(dsn, hba, 5)
    quoting = ValueError(f"invalid literal for int() with base 10: '{PASSWORD}'")  # a parser quoting the URL
    assert PASSWORD not in explain_postgres(dsn, quoting, 5)
    echoing = RuntimeError(f"something said {PASSWORD}")
    assert PASSWORD not in explain_postgres(dsn, echoing, 5)
    assert "cannot create the folder /x" in explain_sqlite("/x/keys.db", PermissionError(13, "Permission denied"))
    readonly = sqlite3.OperationalError("attempt to write a readonly database")
    readonly.sqlite_errorname = "SQLITE_READONLY"
    assert "cannot write /nowhere/keys.db" in explain_sqlite("/nowhere/keys.db", readonly)


@pytest.mark.parametrize(
    ("place", "expected"),
    [
        ("folder", "is a folder, not a database file"),
        ("text", "is not a SQLite database"),
        ("under-a-file", "cannot create the folder"),
        ("/proc/skywarden-keys.db", "cannot write /proc/skywarden-keys.db"),
        ("/proc/skywarden/keys.db", "cannot create the folder /proc/skywarden"),
    ],
)
async def test_sqlite_places_that_cannot_hold_a_store(tmp_path, place, expected):
    (tmp_path / "folder").mkdir()
    (tmp_path / "text").write_text("not a database, just words\n" * 10)
    (tmp_path / "file").write_text("")
    path = {"under-a-file": tmp_path / "file" / "keys.db"}.get(place) or (
        place if place.startswith("/") else tmp_path / place
    )
    message = await open_error(f"sqlite:///{path}")
    assert expected in message
    assert (tmp_path / "text").read_text().startswith("not a database")  # nothing was written into it


async def test_the_server_does_not_start_on_a_store_that_will_not_open(make_settings):
    """The app's start-up opens the store through the same door."""
    from aiohttp.test_utils import TestServer

    from skywarden.server.app import create_app

    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{free_port()}/x"
    settings = make_settings(database_url=url, secret="s" * 40)
    with pytest.raises(StoreOpenError, match="nothing accepts connections"):
        async with TestServer(create_app(settings)):
            pass


hosts = st.sampled_from(["127.0.0.1", "db.internal", "[::1]", "db.internal:6543", "127.0.0.1:5432"])
passwords = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="%"), min_size=6)


@given(password=passwords, host=hosts, in_query=st.booleans())
def test_no_password_is_ever_shown(password, host, in_query):
    """Whatever the password holds (@ / ? # : & =), neither the store's name in messages nor a
    settings error shows it."""
    url = (
        f"postgresql://skywarden@{host}/keys?sslmode=disable&password={password}"
        if in_query
        else f"postgresql://skywarden:{password}@{host}/keys"
    )
    assume(password not in f"postgresql://skywarden@{host}/keys?sslmode=disable&password=")
    assume("&" not in password or not in_query)  # in a query, & ends the value: it must be written %26
    assert password not in display_url(url)
    assert password not in hide_url_passwords(repr(url))
    assert password not in explain_postgres(url, RuntimeError(f"echo {password}"), 5)


def test_a_settings_error_never_shows_a_url_password():
    for url in (f"mysql://u:{PASSWORD}@h/db", f"postgresql://u:{PASSWORD}@h:port/db", f"redis://:{PASSWORD}@h"):
        with pytest.raises(SettingsError) as info:
            load_settings(cli={"database_url": url}, environ={})
        assert PASSWORD not in str(info.value)
    settings = load_settings(cli={"database_url": f"postgresql://u:{PASSWORD}@127.0.0.1/db"}, environ={})
    assert PASSWORD not in repr(settings)
