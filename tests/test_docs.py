"""The README stays true: every setting documented, the two Quick start commands, CI runs the test command."""

from __future__ import annotations

from pathlib import Path

from skywarden.server.auth.keys import KEY_PATTERN, generate_key
from skywarden.server.settings import env_name, markdown_table, setting_fields

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for f in setting_fields():
        assert f"`{env_name(f.name)}`" in readme, f.name
    assert markdown_table() in readme, "regenerate the table: ./scripts/update-readme-settings"


def test_quick_start_commands_exist_and_ci_calls_the_test_command():
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    assert "./scripts/serve" in quick_start and "./scripts/test" in quick_start
    assert "./scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_published_key_regex_matches_real_keys():
    import re

    docs = (ROOT / "docs" / "security.md").read_text()
    published = re.search(r"```\n(\\bskw_[^\n]+)\n```", docs).group(1)
    for env in ("live", "test", "dev", "admin"):
        assert re.fullmatch(published, generate_key(env))
    assert published == rf"\b{KEY_PATTERN}\b"


def test_every_readme_command_runs_as_written():
    """Commands live in the virtualenvs the Quick start makes; none is assumed on PATH."""
    import re

    readme = (ROOT / "README.md").read_text()
    bare = re.findall(r"(?:`|^|\n)(?:\$ )?(skywarden-client|skywarden|ruff)\s", readme)
    assert bare == [], "prefix with .venv/bin/ or .venv-test/bin/"


def test_the_upstream_metric_label_is_documented_as_an_identifier():
    assert "`nws`" in (ROOT / "docs" / "operations.md").read_text()
