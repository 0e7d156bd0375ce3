"""Plugin API 2: what ``@tool`` and ``Plugin`` declare becomes registered tools. The arguments'
schema comes from the signature; calls are validated the same at both doors and arrive typed;
a malformed declaration is refused when it loads, naming the tool and the parameter."""

from __future__ import annotations

import dataclasses
import enum
import inspect
import math
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired, Optional, TypedDict

import jsonschema_rs
import marshmallow
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from marshmallow import Schema, fields, validate
from structlog.testing import capture_logs

from skywarden.server.calls.pipeline import InvalidArguments
from skywarden.server.plugins.registry import (
    DuplicateToolError,
    InvalidToolError,
    discover_tools,
    load_object,
    register_tool,
    registry_of,
)
from skywarden.server.principal import Principal
from skywarden.server.testing import running_app
from skywarden.tools import Context, Plugin, ToolSpec, tool
from tests.support import declared_samples as samples
from tests.support.json_strategies import json_values
from tests.support.logs import SECRETS
from tests.support.pipelines import pipeline_of
from tests.support.plugin_samples import fake_distribution

CALLER = Principal("key", "key_api2", "api2", frozenset({"*"}))


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    ONE = 1
    TWO = 2


@dataclass
class Point:
    x: float
    y: float = 0.0


@dataclass
class Node:  # refers to itself: refused
    child: Node | None = None


class Pair(TypedDict):
    a: int
    b: NotRequired[str]


# --- Declaring ----------------------------------------------------------------------------------


async def test_the_decorator_forms_declare_tools_that_stay_plain_functions():
    @tool
    async def bare(ctx: Context, x: int) -> int:
        """Bare."""
        return x

    @tool(name="renamed", title="Renamed", description="Given.", cost=2, scopes=["s"], cache_ttl=5)
    async def with_options(x: int) -> int:
        return x

    plugin = Plugin("things")

    @plugin.tool
    async def member(ctx: Context, x: int) -> int:
        """Member."""
        return x

    @plugin.tool(cost=3)
    async def costly_member(ctx: Context, x: int) -> int:
        """Costly member."""
        return x

    assert isinstance(bare, ToolSpec) and await bare(None, 4) == 4  # still callable in a unit test
    assert plugin.tools == [member, costly_member]
    tools = {t.name: t for t in (register_tool(s, "t") for s in (bare, with_options, member, costly_member))}
    assert tools["bare"].description == "Bare." and tools["bare"].title == "bare" and tools["bare"].plugin == "bare"
    renamed = tools["renamed"]
    assert (renamed.title, renamed.description, renamed.cost, renamed.scopes, renamed.cache_ttl) == (
        "Renamed",
        "Given.",
        2,
        ("s",),
        5.0,
    )
    assert renamed.grants == {"*", "renamed", "s"}
    assert tools["member"].plugin == tools["costly_member"].plugin == "things" and tools["costly_member"].cost == 3


def test_the_description_is_the_cleaned_docstring():
    @tool
    async def documented(ctx: Context) -> str:
        """First line.

        Detail:
            indented.
        """
        return ""

    assert register_tool(documented, "t").description == "First line.\n\nDetail:\n    indented."


def test_a_plugin_loads_with_all_its_tools_and_what_they_share():
    registry = registry_of([samples.acme], "acme-tools 2.0")
    assert registry.names() == ["describe", "lookup"]
    [info] = registry.plugins
    assert (info.name, info.title, info.distribution) == ("acme", "Acme", "acme-tools 2.0")
    assert info.user_agent == "acme-tools/2.0"
    assert info.settings is samples.AcmeSettings
    assert info.tools == ("lookup", "describe")
    assert info.startup == (samples.connect,) and info.shutdown == (samples.disconnect,)
    assert {t.plugin for t in registry} == {"acme"}
    assert registry.grantable_names() == ["acme", "describe", "lookup"]


def test_a_standalone_tool_is_a_plugin_of_its_own():
    registry = registry_of([samples.word_count], "words 1.0")
    [info] = registry.plugins
    assert (info.name, info.tools, info.settings) == ("word_count", ("word_count",), None)
    assert info.distribution == "words 1.0"


