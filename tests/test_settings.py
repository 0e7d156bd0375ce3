from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from skywarden.server.settings import SettingsError, load_settings


def test_defaults():
    s = load_settings(environ={})
    assert (s.host, s.port, s.data_dir) == ("127.0.0.1", 8080, "./.skywarden")
    assert s.resolved_database_url.startswith("sqlite:///") and s.resolved_database_url.endswith("skywarden.db")


def test_precedence_cli_over_env_over_file(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text('[skywarden]\nport = 9001\nhost = "0.0.0.0"\nlog_level = "debug"\n')
    env = {"SKYWARDEN_PORT": "9002", "SKYWARDEN_HOST": "127.0.0.2"}
    s = load_settings(cli={"port": "9003"}, environ=env, config_path=config)
    assert s.port == 9003
    assert s.host == "127.0.0.2"
    assert s.log_level == "debug"


def test_settings_at_the_top_level_count_beside_a_skywarden_table(tmp_path):
    """A ``[skywarden.upstreams.x]`` table makes a ``[skywarden]`` table: the settings written
    above it at the top level still count (they were dropped without a word)."""
    config = tmp_path / "c.toml"
    config.write_text(
        'port = 9004\n\n[skywarden]\nhost = "127.0.0.3"\n\n[skywarden.upstreams.calc]\ncommand = "calc-mcp"\n'
    )
    s = load_settings(environ={}, config_path=config)
    assert (s.port, s.host, [u.name for u in s.upstreams]) == (9004, "127.0.0.3", ["calc"])


def test_a_setting_both_at_the_top_level_and_under_skywarden_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("port = 9005\n[skywarden]\nport = 9006\n")
    with pytest.raises(SettingsError, match=r"^invalid setting port \(config file\): set both at the top level and in"):
        load_settings(environ={}, config_path=config)
    config.write_text('[upstreams.a]\ncommand = "a-mcp"\n[skywarden.upstreams.a]\ncommand = "b-mcp"\n')
    with pytest.raises(SettingsError, match=r"^invalid setting upstreams\.a \(config file\): set both"):
        load_settings(environ={}, config_path=config)


def test_upstream_tables_in_both_places_are_merged_and_other_tools_keys_are_left_alone(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[other_tool]\nmode = "x"\n[upstreams.a]\ncommand = "a-mcp"\n[skywarden.upstreams.b]\ncommand = "b-mcp"\n'
    )
    s = load_settings(environ={}, config_path=config)
    assert sorted(u.name for u in s.upstreams) == ["a", "b"]


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (b"port = inf\n", "invalid setting port (config file): must be an integer from 0 to 65535"),
        (b"\xff\xfe = 1\n", "is not UTF-8 text"),
        (b"x = " + b"[" * 3000 + b"]" * 3000 + b"\n", "nests arrays or tables too deep"),
    ],
)
def test_a_config_file_that_cannot_be_read_is_one_line_naming_why(tmp_path, content, says):
    config = tmp_path / "c.toml"
    config.write_bytes(content)
    with pytest.raises(SettingsError, match=re.escape(says)):
        load_settings(environ={}, config_path=config)


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
        ({"SKYWARDEN_MAX_STREAMS_PER_KEY": "0"}, "SKYWARDEN_MAX_STREAMS_PER_KEY"),
        ({"SKYWARDEN_MAX_STREAMS_PER_KEY": "10001"}, "SKYWARDEN_MAX_STREAMS_PER_KEY"),
        ({"SKYWARDEN_MAX_STREAMS_PER_KEY": "8.5"}, "SKYWARDEN_MAX_STREAMS_PER_KEY"),
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


_PASSWORD = "pw-never-shown"
_DATABASES = st.one_of(
    st.sampled_from(["", "/", "/0", "/15", "/x", "/1/", "/-1", "/0.5", "/ 1"]),
    st.text(max_size=6).map(lambda t: "/" + t),
)


@given(
    scheme=st.sampled_from(["redis", "rediss", "unix", "http", "REDIS", ""]),
    port=st.sampled_from(["", ":6379", ":0x1", ":port", ":99999"]),
    database=_DATABASES,
    query=st.sampled_from(["", "?db=2", "?db=a", "?db=", "?socket_timeout=1"]),
)
@settings(max_examples=300, deadline=None)
def test_a_redis_url_is_accepted_only_when_redis_py_reads_every_part(scheme, port, database, query):
    """Whatever the settings accept, redis-py reads with a numeric database; whatever they refuse is
    one line that never shows the password."""
    import redis.connection

    if scheme == "unix":
        url = f"unix://:{_PASSWORD}@/run/redis.sock{query}"
    else:
        url = f"{scheme}://:{_PASSWORD}@127.0.0.1{port}{database}{query}"
    try:
        accepted = load_settings(environ={"SKYWARDEN_REDIS_URL": url})
    except SettingsError as exc:
        message = str(exc)
        assert "\n" not in message and _PASSWORD not in message and message.startswith("invalid setting redis_url")
        return
    assert accepted.redis_url == url.strip()  # surrounding whitespace (a file's last newline) is let go
    parsed = redis.connection.parse_url(accepted.redis_url)
    assert isinstance(parsed.get("db", 0), int) and parsed.get("db", 0) >= 0


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis://:pw@127.0.0.1:6379/x", "the database index must be a number"),
        ("redis://127.0.0.1:6379?db=two", "the database index must be a number"),
        ("redis://127.0.0.1:sixty/0", "the port must be a number"),
        ("memcached://127.0.0.1:6379/0", "the scheme must be redis, rediss or unix"),
        ("unix://", "needs the socket's path"),
    ],
)
def test_a_bad_redis_url_says_which_part(url, says):
    with pytest.raises(SettingsError, match=says):
        load_settings(environ={"SKYWARDEN_REDIS_URL": url})
