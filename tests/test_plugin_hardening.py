"""What a plugin, its settings or its caller cannot make the server do: show a secret, answer
500, share one caller's data with the next, publish a schema clients cannot compile, or let one
vendor's scope reach another's tools."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated

import pytest
from marshmallow import validate

from skywarden.server.plugins.model import InvalidToolError
from skywarden.server.plugins.registry import DuplicateToolError, load_object, register_tool, registry_of
from skywarden.server.plugins.settings import declared_settings
from skywarden.server.settings import SettingsError, load_settings
from skywarden.server.testing import Answer, fake_upstream, running_app
from skywarden.tools import Context, Plugin, Secret, ToolResult, Url, setting, text_content, tool
from tests.support.logs import SECRETS

API_KEY = "sk-live-" + "s" * 24
SECRETS.add(API_KEY)


@dataclass(frozen=True)
class EchoSettings:
    base_url: Url = setting("https://api.echo.test", help="Echo API base URL")
    api_key: Secret = setting(help="Echo API key")


echo = Plugin("echo", settings=EchoSettings)


@echo.tool
async def fetch(ctx: Context[EchoSettings]) -> str:
    """Ask the Echo API, with the key."""
    return str(await ctx.http.get_json(f"{ctx.settings.base_url}/thing", headers={"X-Api-Key": ctx.settings.api_key}))


async def test_an_upstream_that_echoes_the_key_does_not_show_it_to_the_caller():
    answer = Answer({"detail": f"API key {API_KEY} is not valid"}, status=401)
    async with fake_upstream({"/thing": answer}) as api:
        async with running_app(tools=[echo], echo_base_url=api.url, echo_api_key=API_KEY) as app:
            key = await app.create_key()
            status, body = await app.call_tool("fetch", {}, key)
            _, mcp = await app.call_tool_mcp("fetch", {}, key)
    assert status == 200 and body["isError"] is True
    assert API_KEY not in str(body) and API_KEY not in str(mcp)
    assert "answered HTTP 401: API key *** is not valid" in body["content"][0]["text"]
    _, headers = api.requests[0]
    assert headers["X-Api-Key"] == API_KEY  # the upstream itself got the key


@pytest.mark.parametrize(
    "environ",
    [
        {"SKYWARDEN_TOOL_SETTINGS": '{"echo": {"api_key": "' + API_KEY + '"}'},  # not JSON
        {"SKYWARDEN_TOOL_SETTINGS": '{"echo": {"api_key": "' + API_KEY + '"}, "other": {"nested": {"a": 1}}}'},
    ],
)
def test_a_malformed_tool_settings_table_is_refused_without_quoting_it(environ):
    with pytest.raises(SettingsError) as refused:
        load_settings(environ=environ)
    assert "tool_settings" in str(refused.value) and API_KEY not in str(refused.value)


@dataclass
class Thing:
    name: str


@tool
async def square(x: int) -> int:
    """Square a number."""
    return x * x


@tool
async def raw_bytes() -> ToolResult:
    """Content that is no JSON."""
    return ToolResult(content=[text_content("hi")], structured={"b": b"bytes"})


@tool
async def odd_content() -> ToolResult[Thing]:
    """Content whose text is an object."""
    return ToolResult(content=[{"type": "text", "text": object()}], structured=Thing("a"))


@tool
async def cycle() -> dict[str, list[int]]:
    """A list that holds itself."""
    items: list = [1]
    items.append(items)
    return {"a": items}


@pytest.mark.parametrize(
    ("name", "arguments", "says"),
    [
        ("square", {"x": 10**3000}, "cannot be written as JSON"),  # the caller's own number, squared
        ("raw_bytes", {}, "cannot be written as JSON"),
        ("odd_content", {}, "cannot be written as JSON"),
        ("cycle", {}, "does not match its output schema"),
    ],
)
async def test_a_result_that_is_no_json_is_a_tool_error_at_both_doors(name, arguments, says):
    async with running_app(tools=[square, raw_bytes, odd_content, cycle]) as app:
        key = await app.create_key()
        status, body = await app.call_tool(name, arguments, key)
        mcp_status, mcp = await app.call_tool_mcp(name, arguments, key)
    assert status == 200 and body["isError"] is True and says in body["content"][0]["text"]
    assert mcp_status == 200 and mcp["result"]["isError"] is True and says in mcp["result"]["content"][0]["text"]


@dataclass(frozen=True)
class CheckedSecretSettings:
    key: Annotated[Secret, validate.Length(min=20), validate.Regexp(r"^sk-")] = setting(help="a checked key")


checked = Plugin("checked", settings=CheckedSecretSettings)


@checked.tool
async def noop(ctx: Context[CheckedSecretSettings]) -> str:
    """Nothing."""
    return "ok"


@pytest.mark.parametrize(
    ("value", "reason"),
    [("sk-short", "shorter than minimum length 20"), ("xx-" + "y" * 30, "does not match expected pattern")],
)
def test_validators_on_a_secret_setting_check_its_value_and_never_quote_it(value, reason):
    plugins = declared_settings(registry_of([checked], "checked 1.0").plugins)
    with pytest.raises(SettingsError) as refused:
        load_settings(environ={"SKYWARDEN_CHECKED_KEY": value}, plugins=plugins)
    assert reason in str(refused.value).lower() and value not in str(refused.value)
    fine = load_settings(environ={"SKYWARDEN_CHECKED_KEY": "sk-" + "z" * 30}, plugins=plugins)
    assert fine.plugin_settings["checked"]["key"].reveal() == "sk-" + "z" * 30


def test_a_plugin_whose_settings_class_breaks_the_contract_is_refused_where_it_loads():
    @dataclass(frozen=True)
    class Broken:
        table: dict[str, int] | None = setting(None, help="not a setting type")

    broken = Plugin("broken", settings=Broken)

    @broken.tool
    async def anything(ctx: Context) -> str:
        """Anything."""
        return "x"

    with pytest.raises(InvalidToolError, match=r"plugin broken: setting table: unsupported type"):
        registry_of([broken], "broken 1.0")


@dataclass
class Options:
    seen: list[str] = field(default_factory=list)


@tool
async def remember(name: str, options: Options = Options(), tags: list[str] = []) -> list[str]:  # noqa: B006
    """Each call adds to its defaults: no other call may see it."""
    options.seen.append(name)
    tags.append(name)
    return [*options.seen, *tags]


async def test_a_mutable_default_is_each_calls_own():
    async with running_app(tools=[remember]) as app:
        key = await app.create_key()
        _, first = await app.call_tool("remember", {"name": "alice"}, key)
        _, second = await app.call_tool("remember", {"name": "bob"}, key)
    assert first["structuredContent"] == {"result": ["alice", "alice"]}
    assert second["structuredContent"] == {"result": ["bob", "bob"]}


@pytest.mark.parametrize("default", ["many", float("nan"), 1.5, [1]], ids=["a text", "NaN", "a float", "a list"])
def test_a_default_that_does_not_fit_its_type_is_refused_at_load(default):
    async def count(n: int = default) -> int:
        """Count."""
        return n

    with pytest.raises(InvalidToolError, match=r"parameter 'n': its default does not fit its type"):
        register_tool(tool(count), "t")


def test_a_pattern_with_flags_is_not_published_and_a_python_only_pattern_is_refused():
    @tool
    async def shout(text: Annotated[str, validate.Regexp(r"^[a-z]+$", flags=re.IGNORECASE)]) -> str:
        """Shout."""
        return text.upper()

    published = register_tool(shout, "t").input_schema["properties"]["text"]
    assert "pattern" not in published  # it would refuse "ABC", which the tool takes

    @tool
    async def digits(text: Annotated[str, validate.Regexp(r"^\d+\Z")]) -> str:
        """Digits."""
        return text

    with pytest.raises(InvalidToolError, match="cannot be converted to JSON Schema"):
        register_tool(digits, "t")


def test_two_distributions_cannot_share_a_scope_name():
    one, other = Plugin("one"), Plugin("other")

    @one.tool(scopes=["acme"])
    async def lookup() -> str:
        """Look up."""
        return "x"

    @other.tool(scopes=["acme"])
    async def wipe_everything() -> str:
        """Wipe."""
        return "x"

    registry = registry_of([one], "acme-tools 1.0")
    registry.add(*load_object(other, "acme-tools 1.0"))  # one distribution's two plugins may share it
    with pytest.raises(DuplicateToolError, match=r"scope name 'acme' is declared by both"):
        registry_of([one], "acme-tools 1.0").add(*load_object(other, "rogue-tools 6.6"))


def test_a_prefixed_secret_stays_a_secret():
    bearer = Secret(API_KEY).prefixed("Bearer ")
    assert isinstance(bearer, Secret) and bearer.reveal() == f"Bearer {API_KEY}"
    assert str(bearer) == "***" and API_KEY not in repr(bearer)


def test_an_option_written_without_its_name_is_refused_where_it_is_written():
    with pytest.raises(TypeError, match=r"@tool takes its options by name, such as @tool\(scopes=\[...\]\); got list"):
        tool(["dice"])  # type: ignore[call-overload]  # the mistake under test
    with pytest.raises(TypeError, match="takes its options by name"):
        Plugin("dice").tool(["dice"])  # type: ignore[call-overload]


async def test_running_app_refuses_a_missing_setting_and_a_tool_it_cannot_use_with_errors_authors_can_import():
    from skywarden.server import testing

    with pytest.raises(testing.SettingsError, match="missing setting echo_api_key"):
        async with running_app(tools=[echo]):
            pass

    with pytest.raises(
        testing.SettingsError, match=r"invalid setting echo_base_url \(running_app\(echo_base_url=\.\.\.\)\)"
    ):
        async with running_app(tools=[echo], echo_base_url="ftp://x", echo_api_key=API_KEY):
            pass

    async def unannotated(text):
        """Its argument has no type."""
        return text

    with pytest.raises(testing.InvalidToolError, match="parameter 'text' needs a type annotation"):
        async with running_app(tools=[tool(unannotated)]):
            pass


HOOK_SCRIPT = """
import asyncio, socket
from dataclasses import dataclass
from skywarden.server.testing import PluginStartError, running_app
from skywarden.tools import Context, Plugin, Secret, Url, setting

@dataclass(frozen=True)
class S:
    base_url: Url = setting(help="base")
    api_key: Secret = setting(help="key")

p = Plugin("leaky", settings=S)

@p.on_startup
async def connect(ctx: Context[S]) -> None:
    await ctx.http.request("GET", ctx.settings.base_url + "/x", headers={"Authorization": ctx.settings.api_key})

@p.tool
async def noop() -> str:
    "Nothing."
    return ""

async def main():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once this block ends: nothing listens there
    try:
        async with running_app(tools=[p], leaky_base_url=f"http://127.0.0.1:{port}", leaky_api_key=%r):
            pass
    except PluginStartError as exc:
        print("refused:", exc)

asyncio.run(main())
"""


@pytest.mark.slow  # starts a subprocess
def test_a_failing_hook_in_an_authors_test_run_logs_no_secret():
    """A plugin author's test run has not set up logging: what running_app logs still hides secrets."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", HOOK_SCRIPT % API_KEY], capture_output=True, text=True, timeout=60, check=False
    )
    output = done.stdout + done.stderr
    assert "refused: plugin leaky: start-up hook connect failed" in output, output[-2000:]
    assert API_KEY not in output
