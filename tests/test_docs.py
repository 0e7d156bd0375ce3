"""The README stays true: every setting documented, the two Quick start commands, CI runs the test command."""

from __future__ import annotations

from pathlib import Path

from skywarden.server.cli.reference import built_in_plugins, settings_reference
from skywarden.server.keys import KEY_PATTERN, generate_key
from skywarden.server.settings import env_name, setting_fields

ROOT = Path(__file__).resolve().parent.parent


def test_readme_documents_every_setting():
    readme = (ROOT / "README.md").read_text()
    for f in setting_fields():
        assert f"`{env_name(f.name)}`" in readme, f.name
    for plugin in built_in_plugins():
        for setting in plugin.settings:
            assert f"`{env_name(setting.name)}`" in readme, setting.name
    assert settings_reference() in readme, "regenerate the reference: ./scripts/update-readme-settings"


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


def test_the_documented_secret_files_are_accepted_and_what_is_checked_is_what_the_docs_say(tmp_path):
    """Each generation command of deployment.md's "Secrets from files", run as written (into a
    scratch folder), makes a file the server takes; the length the docs name is the one refused."""
    import re
    import subprocess

    import pytest

    from skywarden.server.auth.credentials import CredentialError, load_metrics_credential, load_server_secret
    from skywarden.server.settings import MIN_SECRET_LENGTH

    docs = (ROOT / "docs" / "deployment.md").read_text()
    section = docs.split("## Secrets from files\n", 1)[1].split("\n## ", 1)[0]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.DOTALL).group(1)
    made = re.findall(r"^(python3 -c .*) > (/etc/skywarden/[a-z-]+)$", block, flags=re.MULTILINE)
    assert {Path(path).name for _, path in made} == {"secret", "admin-token", "metrics-token"}
    for command, path in made:
        target = tmp_path / Path(path).name
        with target.open("w") as out:
            subprocess.run(command, shell=True, stdout=out, check=True)
        assert load_server_secret("", str(target), str(tmp_path / "data"))
        assert load_metrics_credential("", str(target)) is not None
    assert f"at least {MIN_SECRET_LENGTH} characters" in " ".join(section.split())
    short = tmp_path / "short"
    short.write_text("x" * (MIN_SECRET_LENGTH - 1) + "\n")
    for load in (
        lambda: load_server_secret("", str(short), str(tmp_path)),
        lambda: load_metrics_credential("", str(short)),
    ):
        with pytest.raises(CredentialError):
            load()
