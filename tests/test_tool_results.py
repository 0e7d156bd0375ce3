"""What a tool returns becomes its result: each result form, its published ``outputSchema``, and
the check of ``structuredContent`` against it. A tool that returns something else gets a tool
error naming it (``isError``), and one log line says where, never what."""

from __future__ import annotations

import dataclasses
import enum
import typing
from dataclasses import dataclass, field
from typing import Any, TypedDict

import jsonschema
import pytest
from marshmallow import Schema, fields
from structlog.testing import capture_logs

from skywarden.server.plugins.registry import register_tool, registry_of
from skywarden.server.principal import Principal
from skywarden.server.testing import running_app
from skywarden.tools import Context, ToolResult, text_content, tool
from tests.support.logs import SECRETS
from tests.support.pipelines import pipeline_of

CALLER = Principal("key", "key_results", "results", frozenset({"*"}))
HIDDEN = "value-that-must-never-be-logged"


@dataclass
class Thing:
    name: str
    size: int | None = None
    tags: list[str] = field(default_factory=list)


class Colour(enum.Enum):
    RED = "red"


class Totals(TypedDict):
    count: int
    mean: float


class TotalsSchema(Schema):
    count = fields.Integer(required=True)


async def outcome_of(spec: Any, arguments: dict | None = None):
    pipeline = pipeline_of(registry_of([spec], "t"), None)
    return (await pipeline.call(spec.name, arguments or {}, CALLER)).result


def returning(value: Any, annotation: Any) -> Any:
    """A tool named ``returns`` that returns ``value``, annotated ``annotation`` (None: unannotated)."""

    async def returns(ctx: Context):
        return value

    returns.__annotations__ = {"ctx": Context} | ({"return": annotation} if annotation is not None else {})
    returns.__doc__ = "Returns what the test gives."
    return tool(returns)


# --- Each result form ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "value", "structured", "text"),
    [
        (int, 3, {"result": 3}, "3"),
        (float, 1.5, {"result": 1.5}, "1.5"),
        (bool, False, {"result": False}, "false"),
        (list[int], [1, 2], {"result": [1, 2]}, "[1,2]"),
        (dict[str, int], {"a": 1}, {"result": {"a": 1}}, '{"a":1}'),
        (Colour, Colour.RED, {"result": "red"}, '"red"'),
        (int | None, None, {"result": None}, "null"),
        (list[Thing], [Thing("a")], {"result": [{"name": "a", "size": None, "tags": []}]}, None),
        (Thing, Thing("a", 2, ["x"]), {"name": "a", "size": 2, "tags": ["x"]}, '{"name":"a","size":2,"tags":["x"]}'),
        (Thing, {"name": "a"}, {"name": "a", "size": None, "tags": []}, None),  # a dict of its shape
        (Totals, {"count": 2, "mean": 1.5}, {"count": 2, "mean": 1.5}, '{"count":2,"mean":1.5}'),
        (TotalsSchema, {"count": 2}, {"count": 2}, '{"count":2}'),
    ],
)
async def test_a_value_becomes_structured_content_with_its_json_as_text(annotation, value, structured, text):
    result = await outcome_of(returning(value, annotation))
    assert not result.is_error and result.structured == structured
    [block] = result.content
    assert block["type"] == "text" and (text is None or block["text"] == text)


@pytest.mark.parametrize("annotation", [str, None, ToolResult])
async def test_text_and_untyped_tools_have_no_output_schema(annotation):
    spec = returning("plain words", annotation)
    assert register_tool(spec, "t").output_schema is None
    result = await outcome_of(spec)
    assert result.content == [text_content("plain words")] and result.structured is None


async def test_an_untyped_tool_may_return_a_tool_result_as_it_is():
    written = ToolResult(content=[text_content("mine")], structured={"anything": 1})
    assert await outcome_of(returning(written, None)) is written


async def test_a_tool_result_of_a_type_keeps_the_tools_own_content():
    for structured in (Thing("a"), {"name": "a"}):
        result = await outcome_of(
            returning(ToolResult(content=[text_content("A thing")], structured=structured), ToolResult[Thing])
        )
        assert result.content == [text_content("A thing")]
        assert result.structured == {"name": "a", "size": None, "tags": []}


async def test_a_tool_result_without_content_gets_its_json_as_text():
    result = await outcome_of(returning(ToolResult(content=[], structured=Thing("a")), ToolResult[Thing]))
    assert result.content == [text_content('{"name":"a","size":null,"tags":[]}')]