def test_one_tool_of_a_plugin_given_alone_keeps_its_plugin():
    registry = registry_of([samples.lookup], "t")
    [info] = registry.plugins
    assert info.name == "acme" and info.settings is samples.AcmeSettings and info.tools == ("lookup",)


def test_entry_points_may_name_a_plugin_a_tool_or_a_class_form_tool(tmp_path):
    fake_distribution(tmp_path, "acme-tools", {"acme": "tests.support.declared_samples:acme"})
    fake_distribution(tmp_path, "words", {"word_count": "tests.support.declared_samples:word_count"})
    fake_distribution(tmp_path, "acme-echo", {"echo": "tests.support.plugin_samples:echo"})
    registry = discover_tools(paths=[str(tmp_path)])
    assert registry.names() == ["describe", "echo", "lookup", "word_count"]
    assert [p.name for p in registry.plugins] == ["acme", "echo", "word_count"]
    assert registry.get("lookup").distribution == "acme-tools 1.0"
    assert registry.get("word_count").distribution == "words 1.0"


def test_two_plugins_of_one_name_stop_start_up_naming_both(tmp_path):
    fake_distribution(tmp_path, "acme-one", {"acme": "tests.support.declared_samples:acme"})
    fake_distribution(tmp_path, "acme-two", {"acme": "tests.support.declared_samples:other_acme"})
    with pytest.raises(DuplicateToolError) as info:
        discover_tools(paths=[str(tmp_path)])
    assert "plugin name 'acme'" in str(info.value)
    assert "acme-one 1.0" in str(info.value) and "acme-two 1.0" in str(info.value)


def test_two_plugins_of_one_name_in_hand_are_refused_too():
    with pytest.raises(DuplicateToolError, match="plugin name 'acme'"):
        registry_of([samples.acme, samples.other_acme], "t")


@pytest.mark.parametrize(
    ("target", "fragment"),
    [
        ("tests.support.declared_samples:empty", "plugin 'empty' declares no tools"),
        ("tests.support.declared_samples:not_async", "tool 'not_async': the function must be async"),
    ],
)
def test_a_broken_plugin_is_skipped_with_a_log_line(tmp_path, target, fragment):
    fake_distribution(tmp_path, "acme-broken", {"broken": target})
    fake_distribution(tmp_path, "words", {"word_count": "tests.support.declared_samples:word_count"})
    with capture_logs() as logs:
        registry = discover_tools(paths=[str(tmp_path)])
    assert registry.names() == ["word_count"]
    [line] = [entry for entry in logs if entry["event"] == "plugin skipped"]
    assert line["distribution"] == "acme-broken 1.0" and fragment in line["error"]


# --- Arguments from the signature, per type -----------------------------------------------------


def tool_taking(annotation: Any, default: Any = inspect.Parameter.empty) -> ToolSpec:
    """A tool whose one argument ``value`` is annotated ``annotation``."""

    async def take(ctx: Context, value):  # annotated below: the annotation is the test's parameter
        return type(value).__name__

    take.__annotations__ = {"ctx": Context, "value": annotation, "return": str}
    if default is not inspect.Parameter.empty:
        take.__defaults__ = (default,)
    take.__doc__ = "Takes one value."
    return tool(take)


ACCEPTED = [  # (annotation, JSON given, what the function gets)
    (str, "a", "a"),
    (int, 3, 3),
    (int, 3.0, 3),
    (float, 1.5, 1.5),
    (float, 2, 2.0),
    (bool, False, False),
    (list[int], [1, 2], [1, 2]),
    (dict[str, float], {"a": 1}, {"a": 1.0}),
    (Literal["a", "b", 3], "b", "b"),
    (Literal["a", "b", 3], 3.0, 3),
    (Literal[1, True], True, True),
    (Color, "blue", Color.BLUE),
    (Level, 2, Level.TWO),
    (int | None, None, None),
    (Optional[Color], None, None),  # noqa: UP045  # the other spelling of T | None
    (Point, {"x": 1}, Point(1.0, 0.0)),
    (list[Point], [{"x": 1, "y": 2}], [Point(1.0, 2.0)]),
    (Pair, {"a": 1}, {"a": 1}),
    (Annotated[int, "How many", validate.Range(min=1)], 1, 1),
    (Annotated[str, fields.Email()], "a@b.example", "a@b.example"),
]


