"""How an upstream's own endpoint (``/mcp/u/<name>``) names a tool in a refusal: as it shows the
tool, without the upstream's prefix, and only where the refusal names the tool (a scope or an
argument value it quotes keeps its text)."""

from __future__ import annotations

from skywarden.server.calls.pipeline import InvalidArguments, ToolForbidden, UnknownTool
from skywarden.server.mcp.methods import EVERY_TOOL, ToolView

CALC = ToolView(upstream="calc", prefix="calc__")


def test_an_unknown_tool_is_named_as_the_client_named_it_however_long():
    name = "n" * 300
    renamed = CALC.renamed(UnknownTool(CALC.inside(name)), CALC.inside(name))
    assert renamed.detail == UnknownTool(name).detail and "calc__" not in renamed.detail


def test_a_forbidden_tool_is_named_without_the_prefix_and_the_scopes_keep_theirs():
    detail = "This access token may not use the tool 'calc__add': it needs one of the scopes tool:calc__add tools."
    renamed = CALC.renamed(ToolForbidden("calc__add", detail), "calc__add")
    assert renamed.detail == (
        "This access token may not use the tool 'add': it needs one of the scopes tool:calc__add tools."
    )
    assert CALC.renamed(ToolForbidden("calc__add"), "calc__add").detail == "This API key may not use the tool 'add'."


def test_invalid_arguments_name_the_tool_and_keep_the_values_they_quote():
    error = InvalidArguments("calc__add", {"op": ["'calc__add' is not one of ['x']"]})
    renamed = CALC.renamed(error, "calc__add")
    assert renamed.detail.startswith("Invalid arguments for add: ")
    assert "'calc__add' is not one of" in renamed.detail and str(renamed) == renamed.detail


def test_the_whole_endpoint_renames_nothing():
    error = ToolForbidden("calc__add")
    assert EVERY_TOOL.renamed(error, "calc__add").detail == "This API key may not use the tool 'calc__add'."
