"""A plugin's settings: declared as a dataclass, read from every source by the core's precedence,
checked at start-up with one line naming the setting and its source, secrets never shown."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass
from typing import Annotated, Any

import pytest

from skywarden.server.observability.redaction import REDACTED
from skywarden.server.plugins.registry import PluginInfo, ToolRegistry
from skywarden.server.plugins.runtime import default_user_agent, plugin_runtimes
from skywarden.server.plugins.settings import SettingsDeclarationError, declared_settings, settings_instance
from skywarden.server.settings import Settings, SettingsError, load_settings
from skywarden.server.testing import running_app
from skywarden.tools import Secret, Url, setting
from skywarden.tools.weather import WeatherSettings
from tests.support.logs import SECRETS, drain_logs
from tests.support.plugin_settings_samples import (
    ACME_DISTRIBUTION,
    AcmeSettings,
    acme_plugin,
    acme_registry,
    weathery_plugin,
)

API_KEY = "acme-key-" + "k" * 24
SECRETS.add(API_KEY)
PLUGINS = declared_settings([acme_plugin(), weathery_plugin()])
ACME = {"SKYWARDEN_ACME_API_KEY": API_KEY}


def load(environ: dict[str, str] | None = None, **kwargs: Any) -> Settings:
    return load_settings(environ={**ACME, **(environ or {})}, plugins=PLUGINS, **kwargs)


def acme(settings: Settings) -> AcmeSettings:
    return settings_instance(acme_plugin(), settings)


def error_of(environ: dict[str, str] | None = None, **kwargs: Any) -> str:
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ or {}, plugins=PLUGINS, **kwargs)
    message = str(info.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# -- declaring --------------------------------------------------------------------------------


def test_each_field_is_a_setting_named_after_the_plugin():
    (described, _) = PLUGINS
    assert described.title == "acme (acme-tools 1.2)"
    by_name = {s.name: s for s in described.settings}
    assert list(by_name)[:3] == ["acme_base_url", "acme_api_key", "acme_timeout"]
    key = by_name["acme_api_key"]
    assert key.required and key.secret and key.kind == "secret"
    assert key.spellings() == {"acme_api_key": (False, False), "acme_api_key_file": (False, True)}
    assert by_name["acme_timeout"].default == 10.0 and not by_name["acme_timeout"].required
    assert by_name["acme_base_url"].kind == "http(s) URL" and isinstance(by_name["acme_base_url"].default, Url)
    assert by_name["acme_mode"].kind == "one of fast, careful"
    assert by_name["acme_proxy"].kind == "http(s) URL; empty = none"


def _plugin(cls: type, name: str = "bad") -> PluginInfo:
    return PluginInfo(name, "bad 1.0", name, settings=cls)


@dataclass(frozen=True)
class _DictSetting:
    table: dict[str, int] = setting(help="a table")


@dataclass
class _NotFrozen:
    x: int = setting(1, help="x")


@dataclass(frozen=True)
class _NoHelp:
    x: int = 1


@dataclass(frozen=True)
class _BadDefault:
    url: Url = setting("ftp://files.example", help="where")


@dataclass(frozen=True)
class _BadAnnotated:
    x: Annotated[int, "a description"] = setting(1, help="x")


@dataclass(frozen=True)
class _EmptySecretDefault:
    key: Secret = setting("", help="a key")


@pytest.mark.parametrize(
    ("cls", "expected"),
    [
        (_DictSetting, "plugin bad: setting table: unsupported type dict[str, int] (str, int, float, bool, Url,"),
        (_NotFrozen, "plugin bad: settings must be a frozen dataclass: @dataclass(frozen=True)"),
        (int, "plugin bad: settings must be a dataclass"),
        (_NoHelp, "plugin bad: setting x: declare it with setting(default, help='...')"),
        (_BadDefault, "plugin bad: setting url: its default must be an http(s) URL such as https://api.example.com"),
        (_BadAnnotated, "plugin bad: setting x: Annotated[...] extras must be marshmallow validators"),
        (_EmptySecretDefault, "plugin bad: setting key: its default must not be empty"),
    ],
)
def test_a_settings_class_that_breaks_the_contract_is_refused_in_one_line(cls, expected):
    with pytest.raises(SettingsDeclarationError) as info:
        declared_settings([_plugin(cls)])
    assert str(info.value).startswith(expected)


@dataclass(frozen=True)
class _Timeout:
    timeout: float = setting(1.0, help="t")


@dataclass(frozen=True)
class _OldNws:
    base_url: Url = setting("https://api.weather.gov", help="b", alias="nws_base_url")


def test_a_name_taken_by_the_server_or_another_plugin_is_refused():
    with pytest.raises(
        SettingsDeclarationError, match="plugin upstream: setting upstream_timeout is already a setting of the server"
    ):
        declared_settings([_plugin(_Timeout, "upstream")])
    # the weather plugin kept nws_base_url as its old name: no other plugin can take it
    with pytest.raises(SettingsDeclarationError, match="nws_base_url is already a setting of plugin weather"):
        declared_settings([_plugin(WeatherSettings, "weather"), _plugin(_OldNws, "other")])
    with pytest.raises(
        SettingsDeclarationError, match="plugin b: setting a_b_timeout is already a setting of plugin a_b"
    ):
        declared_settings([_plugin(_Timeout, "a_b"), _plugin(_Named, "b")])


@dataclass(frozen=True)
class _Named:
    x: int = setting(1, help="x", alias="a_b_timeout")


# -- sources and precedence --------------------------------------------------------------------


def test_defaults_fill_what_is_not_given():
    values = acme(load())
    assert values == AcmeSettings(api_key=Secret(API_KEY))
    assert values.regions == ["us"] and values.tags == () and values.proxy is None


def test_every_source_and_its_precedence(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text(
        '[skywarden]\nacme_timeout = 1\nacme_retries = 1\nacme_limit = 1\nacme_mode = "careful"\n'
        "[skywarden.tool_settings.acme]\nverbose = true\nregions = ['eu', 'ap']\n"
    )
    environ = {
        "SKYWARDEN_ACME_TIMEOUT": "2",
        "SKYWARDEN_ACME_RETRIES": "2",
        "SKYWARDEN_TOOL_SETTINGS": '{"acme": {"limit": 2}}',
    }
    settings = load(environ, config_path=config, cli={"acme_timeout": "3", "acme_tags": "a, b,,c"})
    values = acme(settings)
    assert values.timeout == 3.0  # flag > environment > config file
    assert values.retries == 2 and values.limit == 2  # environment (a variable, or the JSON table) > config file
    assert values.mode == "careful" and values.verbose is True and values.regions == ["eu", "ap"]  # config file
    assert values.tags == ("a", "b", "c")
    assert settings.tool_settings == {}  # a plugin's table became its settings


def test_running_app_style_typed_values_are_taken_as_they_are():
    values = acme(load(cli={"acme_timeout": 2, "acme_regions": ["x"], "acme_api_key": Secret(API_KEY)}))
    assert values.timeout == 2.0 and values.regions == ["x"] and values.api_key.reveal() == API_KEY


def test_one_setting_given_twice_in_one_source_is_refused(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("acme_timeout = 1\n[tool_settings.acme]\ntimeout = 2\n")
    assert error_of(ACME, config_path=config) == (
        "invalid setting acme_timeout: given twice (config file and config file, tool_settings.acme.timeout); "
        "give it once"
    )


def test_a_required_setting_that_is_missing_says_every_way_to_give_it():
    assert error_of({}) == (
        "missing setting acme_api_key: set --acme-api-key, SKYWARDEN_ACME_API_KEY, acme_api_key or acme_api_key_file"
    )


@pytest.mark.parametrize(
    ("variable", "value", "reason"),
    [
        ("TIMEOUT", "x", "must be a number; got 'x'"),
        ("TIMEOUT", "nan", "must be a finite number; got 'nan'"),
        ("TIMEOUT", "inf", "must be a finite number; got 'inf'"),
        ("RETRIES", "1.5", "must be an integer; got '1.5'"),
        ("RETRIES", "two", "must be an integer; got 'two'"),
        ("LIMIT", "0", "must be greater than or equal to 1 and less than or equal to 100; got '0'"),
        ("VERBOSE", "maybe", "must be true or false; got 'maybe'"),
        ("MODE", "slow", "must be one of fast, careful; got 'slow'"),
        (
            "BASE_URL",
            "ftp://x.example",
            "must be an http(s) URL such as https://api.example.com; got 'ftp://x.example'",
        ),
        ("BASE_URL", "api.acme.test", "must be an http(s) URL such as https://api.example.com; got 'api.acme.test'"),
        (
            "BASE_URL",
            "https://x.example:99999",
            "must be an http(s) URL such as https://api.example.com; got 'https://x.example:99999'",
        ),
        ("BASE_URL", "https://x.example/?q=1", "must not contain a query or fragment; got 'https://x.example/?q=1'"),
        ("BASE_URL", "https://x.example/#top", "must not contain a query or fragment; got 'https://x.example/#top'"),
        (
            "BASE_URL",
            "https://me:pw@x.example",
            "must not contain a user name or password (give credentials in a Secret setting); got 'https://me:***@x.example'",
        ),
        ("PROXY", "ftp://p.example", "must be an http(s) URL such as https://api.example.com; got 'ftp://p.example'"),
        ("API_KEY", "   ", "must not be empty; got ***"),
    ],
)
def test_a_malformed_value_names_the_setting_and_its_source(variable, value, reason):
    environ = {**ACME, f"SKYWARDEN_ACME_{variable}": value}
    assert error_of(environ) == f"invalid setting acme_{variable.lower()} (SKYWARDEN_ACME_{variable}): {reason}"


@pytest.mark.parametrize(
    ("toml", "expected"),
    [
        ("acme_retries = true", "invalid setting acme_retries (config file): must be an integer; got True"),
        ("acme_retries = 1.5", "invalid setting acme_retries (config file): must be an integer; got 1.5"),
        ("acme_timeout = false", "invalid setting acme_timeout (config file): must be a number; got False"),
        ("acme_verbose = 1", "invalid setting acme_verbose (config file): must be true or false; got 1"),
        ("acme_user_agent = 5", "invalid setting acme_user_agent (config file): must be a string; got 5"),
        (
            "acme_regions = [1, 2]",
            "invalid setting acme_regions (config file): must be a list of strings (comma-separated in a flag or "
            "the environment); got [1, 2]",
        ),
        ("acme_api_key = 12345", "invalid setting acme_api_key (config file): must be a string; got ***"),
        (
            "[tool_settings.acme]\ntimeout = 'soon'",
            "invalid setting acme_timeout (config file, tool_settings.acme.timeout): must be a number; got 'soon'",
        ),
    ],
)
def test_a_malformed_config_value_names_the_setting(tmp_path, toml, expected):
    config = tmp_path / "c.toml"
    config.write_text(toml + "\n")
    assert error_of(ACME, config_path=config) == expected


def test_good_values_of_every_type_are_checked_into_their_types():
    environ = {
        "SKYWARDEN_ACME_BASE_URL": " https://acme.example/api/ ",
        "SKYWARDEN_ACME_RETRIES": " 5 ",
        "SKYWARDEN_ACME_VERBOSE": "Yes",
        "SKYWARDEN_ACME_MODE": "careful",
        "SKYWARDEN_ACME_PROXY": "",
        "SKYWARDEN_ACME_TIMEOUT": "1e1",
    }
    values = acme(load(environ))
    assert values.base_url == "https://acme.example/api" and isinstance(values.base_url, Url)
    assert values.retries == 5 and values.verbose is True and values.mode == "careful"
    assert values.proxy is None and values.timeout == 10.0
    assert acme(load({"SKYWARDEN_ACME_PROXY": "http://10.0.0.1:3128"})).proxy == "http://10.0.0.1:3128"


# -- secrets -----------------------------------------------------------------------------------


def test_a_secret_is_never_shown(tmp_path):
    settings = load()
    values = acme(settings)
    assert API_KEY not in repr(settings) and API_KEY not in repr(values) and API_KEY not in str(values)
    assert values.api_key.reveal() == API_KEY and str(values.api_key) == "***"
    message = error_of({"SKYWARDEN_ACME_API_KEY": API_KEY, "SKYWARDEN_ACME_API_KEY_FILE": str(tmp_path / "k")})
    assert API_KEY not in message


def test_a_secret_from_a_file_loses_its_trailing_newline(tmp_path):
    secret = tmp_path / "acme-key"
    secret.write_text(API_KEY + "\n")
    for kwargs in (
        {"environ": {"SKYWARDEN_ACME_API_KEY_FILE": str(secret)}},
        {"environ": {}, "cli": {"acme_api_key_file": str(secret)}},
        {"environ": {"SKYWARDEN_TOOL_SETTINGS": f'{{"acme": {{"api_key_file": "{secret}"}}}}'}},
    ):
        values = settings_instance(acme_plugin(), load_settings(plugins=PLUGINS, **kwargs))
        assert values.api_key.reveal() == API_KEY
    # a file given as a flag wins over a value in the environment, as any flag does
    other = tmp_path / "other"
    other.write_text("other-key\r\n")
    values = acme(load(cli={"acme_api_key_file": str(other)}))
    assert values.api_key.reveal() == "other-key"


def test_a_secret_file_that_cannot_be_used_is_named(tmp_path):
    missing = tmp_path / "nope"
    assert error_of({"SKYWARDEN_ACME_API_KEY_FILE": str(missing)}) == (
        f"invalid setting acme_api_key_file (SKYWARDEN_ACME_API_KEY_FILE): cannot read '{missing}' "
        "(No such file or directory)"
    )
    empty = tmp_path / "empty"
    empty.write_text("\n")
    assert error_of({"SKYWARDEN_ACME_API_KEY_FILE": str(empty)}) == (
        f"invalid setting acme_api_key (SKYWARDEN_ACME_API_KEY_FILE: {empty}): must not be empty; got ***"
    )
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe")
    assert error_of({"SKYWARDEN_ACME_API_KEY_FILE": str(binary)}) == (
        f"invalid setting acme_api_key_file (SKYWARDEN_ACME_API_KEY_FILE): '{binary}' is not UTF-8 text"
    )
    assert error_of({"SKYWARDEN_ACME_API_KEY": API_KEY, "SKYWARDEN_ACME_API_KEY_FILE": str(empty)}) == (
        "invalid setting acme_api_key: given twice (SKYWARDEN_ACME_API_KEY and SKYWARDEN_ACME_API_KEY_FILE); "
        "give it once"
    )
    # an empty *_file is no file, as for the server's own secret_file
    assert acme(load({"SKYWARDEN_ACME_API_KEY_FILE": ""})).api_key.reveal() == API_KEY


# -- old names ---------------------------------------------------------------------------------


def test_an_old_name_works_everywhere_with_a_deprecation(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("oldwx_base_url = 'https://old.example'\n")
    table = tmp_path / "t.toml"
    table.write_text("[tool_settings.oldwx]\nbase_url = 'https://old.example'\n")
    for kwargs, source in (
        ({"environ": {"SKYWARDEN_OLDWX_BASE_URL": "https://old.example"}}, "SKYWARDEN_OLDWX_BASE_URL"),
        ({"cli": {"oldwx_base_url": "https://old.example"}}, "--oldwx-base-url"),
        ({"config_path": config}, "config file"),
        ({"config_path": table}, "config file, tool_settings.oldwx.base_url"),
    ):
        settings = load(**kwargs)
        assert settings.plugin_settings["weathery"]["base_url"] == "https://old.example"
        (deprecation,) = settings.deprecations
        assert str(deprecation) == (
            f"setting oldwx_base_url ({source}) is deprecated: use weathery_base_url "
            "(--weathery-base-url, SKYWARDEN_WEATHERY_BASE_URL); the old name will be removed in a future release"
        )


def test_the_new_name_wins_over_the_old_one_wherever_each_is_given(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("weathery_base_url = 'https://new.example'\n")
    settings = load({"SKYWARDEN_OLDWX_BASE_URL": "https://old.example"}, config_path=config)
    assert settings.plugin_settings["weathery"]["base_url"] == "https://new.example"
    (deprecation,) = settings.deprecations
    assert str(deprecation) == (
        "setting oldwx_base_url (SKYWARDEN_OLDWX_BASE_URL) is deprecated and ignored: "
        "weathery_base_url is set too (config file) and wins"
    )


def test_an_old_secret_name_takes_a_file_too(tmp_path):
    token = tmp_path / "token"
    token.write_text("wx-token\n")
    settings = load({"SKYWARDEN_OLDWX_TOKEN_FILE": str(token)})
    assert settings.plugin_settings["weathery"]["token"] == Secret("wx-token")
    assert [d.old for d in settings.deprecations] == ["oldwx_token"]


def test_a_bad_value_under_the_old_name_names_where_it_came_from():
    assert error_of({**ACME, "SKYWARDEN_OLDWX_BASE_URL": "ftp://x.example"}) == (
        "invalid setting weathery_base_url (SKYWARDEN_OLDWX_BASE_URL): must be an http(s) URL such as "
        "https://api.example.com; got 'ftp://x.example'"
    )


# -- unknown names -----------------------------------------------------------------------------


def test_unknown_names_are_refused_known_ones_are_not(tmp_path):
    config = tmp_path / "c.toml"
    config.write_text("acme_colour = 'blue'\n")
    assert error_of(ACME, config_path=config) == "invalid setting acme_colour (config file): unknown setting"
    config.write_text("[tool_settings.acme]\ncolour = 'blue'\n")
    assert error_of(ACME, config_path=config) == (
        "invalid setting acme_colour (config file, tool_settings.acme.colour): unknown setting"
    )
    config.write_text("[tool_settings.nobody]\nx = 1\n")
    assert error_of(ACME, config_path=config) == (
        "invalid setting tool_settings (config file): no plugin reads [tool_settings.nobody] "
        "(plugins with settings: acme, weathery)"
    )
    assert error_of(ACME, cli={"acme_colour": "blue"}) == "invalid setting acme_colour: unknown setting"
    # without the plugins (the registry unknown), their names are unknown names
    with pytest.raises(SettingsError, match=r"acme_timeout.*unknown setting"):
        load_settings(environ={}, config_path=tmp_path / "c.toml", cli={"acme_timeout": "1"})


def test_a_class_form_group_keeps_its_table_and_the_unknown_registry_keeps_every_table():
    group = PluginInfo("lookup", "x 1", "lookup", settings_group="lookup", tools=("lookup",))
    plugins = declared_settings([acme_plugin(), group])
    environ = {**ACME, "SKYWARDEN_TOOL_SETTINGS": '{"lookup": {"base_url": "http://env"}}'}
    settings = load_settings(environ=environ, cli={"tool_settings": {"lookup": {"colour": "red"}}}, plugins=plugins)
    assert settings.tool_settings == {"lookup": {"colour": "red"}}  # a higher source's table replaces it whole
    settings = load_settings(environ={"SKYWARDEN_TOOL_SETTINGS": '{"anyone": {"x": ["a", "b"]}}'})
    assert settings.tool_settings == {"anyone": {"x": ["a", "b"]}} and settings.plugin_settings == {}


def test_settings_made_without_the_plugin_are_checked_when_its_runtime_is_built():
    settings = load_settings(environ={}, cli={"tool_settings": {"acme": {"api_key": API_KEY, "timeout": "4"}}})
    values = acme(settings)
    assert values.timeout == 4.0 and values.api_key.reveal() == API_KEY
    with pytest.raises(SettingsError, match=r"^missing setting acme_api_key: set"):
        acme(load_settings(environ={}))
    bad = load_settings(environ={}, cli={"tool_settings": {"acme": {"api_key": API_KEY, "timeout": "x"}}})
    with pytest.raises(
        SettingsError, match=r"invalid setting acme_timeout \(tool_settings.acme.timeout\): must be a number"
    ):
        acme(bad)


def test_commands_that_run_no_tool_know_the_names_but_check_nothing():
    settings = load_settings(environ={"SKYWARDEN_ACME_TIMEOUT": "x"}, plugins=PLUGINS, check_plugins=False)
    assert settings.plugin_settings == {}


# -- where the values go -----------------------------------------------------------------------


def test_settings_with_plugin_values_survive_pickling_and_replace():
    settings = load(
        {"SKYWARDEN_ACME_REGIONS": "eu", "SKYWARDEN_OLDWX_BASE_URL": "https://old.example", "SKYWARDEN_WORKERS": "2"}
    )
    again = pickle.loads(pickle.dumps(settings))
    assert again == settings and acme(again) == acme(settings)
    assert isinstance(acme(again).base_url, Url) and acme(again).api_key.reveal() == API_KEY
    assert again.deprecations == settings.deprecations
    with pytest.raises(TypeError):
        again.plugin_settings["acme"]["timeout"] = 1  # still read-only
    moved = dataclasses.replace(settings, port=9999)
    assert moved.plugin_settings == settings.plugin_settings and moved.deprecations == settings.deprecations


class _Clients:
    """Records what each plugin's HTTP client was made with."""

    def __init__(self) -> None:
        self.made: dict[str, dict[str, Any]] = {}

    def for_plugin(self, name: str, **kwargs: Any) -> str:
        self.made[name] = kwargs
        return f"client of {name}"