@pytest.mark.parametrize(("annotation", "given", "expected"), ACCEPTED)
def test_each_supported_type_arrives_typed(annotation, given, expected):
    loaded = register_tool(tool_taking(annotation), "t").arguments_schema.load({"value": given})
    assert loaded == {"value": expected} and type(loaded["value"]) is type(expected)


REFUSED = [  # (annotation, JSON given, a fragment of the error)
    (str, 1, "Not a valid string"),
    (str, None, "may not be null"),
    (int, "3", "Not a valid integer"),
    (int, True, "Not a valid integer"),
    (int, 3.5, "Not a valid integer"),
    (float, "1.5", "Not a valid number"),
    (float, True, "Not a valid number"),
    (float, math.nan, "Special numeric values"),
    (float, math.inf, "Special numeric values"),
    (bool, 1, "Not a valid boolean"),
    (bool, "true", "Not a valid boolean"),
    (list[int], [1, "2"], "Not a valid integer"),
    (list[int], "12", "Not a valid list"),
    (dict[str, float], {"a": "x"}, "Not a valid number"),
    (dict[str, float], [1], "Not a valid mapping"),
    (Literal["a", "b", 3], "c", "Must be one of: 'a', 'b', 3."),
    (Literal[1, 2], True, "Must be one of"),
    (Color, "RED", "Must be one of: red, blue"),
    (Level, "2", "Not a valid integer"),
    (Level, True, "Not a valid integer"),
    (Point, {"x": "a"}, "Not a valid number"),
    (Point, {"x": 1, "z": 2}, "Unknown field"),
    (Point, {}, "Missing data"),
    (Point, 5, "Invalid input type"),
    (Pair, {"b": "x"}, "Missing data"),
    (Pair, {"a": 1, "c": 1}, "Unknown field"),
    (Annotated[int, validate.Range(min=1)], 0, "greater than or equal to 1"),
    (Annotated[str, fields.Email()], "nope", "Not a valid email address"),
]


@pytest.mark.parametrize(("annotation", "given", "fragment"), REFUSED)
def test_each_supported_type_refuses_other_json(annotation, given, fragment):
    schema = register_tool(tool_taking(annotation), "t").arguments_schema
    with pytest.raises(marshmallow.ValidationError) as info:
        schema.load({"value": given})
    assert fragment in str(info.value.messages)


@pytest.mark.parametrize(
    ("annotation", "published"),
    [
        (str, {"type": "string"}),
        (int, {"type": "integer"}),
        (float, {"type": "number"}),
        (bool, {"type": "boolean"}),
        (list[int], {"type": "array", "items": {"type": "integer"}}),
        (dict[str, bool], {"type": "object", "additionalProperties": {"type": "boolean"}}),
        (Literal["a", 3], {"enum": ["a", 3]}),
        (Literal[1, True], {"enum": [1, True]}),  # two values to JSON, though equal in Python
        (Color, {"type": "string", "enum": ["red", "blue"]}),
        (Level, {"type": "integer", "enum": [1, 2]}),
        (int | None, {"type": ["integer", "null"]}),
        (Color | None, {"type": ["string", "null"], "enum": ["red", "blue", None]}),
        (
            Point,
            {
                "type": "object",
                "properties": {"x": {"type": "number"}, "y": {"type": "number", "default": 0.0}},
                "required": ["x"],
                "additionalProperties": False,
            },
        ),
        (
            Annotated[int, "How many", validate.Range(min=1)],
            {"type": "integer", "minimum": 1, "description": "How many"},
        ),
        (Annotated[float, validate.Range(min=0, min_inclusive=False)], {"type": "number", "exclusiveMinimum": 0}),
    ],
)
def test_the_input_schema_is_published_from_the_same_source(annotation, published):
    schema = register_tool(tool_taking(annotation), "t").input_schema
    assert schema["properties"]["value"] == published
    assert schema["required"] == ["value"] and schema["additionalProperties"] is False