async def test_result_declares_the_type_when_the_annotation_does_not():
    @tool(result=Thing)
    async def declared(ctx: Context):
        """Declared by result=."""
        return Thing("b")

    assert register_tool(declared, "t").output_schema["required"] == ["name", "size", "tags"]
    assert (await outcome_of(declared)).structured == {"name": "b", "size": None, "tags": []}


def test_the_output_schema_is_published_from_the_type():
    assert register_tool(returning(1, int), "t").output_schema == {
        "type": "object",
        "properties": {"result": {"type": "integer"}},
        "required": ["result"],
        "additionalProperties": False,
    }
    thing = register_tool(returning(Thing("a"), Thing), "t").output_schema
    assert thing == {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "size": {"type": ["integer", "null"]},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["name", "size", "tags"],  # a dataclass always has every field
        "additionalProperties": False,
    }
    for schema in (thing, register_tool(returning([], list[Thing]), "t").output_schema):
        jsonschema.Draft202012Validator.check_schema(schema)


# --- A result that does not match ---------------------------------------------------------------

MISMATCHES = [
    (Thing, Thing(name=[HIDDEN]), "/name"),  # type: ignore[arg-type]
    (Thing, Thing("a", size=HIDDEN), "/size"),  # type: ignore[arg-type]
    (Thing, {"size": 1}, ""),  # name missing
    (Thing, None, ""),
    (Thing, HIDDEN, ""),
    (int, HIDDEN, "/result"),
    (int, True, "/result"),
    (list[int], HIDDEN, "/result"),
    (list[int], [1, HIDDEN], "/result/1"),
    (Totals, {"count": HIDDEN, "mean": 1.0}, "/count"),
    (ToolResult[Thing], ToolResult(content=[text_content("no data")]), ""),
]


@pytest.mark.parametrize(("annotation", "value", "path"), MISMATCHES)
async def test_a_result_that_does_not_match_is_a_tool_error_logged_without_its_values(annotation, value, path):
    with capture_logs() as logs:
        result = await outcome_of(returning(value, annotation))
    assert result.is_error and result.structured is None
    assert result.content == [text_content("The tool returns returned a result that does not match its output schema.")]
    [line] = [entry for entry in logs if entry["event"] == "tool result does not match its output schema"]
    assert line["log_level"] == "error" and line["tool"] == "returns"
    assert any(failure["instance_path"] == path for failure in line["failures"])
    assert HIDDEN not in repr(logs)


async def test_keys_a_typed_result_does_not_declare_are_left_out():
    result = await outcome_of(returning({"count": 1, "mean": 1.0, "extra": HIDDEN}, Totals))
    assert not result.is_error and result.structured == {"count": 1, "mean": 1.0}


async def test_a_value_that_is_not_a_result_is_a_tool_error():
    with capture_logs() as logs:
        result = await outcome_of(returning({"not": "text"}, str))
    assert result.is_error and result.content == [text_content("The tool returns returned an invalid result.")]
    assert [e["returned"] for e in logs if e["event"] == "tool returned an unexpected value"] == ["dict"]


async def test_an_error_result_is_passed_on_unchecked():
    failed = ToolResult(content=[text_content("upstream said no")], is_error=True)
    assert await outcome_of(returning(failed, ToolResult[Thing])) is failed


# --- Class-form tools: their Result is held to as well ------------------------------------------


class ThingSchema(Schema):
    name = fields.String(required=True)
    size = fields.Integer(allow_none=True)


class NoArguments(Schema):
    pass


def class_tool(returned: Any, result: Any = ThingSchema) -> Any:
    class Classic:
        name = "classic"
        description = "A class-form tool."
        Arguments = NoArguments
        Result = result

        async def call(self, arguments: dict, context: Any) -> Any:
            return returned

    return Classic()


@pytest.mark.parametrize(
    "returned",
    [
        ToolResult(content=[text_content("x")], structured={"name": 5}),
        ToolResult(content=[text_content("x")], structured={"size": 1}),
        ToolResult(content=[text_content("x")]),  # declared a Result, gave none
        ToolResult(content=[text_content("x")], structured=[{"name": "a"}]),
    ],
)
async def test_a_class_form_result_that_does_not_match_its_result_schema_is_a_tool_error(returned):
    with capture_logs() as logs:
        result = await outcome_of(class_tool(returned))
    assert result.is_error
    assert result.content == [text_content("The tool classic returned a result that does not match its output schema.")]
    assert [e["tool"] for e in logs if e["event"] == "tool result does not match its output schema"] == ["classic"]