def test_each_plugin_gets_its_settings_user_agent_and_trusted_origins():
    group = PluginInfo("lookup", "lookup-tools 2.0", "Lookup", settings_group="lookup", tools=("lookup",))
    plain = PluginInfo("plain", "plain 1", "Plain", user_agent="plain-bot/1")
    registry = ToolRegistry(plugins=[acme_plugin(), weathery_plugin(), group, plain])
    settings = load_settings(
        environ={**ACME, "SKYWARDEN_ACME_USER_AGENT": "acme-bot/9", "SKYWARDEN_ACME_PROXY": "http://10.1.1.1:3128"},
        cli={"tool_settings": {"lookup": {"base_url": "http://10.0.0.7:8080", "colour": "red"}}},
        plugins=declared_settings(registry.plugins),
    )
    clients = _Clients()
    runtimes = plugin_runtimes(registry, settings, clients)  # type: ignore[arg-type]
    assert isinstance(runtimes["acme"].settings, AcmeSettings) and runtimes["acme"].http == "client of acme"
    assert runtimes["lookup"].settings["colour"] == "red" and runtimes["plain"].settings == {}
    assert clients.made["acme"] == {
        "user_agent": "acme-bot/9",
        "service": "Acme",
        "trusted_origins": ["https://api.acme.test", "http://10.1.1.1:3128"],
    }
    assert clients.made["weathery"]["user_agent"] == "weathery/0.3 skywarden/0.1.0"
    assert clients.made["lookup"]["trusted_origins"] == ["http://10.0.0.7:8080"]
    assert clients.made["plain"]["user_agent"] == "plain-bot/1"
    assert default_user_agent("skywarden 0.1.0") == "skywarden/0.1.0"
    assert default_user_agent("under test") == "skywarden/0.1.0"