def test_a_default_makes_an_argument_optional_and_each_call_gets_its_own():
    @tool
    async def defaults(ctx: Context, a: int, b: str = "x", c: list[int] = [], d: Color = Color.RED) -> str:  # noqa: B006
        """Defaults."""
        return ""

    registered = register_tool(defaults, "t")
    assert registered.input_schema["required"] == ["a"]
    assert registered.input_schema["properties"]["c"]["default"] == []
    assert registered.input_schema["properties"]["d"]["default"] == "red"
    first = registered.arguments_schema.load({"a": 1})
    assert first == {"a": 1, "b": "x", "c": [], "d": Color.RED}
    first["c"].append(9)
    assert registered.arguments_schema.load({"a": 1})["c"] == []


def test_the_context_may_be_anywhere_or_absent():
    @tool
    async def context_last(text: str, ctx: Context[Any]) -> str:
        """Context last."""
        return text

    @tool
    async def no_context(text: str) -> str:
        """No context."""
        return text

    for spec in (context_last, no_context):
        assert list(register_tool(spec, "t").input_schema["properties"]) == ["text"]


def test_an_arguments_schema_class_is_used_as_it_is():
    class WordArguments(Schema):
        text = fields.String(required=True, validate=validate.Length(max=5))
        limit = fields.Integer(load_default=10)

    @tool(arguments=WordArguments)
    async def words(ctx: Context, text, limit):
        """Words."""
        return text

    registered = register_tool(words, "t")
    assert registered.arguments_schema.load({"text": "abc"}) == {"text": "abc", "limit": 10}
    assert not registered.pure_arguments  # its validators are its author's: validated every time
    assert registered.input_schema["properties"]["text"]["maxLength"] == 5


def test_a_derived_schema_is_pure_unless_a_validator_is_its_authors():
    class Even(validate.Validator):
        def __call__(self, value):
            if value % 2:
                raise marshmallow.ValidationError("odd")
            return value

    assert register_tool(tool_taking(Annotated[int, validate.Range(min=0)]), "t").pure_arguments
    assert not register_tool(tool_taking(Annotated[int, Even()]), "t").pure_arguments


# --- Malformed declarations, refused when they load ---------------------------------------------


def _declared(source: str) -> Any:
    """The object the code in ``source`` binds to ``obj``."""
    scope: dict[str, Any] = {**globals(), "dataclasses": dataclasses}
    exec(source, scope)
    return scope["obj"]