async def test_a_class_form_result_that_matches_is_sent_as_it_is():
    result = await outcome_of(
        class_tool(ToolResult(content=[text_content("A")], structured={"name": "a", "size": None}))
    )
    assert not result.is_error and result.structured == {"name": "a", "size": None}
    bare = await outcome_of(class_tool(ToolResult(content=[], structured={"name": "a"})))
    assert bare.content == [text_content('{"name":"a"}')]  # structured data and no text: its JSON


async def test_a_class_form_tool_without_a_result_schema_keeps_its_old_contract():
    assert (await outcome_of(class_tool("words", None))).content == [text_content("words")]
    odd = await outcome_of(class_tool(ToolResult(content=[], structured={"any": "thing"}), None))
    assert not odd.is_error and odd.structured == {"any": "thing"}
    assert (await outcome_of(class_tool({"not": "a result"}, None))).is_error


# --- Through both doors -------------------------------------------------------------------------


@tool
async def thing(ctx: Context, name: str) -> Thing:
    """A thing of that name."""
    return Thing(name=name) if name != "broken" else Thing(name=None)  # type: ignore[arg-type]


@tool
async def words(ctx: Context, text: str) -> str:
    """Echoes its text."""
    return text


async def test_both_doors_publish_the_output_schema_and_send_structured_content():
    async with running_app(tools=[thing, words]) as app:
        key = await app.create_key()
        SECRETS.add(key)
        status, listed = await app.list_tools(key)
        described = {t["name"]: t for t in listed["tools"]}
        assert status == 200 and "outputSchema" not in described["words"]
        assert described["thing"]["outputSchema"]["required"] == ["name", "size", "tags"]
        status, body = await app.call_tool("thing", {"name": "a"}, key)
        assert status == 200 and body["structuredContent"] == {"name": "a", "size": None, "tags": []}
        jsonschema.validate(body["structuredContent"], described["thing"]["outputSchema"])
        status, answer = await app.call_tool_mcp("thing", {"name": "a"}, key)
        assert answer["result"]["structuredContent"] == body["structuredContent"]
        assert answer["result"]["content"] == body["content"]
        status, body = await app.call_tool("thing", {"name": "broken"}, key)
        assert status == 200 and body["isError"] is True and "structuredContent" not in body
        status, answer = await app.call_tool_mcp("thing", {"name": "broken"}, key)
        assert status == 200 and answer["result"]["isError"] is True
        assert "does not match its output schema" in answer["result"]["content"][0]["text"]


# --- The plain dump of a result dataclass ----------------------------------------------------------


class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclasses.dataclass
class Leaf:
    name: str
    weight: float | None = None


@dataclasses.dataclass
class Tree:
    leaves: list[Leaf]
    by_name: dict[str, Leaf]
    colour: Colour
    best: Leaf | None
    kind: typing.Literal["oak", "elm"]
    tags: typing.Annotated[list[str], "labels"]


TREE = Tree(
    leaves=[Leaf("a", 1.5), Leaf("b")],
    by_name={"a": Leaf("a", 2)},
    colour=Colour.BLUE,
    best=None,
    kind="elm",
    tags=["x"],
)


def test_a_result_dataclass_is_written_as_marshmallow_would_write_it():
    from skywarden.server.plugins.plain_dump import plain_dumper
    from skywarden.server.plugins.results import declared_result

    plan = declared_result(Tree, "tree")
    dump = plain_dumper(Tree)
    assert dump is not None and dump(TREE) == plan.schema.dump(TREE)
    assert dump(dataclasses.replace(TREE, best=Leaf("c"))) == plan.schema.dump(
        dataclasses.replace(TREE, best=Leaf("c"))
    )


def test_a_type_the_plain_dump_does_not_know_keeps_marshmallow():

    from skywarden.server.plugins.plain_dump import plain_dumper

    @dataclasses.dataclass
    class Whole:
        at: typing.Annotated[str, fields.String()]

    class Shape(typing.TypedDict):
        name: str

    @dataclasses.dataclass
    class Node:
        children: list[Node]

    assert plain_dumper(Whole) is None and plain_dumper(Shape) is None and plain_dumper(Node) is None


async def test_a_result_dataclass_field_of_the_wrong_type_is_refused_not_converted():
    @tool
    async def bad_leaf() -> Leaf:
        """A leaf whose name is a number."""
        return Leaf(7)  # type: ignore[arg-type]  # what the test is about

    async with running_app(tools=[bad_leaf]) as app:
        key = await app.create_key()
        status, body = await app.call_tool("bad_leaf", {}, key)
    assert status == 200 and body["isError"] is True
    assert "does not match its output schema" in body["content"][0]["text"]
