"""``skywarden`` with plugins that have settings and hooks: their flags in ``serve --help``, bad
values refused in one line, old names warned about once, a failed start-up hook one line."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys

import pytest

import skywarden.server.plugins.registry as registry_module
from skywarden.server.cli.main import build_parser, main, settings_from_args
from skywarden.server.plugins.settings import declared_settings
from tests.support.logs import SECRETS
from tests.support.plugin_settings_samples import RUNNER, registry_for
from tests.support.server_process import SUBPROCESS_LINES, free_port

API_KEY = "acme-cli-" + "k" * 24
SECRETS.add(API_KEY)


@pytest.fixture
def installed(monkeypatch):
    """The installed plugins, as ``skywarden`` discovers them: registry_for(kind)."""

    def install(kind: str = "weathery") -> None:
        monkeypatch.setattr(registry_module, "discover_tools", lambda paths=None: registry_for(kind))

    return install


def serve_help(capsys) -> str:
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_serve_help_lists_each_plugins_settings_in_a_group(installed, capsys, monkeypatch):
    installed()
    monkeypatch.setenv("COLUMNS", "250")  # no help text broken inside a word
    out = serve_help(capsys)
    acme = " ".join(out.split("plugin acme (acme-tools 1.2):", 1)[1].split("plugin weathery", 1)[0].split())
    for line in (
        "--acme-timeout ACME_TIMEOUT seconds an Acme call may take (number); "
        "env SKYWARDEN_ACME_TIMEOUT (default: 10.0)",
        "--acme-api-key ACME_API_KEY Acme API key (secret; or --acme-api-key-file); "
        "env SKYWARDEN_ACME_API_KEY (required)",
        "--acme-api-key-file PATH file holding acme_api_key; env SKYWARDEN_ACME_API_KEY_FILE",
        "--acme-regions ACME_REGIONS Acme regions to ask (comma-separated list); "
        "env SKYWARDEN_ACME_REGIONS (default: us)",
    ):
        assert line in acme
    weathery = " ".join(out.split("plugin weathery (weathery 0.3):", 1)[1].split())
    # a secret's default is never shown
    assert (
        "--weathery-token WEATHERY_TOKEN Weathery token (secret; empty = none; or --weathery-token-file); "
        "env SKYWARDEN_WEATHERY_TOKEN --weathery-token-file PATH"
    ) in weathery
    assert "oldwx" not in out  # old names are accepted, not listed


def test_a_bad_plugin_value_stops_with_one_line_naming_it(installed, capsys, tmp_path):
    installed()
    code = main(["serve", "--data-dir", str(tmp_path), "--acme-api-key", API_KEY, "--acme-timeout", "soon"])
    err = capsys.readouterr().err
    assert (
        code == 2 and err == "skywarden: invalid setting acme_timeout (--acme-timeout): must be a number; got 'soon'\n"
    )
    code = main(
        ["serve", "--data-dir", str(tmp_path), "--acme-api-key", API_KEY, "--oldwx-base-url", "ftp://x.example"]
    )
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("skywarden: invalid setting weathery_base_url (--oldwx-base-url): must be an")
    code = main(["serve", "--data-dir", str(tmp_path), "--acme-api-key", "  "])
    err = capsys.readouterr().err
    assert code == 2 and err == "skywarden: invalid setting acme_api_key (--acme-api-key): must not be empty; got ***\n"


def test_a_missing_required_setting_stops_with_one_line(installed, capsys, tmp_path, monkeypatch):
    installed()
    monkeypatch.delenv("SKYWARDEN_ACME_API_KEY", raising=False)
    assert main(["serve", "--data-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err == (
        "skywarden: missing setting acme_api_key: set --acme-api-key, SKYWARDEN_ACME_API_KEY, acme_api_key or "
        "acme_api_key_file\n"
    )


def test_commands_that_run_no_tool_accept_plugin_names_without_checking_them(installed, tmp_path):
    installed()
    config = tmp_path / "skywarden.toml"
    config.write_text("acme_timeout = 'soon'\n[tool_settings.acme]\nretries = 3\n")
    plugins = declared_settings(registry_for("weathery").plugins)
    args = build_parser(plugins).parse_args(["keys", "list", "--config", str(config)])
    assert settings_from_args(args, plugins, check_plugins=False).plugin_settings == {}
    config.write_text("acme_colour = 'blue'\n")  # still, a name no plugin has is refused
    with pytest.raises(Exception, match=r"acme_colour \(config file\): unknown setting"):
        settings_from_args(args, plugins, check_plugins=False)


def test_the_settings_reference_has_a_table_per_built_in_plugin_with_settings():
    from skywarden.server.cli.reference import settings_reference
    from skywarden.server.settings import PluginSettings, plugin_markdown_table

    reference = settings_reference()
    assert reference.startswith("| Setting | Environment | Default | Meaning |")
    (acme, weathery) = declared_settings(registry_for("weathery").plugins)
    table = plugin_markdown_table(acme)
    assert (
        "| `acme_api_key` | `SKYWARDEN_ACME_API_KEY` | (required) | Acme API key (secret; or `acme_api_key_file`"
        in table
    )
    assert "| `acme_timeout` | `SKYWARDEN_ACME_TIMEOUT` | `10.0` | seconds an Acme call may take (number) |" in table
    assert "| `weathery_base_url` | `SKYWARDEN_WEATHERY_BASE_URL` | `https://wx.example` |" in plugin_markdown_table(
        weathery
    )
    assert "formerly `oldwx_base_url`" in plugin_markdown_table(weathery)
    assert isinstance(acme, PluginSettings)


# -- a real process ----------------------------------------------------------------------------


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SKYWARDEN_")}
    env.update({"SKYWARDEN_LOG_FORMAT": "json", "SKYWARDEN_PORT": str(free_port())}, **extra)
    return env


@pytest.mark.slow
def test_a_failing_start_up_hook_exits_1_with_one_line(tmp_path):
    env = _env(SKYWARDEN_DATA_DIR=str(tmp_path), SKYWARDEN_ACME_API_KEY=API_KEY)
    result = subprocess.run(
        [sys.executable, "-c", RUNNER, "failing", "serve"], capture_output=True, text=True, env=env, timeout=60
    )
    SUBPROCESS_LINES.extend(result.stdout.splitlines() + result.stderr.splitlines())
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "skywarden: plugin acme: start-up hook connect failed: ConnectionError: connection refused by db.acme.test\n"
    )
    events = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert "skywarden started" not in {e["event"] for e in events}
    (failed,) = [e for e in events if e["event"] == "plugin start-up hook failed"]
    assert failed["plugin"] == "acme" and failed["hook"] == "connect"


@pytest.mark.slow
async def test_an_old_setting_name_is_warned_about_once_at_start_up(tmp_path):
    env = _env(
        SKYWARDEN_DATA_DIR=str(tmp_path),
        SKYWARDEN_ACME_API_KEY=API_KEY,
        SKYWARDEN_OLDWX_BASE_URL="https://old.example",
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUNNER, "weathery", "serve", env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    events = []
    try:
        assert proc.stdout is not None
        async for line in proc.stdout:
            text = line.decode().rstrip("\n")
            SUBPROCESS_LINES.append(text)
            if text.startswith("{"):
                events.append(json.loads(text))
                if events[-1]["event"] == "skywarden started":
                    break
    finally:
        proc.terminate()
        await proc.wait()
    warned = [e for e in events if e["event"] == "deprecated setting"]
    assert len(warned) == 1 and warned[0]["level"] == "warning"
    assert warned[0]["setting"] == "oldwx_base_url" and warned[0]["replacement"] == "weathery_base_url"
    assert warned[0]["source"] == "SKYWARDEN_OLDWX_BASE_URL" and warned[0]["ignored"] is False
    assert events[-1]["event"] == "skywarden started"