MALFORMED = [
    ("@tool\nasync def f(ctx: Context, x): 'Doc.'", "tool 'f': parameter 'x' needs a type annotation"),
    ("@tool\nasync def f(ctx: Context, *args: int): 'Doc.'", "tool 'f': parameter 'args': *args and **kwargs"),
    ("@tool\nasync def f(ctx: Context, **rest: int): 'Doc.'", "tool 'f': parameter 'rest': *args and **kwargs"),
    ("@tool\nasync def f(x: int, /): 'Doc.'", "tool 'f': parameter 'x' is positional-only"),
    ("@tool\nasync def f(x: set[int]) -> str: 'Doc.'", "tool 'f': parameter 'x': set[int] is not supported"),
    ("@tool\nasync def f(x: int | str) -> str: 'Doc.'", "tool 'f': parameter 'x': int | str: only T | None"),
    ("@tool\nasync def f(x: dict[int, str]) -> str: 'Doc.'", "parameter 'x': dict needs string keys"),
    ("@tool\nasync def f(x: list) -> str: 'Doc.'", "parameter 'x': list needs its item type"),
    ("@tool\nasync def f(x: Any) -> str: 'Doc.'", "parameter 'x': Any is not supported"),
    ("@tool\nasync def f(x: tuple[int, int]) -> str: 'Doc.'", "parameter 'x': tuple[int, int] is not supported"),
    ("@tool\nasync def f(x: bytes) -> str: 'Doc.'", "parameter 'x': bytes is not supported"),
    ("@tool\nasync def f(a: Context, b: Context) -> str: 'Doc.'", "parameters 'a' and 'b' both take the Context"),
    ("@tool\nasync def f(x: int) -> str: pass", "tool 'f' needs a non-empty description"),
    ("@tool(description='  ')\nasync def f(x: int) -> str: 'Doc.'", "tool 'f' needs a non-empty description"),
    ("@tool\nasync def f(x: Annotated[int, 42]) -> str: 'Doc.'", "parameter 'x': Annotated extra int is not supported"),
    (
        "@tool\nasync def f(x: Annotated[int, fields.Integer(), fields.Integer()]) -> str: 'Doc.'",
        "at most one marshmallow field",
    ),
    ("@tool\nasync def f(x: Literal[1.5]) -> str: 'Doc.'", "parameter 'x': Literal values must be"),
    (
        "class Mixed(enum.Enum):\n A = 1\n B = 'b'\n@tool\nasync def f(x: Mixed) -> str: 'Doc.'",
        "parameter 'x': Enum Mixed needs all-string or all-integer values",
    ),
    ("@tool\nasync def f(x: Node) -> str: 'Doc.'", "parameter 'x': Node.child: Node refers to itself"),
    ("@tool\nasync def f(x: 'Missing') -> str: 'Doc.'", "tool 'f': its annotations cannot be resolved: NameError"),
    (
        "class A(Schema):\n x = fields.Int()\n y = fields.Int()\n@tool(arguments=A)\nasync def f(x): 'Doc.'",
        "tool 'f': arguments A has fields the function does not take: y",
    ),
    (
        "class A(Schema):\n x = fields.Int()\n@tool(arguments=A)\nasync def f(x, y): 'Doc.'",
        "tool 'f': arguments A lacks the parameters: y",
    ),
    ("@tool(arguments=dict)\nasync def f(x: int): 'Doc.'", "tool 'f': arguments must be a marshmallow Schema class"),
    ("@tool\nasync def f(x: int) -> None: 'Doc.'", "tool 'f': a tool returns something"),
    ("@tool\nasync def f(x: int) -> set[int]: 'Doc.'", "tool 'f': result: set[int] is not supported"),
    ("@tool(result=frozenset)\nasync def f(x: int): 'Doc.'", "tool 'f': result: frozenset is not supported"),
    ("@tool(cost=0)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cost must be a positive integer"),
    ("@tool(cost=True)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cost must be a positive integer"),
    ("@tool(scopes=[3])\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': scope 3 must be"),
    ("@tool(scopes=['a b'])\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': scope 'a b' must be"),
    ("@tool(scopes=['*'])\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': scope '*' must be"),
    ("@tool(cache_ttl=0)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cache_ttl must be a positive number"),
    ("@tool(cache_ttl=-1)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cache_ttl must be a positive number"),
    ("@tool(cache_ttl='60')\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cache_ttl must be a positive number"),
    ("@tool(cache_ttl=True)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cache_ttl must be a positive number"),
    ("@tool(cache_ttl=math.inf)\nasync def f(x: int) -> str: 'Doc.'", "tool 'f': cache_ttl must be a positive number"),
    (
        "@tool(annotations={'readonly': True})\nasync def f(x: int) -> str: 'Doc.'",
        "tool 'f': unknown annotation 'readonly'",
    ),
    (
        "@tool(annotations={'readOnlyHint': 'yes'})\nasync def f(x: int) -> str: 'Doc.'",
        "tool 'f': annotation 'readOnlyHint' must be a bool",
    ),
    ("@tool(name='a b')\nasync def f(x: int) -> str: 'Doc.'", "name 'a b' must be 1-128 characters"),
    ("obj = Plugin('Acme')\n@obj.tool\nasync def f(x: int) -> str: 'Doc.'", "plugin name 'Acme' must be"),
    (
        "obj = Plugin('acme', settings=dict)\n@obj.tool\nasync def f(x: int) -> str: 'Doc.'",
        "plugin 'acme': settings must be a dataclass",
    ),
    (
        "obj = Plugin('acme')\n@obj.tool\nasync def f(x: int) -> str: 'Doc.'\n@obj.on_startup\ndef up(ctx): pass",
        "plugin 'acme': start-up hook",
    ),
]


def test_scopes_given_as_one_string_are_refused_where_they_are_declared():
    with pytest.raises(TypeError, match=r"scopes must be a list of scope names, such as \['acme'\], not a string"):

        @tool(scopes="acme")
        async def one_string(ctx: Context) -> str:
            """One string."""
            return ""


@pytest.mark.parametrize(("source", "fragment"), MALFORMED)
def test_a_malformed_declaration_is_refused_naming_what_is_wrong(source, fragment):
    if "obj =" not in source:
        source += "\nobj = f"
    with pytest.raises(InvalidToolError) as info:
        load_object(_declared(source), "t")
    assert fragment in str(info.value)
    assert "Traceback" not in str(info.value)


