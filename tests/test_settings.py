from __future__ import annotations

import pytest

from skywarden.server.settings import SettingsError, load_settings


def test_defaults():
    s = load_settings(environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, "./.skywarden")
    assert s.nws_base_url == "https://api.weather.gov"
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("skywarden.db")


def test_precedence_cli_over_env_over_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[skywarden]\nport = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    env = {"SKYWARDEN_PORT": "9002", "SKYWARDEN_HOST": "127.0.0.2"}
    s = load_settings(cli={"port": "9003"}, environ=env, config_path=config)
    assert s.port == 9003
    assert s.host == "127.0.0.2"
    assert s.log_level == "debug"


def test_config_file_from_environment(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("port = 9100\ncors_origins = ['https://a.example']\n")
    s = load_settings(environ={"SKYWARDEN_CONFIG": str(config)})
    assert s.port == 9100 and s.cors_origins == ("https://a.example",)


@pytest.mark.parametrize(
    ("env", "names"),
    [
        ({"SKYWARDEN_PORT": "eighty"}, "SKYWARDEN_PORT"),
        ({"SKYWARDEN_PORT": "70000"}, "SKYWARDEN_PORT"),
        ({"SKYWARDEN_NWS_BASE_URL": "ftp://x"}, "SKYWARDEN_NWS_BASE_URL"),
        ({"SKYWARDEN_NWS_BASE_URL": "https://x/?q=1"}, "SKYWARDEN_NWS_BASE_URL"),
        ({"SKYWARDEN_UPSTREAM_TIMEOUT": "-1"}, "SKYWARDEN_UPSTREAM_TIMEOUT"),
        ({"SKYWARDEN_UPSTREAM_TIMEOUT": "nan"}, "SKYWARDEN_UPSTREAM_TIMEOUT"),
        ({"SKYWARDEN_LOG_LEVEL": "loud"}, "SKYWARDEN_LOG_LEVEL"),
        ({"SKYWARDEN_CORS_ORIGINS": "*"}, "SKYWARDEN_CORS_ORIGINS"),
        ({"SKYWARDEN_CORS_ORIGINS": "example.com"}, "SKYWARDEN_CORS_ORIGINS"),
        ({"SKYWARDEN_DATABASE_URL": "mysql://x"}, "SKYWARDEN_DATABASE_URL"),
        ({"SKYWARDEN_DATABASE_URL": "postgresql:///x"}, "SKYWARDEN_DATABASE_URL"),  # no host
        ({"SKYWARDEN_DATABASE_URL": "sqlite://relative.db"}, "SKYWARDEN_DATABASE_URL"),
        ({"SKYWARDEN_WORKERS": "0"}, "SKYWARDEN_WORKERS"),
        ({"SKYWARDEN_WORKERS": "65"}, "SKYWARDEN_WORKERS"),
        ({"SKYWARDEN_WORKERS": "two"}, "SKYWARDEN_WORKERS"),
        ({"SKYWARDEN_EVENT_LOOP": "trio"}, "SKYWARDEN_EVENT_LOOP"),
        ({"SKYWARDEN_INSTANCE_NAME": "api 1"}, "SKYWARDEN_INSTANCE_NAME"),
        ({"SKYWARDEN_INSTANCE_NAME": "x" * 65}, "SKYWARDEN_INSTANCE_NAME"),
        ({"SKYWARDEN_INSTANCE_NAME": "a\nb"}, "SKYWARDEN_INSTANCE_NAME"),
        ({"SKYWARDEN_REDIS_URL": "http://127.0.0.1:6379"}, "SKYWARDEN_REDIS_URL"),
        ({"SKYWARDEN_REDIS_KEY_PREFIX": "a b"}, "SKYWARDEN_REDIS_KEY_PREFIX"),
        ({"SKYWARDEN_RATE_LIMIT_WHEN_UNAVAILABLE": "sometimes"}, "SKYWARDEN_RATE_LIMIT_WHEN_UNAVAILABLE"),
        ({"SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES": "-1"}, "SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES"),
        ({"SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES": "100001"}, "SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES"),
        ({"SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES": "many"}, "SKYWARDEN_TOOL_RESULT_CACHE_ENTRIES"),
    ],
)
def test_invalid_values_name_the_setting(env, names):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=env)
    message = str(info.value)
    assert names in message and "\n" not in message


def test_invalid_cli_flag_is_named():
    with pytest.raises(SettingsError, match="--port"):
        load_settings(cli={"port": "x"}, environ={})


def test_bad_config_files(tmp_path):
    with pytest.raises(SettingsError, match="not found"):
        load_settings(environ={}, config_path=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("port = = 1")
    with pytest.raises(SettingsError, match="not valid TOML"):
        load_settings(environ={}, config_path=bad)
    unknown = tmp_path / "unknown.toml"
    unknown.write_text("colour = 'blue'")
    with pytest.raises(SettingsError, match=r"colour.*unknown setting"):
        load_settings(environ={}, config_path=unknown)
    typed = tmp_path / "typed.toml"
    typed.write_text("port = true")
    with pytest.raises(SettingsError, match="port"):
        load_settings(environ={}, config_path=typed)


def test_secret_values_are_not_echoed():
    with pytest.raises(SettingsError) as info:
        load_settings(environ={}, cli={"admin_token": 12345})
    assert "12345" not in str(info.value)
    token = "super-secret-token-" + "x" * 20
    s = load_settings(environ={"SKYWARDEN_ADMIN_TOKEN": token})
    assert token not in repr(s)


@pytest.mark.parametrize("name", ["admin_token", "metrics_token", "secret"])
def test_a_short_inline_secret_is_refused_naming_its_source(name):
    with pytest.raises(SettingsError) as info:
        load_settings(environ={f"SKYWARDEN_{name.upper()}": "short-one"})
    message = str(info.value)
    assert f"SKYWARDEN_{name.upper()}" in message and "at least 32" in message and "short-one" not in message


def test_settings_survive_pickling_for_worker_processes():
    import pickle

    settings = load_settings(environ={"SKYWARDEN_TOOL_SETTINGS": '{"acme": {"token": "x"}}', "SKYWARDEN_WORKERS": "3"})
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and again.tool_settings["acme"]["token"] == "x"
    with pytest.raises(TypeError):
        again.tool_settings["acme"]["token"] = "y"  # still read-only
