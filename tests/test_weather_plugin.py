"""The built-in weather tools as a plugin: its settings (and their old names), its scope, and
results that always match the schema it publishes, whatever NWS answers."""

from __future__ import annotations

import json

import jsonschema
import pytest

from skywarden.server import __version__
from skywarden.server.cli.main import main
from skywarden.server.settings import SettingsError, load_settings
from tests.conftest import installed_plugins
from tests.support.fake_nws import OWN_FIXTURES, Answer
from tests.support.mcp_helpers import modern_headers, modern_rpc

FORECAST_PATH = "/gridpoints/TOP/32,81/forecast"
ARGUMENTS = {"get_forecast": {"latitude": 39.7456, "longitude": -97.0892}, "get_alerts": {"state": "KS"}}


def test_the_weather_settings_and_their_defaults():
    weather = load_settings(environ={}, plugins=installed_plugins()).plugin_settings["weather"]
    assert weather == {
        "base_url": "https://api.weather.gov",
        "user_agent": f"skywarden/{__version__} (+https://github.com/skywarden/skywarden)",
    }


def test_the_old_nws_names_still_work_with_a_deprecation(tmp_path):
    config = tmp_path / "skywarden.toml"
    config.write_text('nws_user_agent = "forecasts.example (ops@forecasts.example)"\n')
    settings = load_settings(
        environ={"SKYWARDEN_NWS_BASE_URL": "https://nws.internal.example/"},
        config_path=config,
        plugins=installed_plugins(),
    )
    assert settings.plugin_settings["weather"] == {
        "base_url": "https://nws.internal.example",
        "user_agent": "forecasts.example (ops@forecasts.example)",
    }
    assert sorted(str(d) for d in settings.deprecations) == [
        "setting nws_base_url (SKYWARDEN_NWS_BASE_URL) is deprecated: use weather_base_url "
        "(--weather-base-url, SKYWARDEN_WEATHER_BASE_URL); the old name will be removed in a future release",
        "setting nws_user_agent (config file) is deprecated: use weather_user_agent "
        "(--weather-user-agent, SKYWARDEN_WEATHER_USER_AGENT); the old name will be removed in a future release",
    ]


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({"SKYWARDEN_WEATHER_BASE_URL": "ftp://x"}, "invalid setting weather_base_url (SKYWARDEN_WEATHER_BASE_URL)"),
        ({"SKYWARDEN_WEATHER_BASE_URL": "https://x/?q=1"}, "invalid setting weather_base_url"),
        ({"SKYWARDEN_NWS_BASE_URL": "ftp://x"}, "invalid setting weather_base_url (SKYWARDEN_NWS_BASE_URL)"),
    ],
)
def test_a_bad_weather_url_is_refused_naming_the_setting(environ, expected):
    with pytest.raises(SettingsError) as info:
        load_settings(environ=environ, plugins=installed_plugins())
    assert str(info.value).startswith(expected) and "\n" not in str(info.value)


def test_serve_help_lists_the_weather_settings_under_their_new_names(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # no help text broken inside a word
    with pytest.raises(SystemExit) as done:
        main(["serve", "--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    weather = " ".join(out.split(f"plugin weather (skywarden {__version__}):", 1)[1].split())
    assert weather.startswith(
        "--weather-base-url WEATHER_BASE_URL National Weather Service API base URL (http(s) URL); "
        "env SKYWARDEN_WEATHER_BASE_URL (default: https://api.weather.gov) --weather-user-agent"
    )
    assert "--nws-" not in out and "NWS_" not in out  # the old names are accepted, not listed


async def _call(client, door: str, tool: str) -> tuple[int, dict]:
    if door == "rest":
        resp = await client.post(f"/api/mcp/tools/{tool}", json=ARGUMENTS[tool])
        return resp.status, await resp.json()
    message = modern_rpc("tools/call", {"name": tool, "arguments": ARGUMENTS[tool]})
    resp = await client.post("/mcp", json=message, headers=modern_headers(message))
    body = await resp.json()
    return resp.status, body.get("result", body)


@pytest.mark.parametrize("door", ["rest", "mcp"])
async def test_a_key_scoped_weather_lists_and_calls_both_tools(make_client, door):
    client = await make_client(scopes=["weather"])
    listed = await (await client.get("/api/mcp/tools")).json()
    assert [t["name"] for t in listed["tools"]] == ["get_alerts", "get_forecast"]
    for tool in ("get_alerts", "get_forecast"):
        status, result = await _call(client, door, tool)
        assert status == 200 and result["isError"] is False, result
    one = await make_client(scopes=["get_alerts"])
    assert (await _call(one, door, "get_alerts"))[0] == 200
    assert (await _call(one, door, "get_forecast"))[0] == 403


@pytest.mark.parametrize("temperature", ["NaN", "Infinity", "-1e400", "1" + "0" * 400, '"31"', "true", "null"])
async def test_a_temperature_that_is_no_finite_number_is_unknown(client, fake_nws, temperature):
    """NWS's JSON is read as Python reads it (NaN, Infinity and huge integers included): such a
    temperature is no number the result may carry, so it is null, as a missing one is."""
    document = json.loads((OWN_FIXTURES / "forecast_TOP_32_81.json").read_text())
    document["properties"]["periods"][0]["temperature"] = "@"
    body = json.dumps(document).replace('"@"', temperature).encode()
    fake_nws.set(FORECAST_PATH, Answer(200, body, headers={"Cache-Control": "max-age=60"}))
    listed = {t["name"]: t for t in (await (await client.get("/api/mcp/tools")).json())["tools"]}
    resp = await client.post("/api/mcp/tools/get_forecast", json=ARGUMENTS["get_forecast"])
    result = await resp.json()
    assert result["isError"] is False, result
    periods = result["structuredContent"]["periods"]
    assert periods[0]["temperature"] is None and periods[1]["temperature"] == 48
    assert "Temperature: n/a" in result["content"][0]["text"]
    jsonschema.validate(result["structuredContent"], listed["get_forecast"]["outputSchema"])