# --- Through both doors -------------------------------------------------------------------------


@tool
async def typed(
    ctx: Context,
    count: int,
    ratio: float,
    flag: bool,
    colour: Color,
    point: Point,
    tags: list[str] = [],  # noqa: B006  # each call gets its own copy
    note: str | None = None,
) -> dict[str, str]:
    """Says what type each argument arrived as."""
    return {name: type(value).__name__ for name, value in locals().items() if name != "ctx"}


TYPED_GOOD = {"count": 2, "ratio": 1, "flag": True, "colour": "red", "point": {"x": 1}}
TYPED_TYPES = {
    "count": "int",
    "ratio": "float",
    "flag": "bool",
    "colour": "Color",
    "point": "Point",
    "tags": "list",
    "note": "NoneType",
}


@pytest.fixture
async def typed_app():
    async with running_app(tools=[typed]) as app:
        key = await app.create_key(scopes=["typed"])
        SECRETS.add(key)
        yield app, key


async def test_valid_arguments_arrive_typed_with_defaults_through_both_doors(typed_app):
    app, key = typed_app
    status, body = await app.call_tool("typed", TYPED_GOOD, key)
    assert status == 200 and body["isError"] is False
    assert body["structuredContent"] == {"result": TYPED_TYPES}
    status, answer = await app.call_tool_mcp("typed", TYPED_GOOD, key)
    assert status == 200 and answer["result"]["structuredContent"] == {"result": TYPED_TYPES}


@pytest.mark.parametrize(
    ("change", "field", "fragment"),
    [
        ({"count": "2"}, "count", "Not a valid integer"),
        ({"flag": 1}, "flag", "Not a valid boolean"),
        ({"colour": "green"}, "colour", "Must be one of: red, blue"),
        ({"point": {"x": 1, "z": 0}}, "point", "Unknown field"),
        ({"tags": ["a", 1]}, "tags", "Not a valid string"),
        ({"extra": 1}, "extra", "Unknown field"),
        ({"count": None}, "count", "may not be null"),
    ],
)
async def test_invalid_arguments_are_refused_the_same_at_both_doors(typed_app, change, field, fragment):
    app, key = typed_app
    arguments = {**TYPED_GOOD, **change}
    status, body = await app.call_tool("typed", arguments, key)
    assert status == 422 and body["title"]
    assert fragment in " ".join(" ".join(e["messages"]) for e in body["errors"] if e["field"].startswith(field))
    status, answer = await app.call_tool_mcp("typed", arguments, key)
    assert status == 200 and answer["result"]["isError"] is True
    assert answer["result"]["content"][0]["text"].startswith("Invalid arguments for typed:")
    assert fragment in answer["result"]["content"][0]["text"]


async def test_a_missing_argument_is_refused_at_both_doors(typed_app):
    app, key = typed_app
    status, body = await app.call_tool("typed", {"count": 1}, key)
    assert status == 422 and {e["field"] for e in body["errors"]} == {"ratio", "flag", "colour", "point"}
    status, answer = await app.call_tool_mcp("typed", {"count": 1}, key)
    assert answer["result"]["isError"] is True and "Missing data" in answer["result"]["content"][0]["text"]


async def test_the_published_schemas_and_annotations_are_listed(typed_app):
    app, key = typed_app
    status, listed = await app.list_tools(key)
    assert status == 200
    [described] = listed["tools"]
    assert described["inputSchema"]["required"] == ["colour", "count", "flag", "point", "ratio"]
    assert described["inputSchema"]["additionalProperties"] is False
    assert described["outputSchema"]["properties"]["result"]["type"] == "object"
    async with running_app(tools=[samples.acme]) as acme:
        acme_key = await acme.create_key()
        SECRETS.add(acme_key)
        _, listed = await acme.list_tools(acme_key)
    annotations = {t["name"]: t.get("annotations") for t in listed["tools"]}
    assert annotations == {"describe": None, "lookup": {"readOnlyHint": True}}


# --- Any JSON: a refusal or a call, never a failure ---------------------------------------------


