"""Every command that opens a key store, on a store that will not open: one line on stderr, a
non-zero exit, no traceback, no password. Against the real PostgreSQL (a database and a role
that do not exist) and SQLite (a folder where the file should be)."""

from __future__ import annotations

import asyncio

import pytest

from skywarden.server.auth.backends import open_checked, open_store
from tests.support.cli_runs import run_skywarden
from tests.support.services import postgres_url, require_postgres

pytestmark = pytest.mark.slow  # subprocesses or Node tools: run by CI and ./scripts/test, not -m 'not slow'

PASSWORD = "pw-that-must-never-show-7f3a"
SERVER_ENV = {"SKYWARDEN_SECRET": "s" * 40, "SKYWARDEN_ADMIN_TOKEN": "a" * 40}


def commands(url: str, tmp_path) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Each command that opens the store at ``url``, with what it needs besides (a secret, an audit file)."""
    secret = tmp_path / "secret"
    secret.write_text("s" * 40)
    source = f"sqlite:///{tmp_path / 'source.db'}"
    common = ["--database-url", url, "--data-dir", str(tmp_path / "data"), "--audit-log-file", str(tmp_path / "a.log")]
    store_flags = [*common, "--secret-file", str(secret)]
    return {
        "keys create": (["keys", "create", "--name", "x", *store_flags], {}),
        "keys list": (["keys", "list", *common], {}),
        "keys show": (["keys", "show", "key_x", *common], {}),
        "keys revoke": (["keys", "revoke", "key_x", *common], {}),
        "keys rotate": (["keys", "rotate", "key_x", *store_flags], {}),
        "db status": (["db", "status", *common], {}),
        "db upgrade": (["db", "upgrade", *common], {}),
        "db copy --from": (["db", "copy", "--from", url, "--to", f"sqlite:///{tmp_path / 't.db'}", *common[2:]], {}),
        "db copy --to": (["db", "copy", "--from", source, "--to", url, *common[2:]], {}),
        "serve": (["serve", "--port", "0", *common], SERVER_ENV),
        "serve --workers 2": (["serve", "--port", "0", "--workers", "2", *common], SERVER_ENV),
    }


async def make_source(tmp_path) -> None:
    store = open_store(f"sqlite:///{tmp_path / 'source.db'}")
    await open_checked(store)
    await store.close()


COMMANDS = [
    "keys create",
    "keys list",
    "keys show",
    "keys revoke",
    "keys rotate",
    "db status",
    "db upgrade",
    "db copy --from",
    "db copy --to",
    "serve",
    "serve --workers 2",
]


@pytest.fixture
async def postgres(tmp_path):
    await require_postgres()
    await make_source(tmp_path)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize(
    ("url", "named"),
    [
        (postgres_url("skywarden_no_such_db", password=PASSWORD), 'database "skywarden_no_such_db" does not exist'),
        (postgres_url("postgres", "skywarden_no_such_role", PASSWORD), 'role "skywarden_no_such_role" does not exist'),
    ],
    ids=["no-database", "no-role"],
)
async def test_postgres_that_is_not_there(postgres, tmp_path, command, url, named):
    args, env = commands(url, tmp_path)[command]
    run = await asyncio.to_thread(run_skywarden, *args, env=env)
    line = run.one_line_refusal()
    assert named in line and ("createdb" in line or "createuser" in line), line
    assert PASSWORD not in run.err + run.out


@pytest.mark.parametrize("command", COMMANDS)
async def test_sqlite_where_a_folder_is(tmp_path, command):
    await make_source(tmp_path)
    folder = tmp_path / "a-folder"
    folder.mkdir()
    args, env = commands(f"sqlite:///{folder}", tmp_path)[command]
    run = await asyncio.to_thread(run_skywarden, *args, env=env)
    assert f"{folder} is a folder, not a database file" in run.one_line_refusal()


def test_admin_token_rotate_beside_a_shared_store_refuses(tmp_path):
    """It would write a token no server sharing the store reads (they read admin_token_file)."""
    url = postgres_url("skywarden_no_such_db", password=PASSWORD)
    run = run_skywarden("admin-token", "rotate", "--database-url", url, "--data-dir", str(tmp_path))
    assert "admin_token_file" in run.one_line_refusal() and PASSWORD not in run.err
    assert not (tmp_path / "admin-token.sha256").exists()