@pytest.fixture
def acme_installed(monkeypatch):
    """running_app's "every installed plugin" is the acme plugin (registered by hand until
    running_app takes Plugin objects)."""
    import skywarden.server.testing as testing

    monkeypatch.setattr(testing, "discover_tools", acme_registry)


async def test_running_app_takes_plugin_settings_by_name_and_the_tool_sees_them(acme_installed):
    async with running_app(acme_api_key=API_KEY, acme_timeout="2.5", acme_base_url="https://acme.example/") as app:
        key = await app.create_key(scopes=["show_settings"])
        status, body = await app.call_tool("show_settings", {}, key)
    assert status == 200, body
    assert body["structuredContent"]["settings_type"] == "AcmeSettings"
    assert body["structuredContent"]["timeout"] == 2.5
    assert body["structuredContent"]["base_url"] == "https://acme.example"
    seen = [e for e in drain_logs() if e.get("event") == "acme settings seen"]
    assert seen and all(e["key"] == REDACTED for e in seen)  # a plugin's secret is redacted from the log


async def test_running_app_refuses_a_bad_plugin_setting_before_starting(acme_installed):
    with pytest.raises(
        SettingsError,
        match=r"^invalid setting acme_timeout \(running_app\(acme_timeout=\.\.\.\)\): must be a number; got 'x'$",
    ):
        async with running_app(acme_api_key=API_KEY, acme_timeout="x"):
            pass
    with pytest.raises(SettingsError, match=r"^missing setting acme_api_key"):
        async with running_app():
            pass


def test_the_plugin_title_names_its_distribution():
    assert ACME_DISTRIBUTION in PLUGINS[0].title