@tool
async def many(
    ctx: Context,
    text: Annotated[str, validate.Length(max=8)],
    count: int,
    ratio: float,
    flag: bool,
    colour: Color,
    level: Level,
    choice: Literal["a", 1, True],
    point: Point,
    pair: Pair,
    numbers: list[int] = [],  # noqa: B006
    table: dict[str, float | None] = {},  # noqa: B006
    maybe: Color | None = None,
) -> str:
    """Takes many kinds of arguments."""
    return "ok"


FUZZ = settings(max_examples=150, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
argument_sets = st.one_of(
    json_values,
    st.dictionaries(st.sampled_from([*inspect.signature(many.function).parameters, "extra"]), json_values),
    st.fixed_dictionaries(
        {
            "text": st.text(max_size=10),
            "count": st.one_of(st.integers(), st.floats()),
            "ratio": st.one_of(st.floats(allow_nan=False, allow_infinity=False), st.integers(), st.booleans()),
            "flag": st.one_of(st.booleans(), st.integers(0, 1)),
            "colour": st.sampled_from(["red", "blue", "RED", 1]),
            "level": st.sampled_from([1, 2, 2.0, 3, "1", True]),
            "choice": st.sampled_from(["a", 1, 1.0, True, "1", False]),
            "point": st.fixed_dictionaries({"x": st.one_of(st.integers(), st.text(max_size=2))}),
            "pair": st.fixed_dictionaries({"a": st.integers()}, optional={"b": json_values}),
        },
        optional={"numbers": json_values, "table": json_values, "maybe": json_values},
    ),
)


@pytest.fixture(scope="module")
def fuzzed():
    registry = registry_of([many], "fuzz")
    return pipeline_of(registry, None), jsonschema_rs.validator_for(registry.get("many").input_schema)


@FUZZ
@given(arguments=argument_sets)
async def test_any_json_is_refused_or_called_as_the_published_schema_says(fuzzed, arguments):
    pipeline, published = fuzzed
    try:
        outcome = await pipeline.call("many", arguments, CALLER)
    except InvalidArguments as exc:
        assert exc.errors and not published.is_valid(arguments if arguments is not None else {})
    else:
        assert not outcome.result.is_error and outcome.result.content[0]["text"] == "ok"
        assert published.is_valid(arguments if arguments is not None else {})


scalar_types = st.sampled_from([str, int, float, bool, Color, Level, Literal["a", 1, True]])
annotations = st.recursive(
    scalar_types,
    lambda inner: st.one_of(
        inner.map(lambda t: list[t]),
        inner.map(lambda t: dict[str, t]),
        inner.map(lambda t: Optional[t]),  # noqa: UP045  # built from a type object
        inner.map(lambda t: dataclasses.make_dataclass("Made", [("inner", t)])),
    ),
    max_leaves=4,
)


@FUZZ
@given(annotation=annotations, value=json_values)
def test_a_schema_derived_from_any_supported_type_refuses_or_loads_as_it_publishes(annotation, value):
    registered = register_tool(tool_taking(annotation), "t")
    published = jsonschema_rs.validator_for(registered.input_schema)
    try:
        registered.arguments_schema.load({"value": value})
    except marshmallow.ValidationError:
        assert not published.is_valid({"value": value})
    else:
        assert published.is_valid({"value": value})


async def test_the_openapi_document_describes_declared_tools_validly(make_client):
    from openapi_spec_validator import validate as validate_openapi

    client = await make_client(registry=registry_of([typed, many, samples.acme], "t"))
    doc = await (await client.get("/api/docs/openapi.json")).json()
    validate_openapi(doc)
    operation = doc["paths"]["/api/mcp/tools/many"]["post"]
    arguments = operation["requestBody"]["content"]["application/json"]["schema"]
    assert arguments["properties"]["maybe"] == {
        "type": "string",
        "enum": ["red", "blue", None],
        "nullable": True,
        "default": None,
    }
    answer = doc["paths"]["/api/mcp/tools/lookup"]["post"]["responses"]["200"]["content"]["application/json"]
    structured = answer["schema"]["allOf"][1]["properties"]["structuredContent"]
    assert structured["required"] == ["name", "size"]
    assert structured["properties"]["size"] == {"type": "integer", "nullable": True}
