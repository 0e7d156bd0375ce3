"""How an endpoint names a tool in its refusals and failures: as it shows the tool (``add`` at
``/mcp/u/calc`` for ``calc__add``). The pipeline builds each refusal from that name; a scope or
an argument value a refusal quotes keeps its own text."""

from __future__ import annotations

import dataclasses
from typing import Literal

import pytest

from skywarden.server.calls.pipeline import InvalidArguments, ToolForbidden, UnknownTool
from skywarden.server.identity.service import SUBJECT_KIND, Identity
from skywarden.server.mcp.methods import McpMethods, ToolView
from skywarden.server.plugins.registry import registry_of
from skywarden.server.principal import Principal
from skywarden.tools import tool
from tests.support.pipelines import pipeline_of

KEY = Principal("key", "key_view", "view", frozenset({"calc__echo"}))
TOKEN = Principal(SUBJECT_KIND, "sub_view", "view", frozenset({"calc__echo"}))
ANYONE = Principal("key", "key_all", "all", frozenset({"*"}))


@tool(name="calc__add")
async def add(a: int, op: Literal["calc__add", "plus"] = "plus") -> int:
    """Add."""
    return a


@tool(name="calc__echo")
async def echo(text: str) -> str:
    """Echo."""
    raise RuntimeError("unexpected")


def pipeline(**options):
    return pipeline_of(registry_of([add, echo], "calc"), None, **options)


def token_refusals() -> Identity:
    """The resource server's refusals alone: the rest of an ``Identity`` is not used by them."""
    return Identity(None, "", None, "https://sky.example/mcp", {}, None, frozenset, None)  # type: ignore[arg-type]


async def test_an_unknown_tool_is_named_as_the_client_named_it_however_long():
    name = "n" * 300
    with pytest.raises(UnknownTool) as refused:
        await pipeline().call("calc__" + name, {}, KEY, shown=name)
    assert refused.value.detail == UnknownTool(name).detail and "calc__" not in refused.value.detail


async def test_a_tool_the_key_may_not_use_is_named_as_shown():
    with pytest.raises(ToolForbidden) as refused:
        await pipeline().call("calc__add", {"a": 1}, KEY, shown="add")
    assert refused.value.detail == "This API key may not use the tool 'add'."


async def test_a_token_refusal_names_the_tool_as_shown_and_its_scopes_in_full():
    refuse = token_refusals().scope_refusal
    with pytest.raises(ToolForbidden) as refused:
        await pipeline(refuse=refuse).call("calc__add", {"a": 1}, TOKEN, shown="add")
    assert refused.value.detail.startswith("This access token may not use the tool 'add': it needs one of the scopes ")
    assert "tool:calc__add" in refused.value.detail
    assert "tool:calc__add" in refused.value.headers["WWW-Authenticate"]


@pytest.mark.parametrize("arguments", [{"a": "one"}, {"a": 1, "op": "minus"}, [1], "calc__add"])
async def test_invalid_arguments_name_the_tool_as_shown(arguments):
    with pytest.raises(InvalidArguments) as refused:
        await pipeline().call("calc__add", arguments, ANYONE, shown="add")
    assert refused.value.detail.startswith("Invalid arguments for add: ") and str(refused.value) == refused.value.detail


async def test_a_value_an_argument_error_quotes_keeps_its_text():
    with pytest.raises(InvalidArguments) as refused:
        await pipeline().call("calc__add", {"a": 1, "op": "calc__"}, ANYONE, shown="add")
    assert "calc__add" in refused.value.detail.removeprefix("Invalid arguments for add: ")


async def test_a_tool_failure_names_the_tool_as_shown():
    outcome = await pipeline().call("calc__echo", {"text": "x"}, KEY, shown="echo")
    assert outcome.result.is_error
    assert outcome.result.content[0]["text"] == "The tool echo failed unexpectedly; the error was logged."


async def test_without_a_shown_name_the_tool_is_named_in_full():
    with pytest.raises(ToolForbidden) as refused:
        await pipeline().call("calc__add", {"a": 1}, KEY)
    assert refused.value.detail == "This API key may not use the tool 'calc__add'."
    outcome = await pipeline().call("calc__echo", {"text": "x"}, KEY)
    assert outcome.result.content[0]["text"] == "The tool calc__echo failed unexpectedly; the error was logged."


async def test_an_upstreams_endpoint_calls_none_but_its_upstreams_tools():
    """``/mcp/u/calc`` with the separator ``__``: a tool named ``calc__...`` that is not calc's
    (a plugin's here; another upstream's with a separator such as ``_``) is unknown there."""
    plugin_tools = registry_of([add, echo], "calc")
    registry = registry_of([add], "calc")
    registry.add(dataclasses.replace(plugin_tools.get("calc__echo"), upstream="calc"))
    methods = McpMethods(pipeline_of(registry, None)).viewed(ToolView(upstream="calc", prefix="calc__"))
    with pytest.raises(UnknownTool) as refused:
        await methods.tools_call("2025-11-25", {"name": "add", "arguments": {"a": 1}}, ANYONE)
    assert refused.value.detail == "Unknown tool: add"
    encoded, failed, upstream = await methods.tools_call(
        "2025-11-25", {"name": "echo", "arguments": {"text": "x"}}, ANYONE
    )
    assert failed and upstream == "calc" and b"The tool echo failed unexpectedly" in encoded
