"""The public OpenAPI document with upstream tools in it (``openapi_upstream_tools``): an upstream
writes those tools' schemas, so whatever shape they take, the document stays whole, valid, small
enough and pointing only inside itself, for every reader."""

from __future__ import annotations

import json
from typing import Any

import pytest
from openapi_spec_validator import validate

from skywarden.server.api import openapi
from skywarden.server.appkeys import GATEWAY
from skywarden.server.gateway.tools import plugin_of, registered_tool
from skywarden.server.http.paths import SPEC_PATH
from skywarden.server.upstreams import UpstreamConfig
from skywarden.tools.contract import ToolResult
from tests.support.logs import drain_logs

RAW = UpstreamConfig("raw", "stdio", command="raw-server")
OBJECT = {"type": "object", "properties": {"a": {"type": "integer"}}}


async def never(tool: str, arguments: dict[str, Any], context: Any) -> ToolResult:
    raise AssertionError("not called")


def tool(name: str, input_schema: dict[str, Any] = OBJECT, **fields: Any) -> Any:
    return registered_tool(RAW, "__", {"name": name, "inputSchema": input_schema, **fields}, never)


@pytest.fixture
async def publish(make_client, make_settings):
    """A server documenting upstream tools; ``publish(*tools)`` lists them as the upstream ``raw``
    would, and answers the document as an anonymous reader gets it."""
    client = await make_client(make_settings(openapi_upstream_tools=True))
    gateway = client.server.app[GATEWAY]

    async def listed(*tools: Any) -> dict[str, Any]:
        gateway.registry.replace_plugin(plugin_of(RAW), list(tools))
        gateway.changed()
        answer = await client.anonymous.get(SPEC_PATH)
        assert answer.status == 200, await answer.text()
        return await answer.json()

    listed.client = client  # type: ignore[attr-defined]
    return listed


def operation(doc: dict[str, Any], name: str) -> dict[str, Any]:
    return doc["paths"][f"/api/mcp/tools/{name}"]["post"]


@pytest.mark.parametrize(
    "odd",
    [
        {"type": "object", "properties": {"x": True}},  # a boolean subschema, valid JSON Schema
        {"type": "object", "properties": {"x": False, "y": {"not": True, "items": False}}},
        {"type": ["object", "null"], "required": [], "properties": {"y": {"const": 5, "prefixItems": [True]}}},
        {"type": "object", "properties": {"y": {"if": True, "then": {"minimum": 1}, "examples": [{"z": None}]}}},
        {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"y": {"examples": {"a": 1}}}},
        {"$schema": "http://json-schema.org/draft-04/schema#", "properties": {"y": {"items": [{"type": "string"}]}}},
        {"type": "object", "properties": {"y": {"type": ["string", "integer"], "exclusiveMinimum": 0}}},
    ],
)
async def test_a_schema_of_any_shape_leaves_the_document_whole_for_every_tool(publish, odd):
    doc = await publish(tool("fine"), tool("odd", odd))
    validate(doc)
    assert "/api/mcp/tools/raw__fine" in doc["paths"] and "/api/mcp/tools/get_forecast" in doc["paths"]


async def test_a_tool_whose_operation_cannot_be_made_is_left_out_logged_once_and_noted(publish, monkeypatch):
    made = openapi._tool_body

    def fails_for_one(schema: dict[str, Any]) -> dict[str, Any]:
        if "broken" in json.dumps(schema):
            raise TypeError("a shape nobody foresaw")
        return made(schema)

    monkeypatch.setattr(openapi, "_tool_body", fails_for_one)
    broken = tool("bad", {"type": "object", "properties": {"broken": {}}})
    doc = await publish(tool("fine"), broken)
    again = await publish(tool("fine"), broken, tool("third"))
    for answer in (doc, again):
        validate(answer)
        assert "/api/mcp/tools/raw__bad" not in answer["paths"] and "/api/mcp/tools/raw__fine" in answer["paths"]
        assert "1 tools are not documented here" in answer["info"]["description"]
    assert "/api/mcp/tools/{toolName}" in again["paths"]  # where it is still called
    left_out = [e for e in drain_logs() if e.get("event") == "tool left out of the OpenAPI document"]
    assert [(e["tool"], e["error"]) for e in left_out] == [("raw__bad", "TypeError")]


async def test_local_definitions_move_to_components_and_other_references_are_dropped(publish):
    schema = {
        "type": "object",
        "properties": {
            "item": {"$ref": "#/$defs/Item"},
            "old": {"$ref": "#/definitions/Old:Name"},
            "self": {"$ref": "#"},
            "elsewhere": {"$ref": "#/properties/old"},  # within the schema, but no definition
            "remote": {"x-foo": {"$ref": "https://attacker.example/schema.json"}},
        },
        "$defs": {"Item": {"type": "object", "properties": {"next": {"$ref": "#/$defs/Item"}}}},
        "definitions": {"Old:Name": {"type": "string"}},
    }
    output = {"type": "object", "properties": {"item": {"$ref": "#/$defs/Item"}}}
    output["$defs"] = {"Item": {"type": "integer"}}
    doc = await publish(tool("refs", schema, outputSchema=output))
    validate(doc)
    body = operation(doc, "raw__refs")["requestBody"]["content"]["application/json"]["schema"]
    components = doc["components"]["schemas"]
    assert body["properties"]["item"] == {"$ref": "#/components/schemas/tool.raw__refs.in.Item"}
    assert components["tool.raw__refs.in.Item"]["properties"]["next"] == body["properties"]["item"]
    assert body["properties"]["old"] == {"$ref": "#/components/schemas/tool.raw__refs.in.Old_Name"}
    assert components["tool.raw__refs.in.Old_Name"] == {"type": "string"}
    assert body["properties"]["self"] == body["properties"]["elsewhere"] == {}
    assert "attacker" not in json.dumps(doc) and "$defs" not in json.dumps(body)
    assert components["tool.raw__refs.out.Item"] == {"type": "integer"}  # in and out never mix
    gone = await publish(tool("fine"))
    assert not [name for name in gone["components"]["schemas"] if name.startswith("tool.")]


async def test_the_tool_operations_are_bounded_in_size_each_and_in_all(publish, monkeypatch):
    monkeypatch.setattr(openapi, "MAX_TOOL_BYTES", 200_000)
    wide = {"type": "object", "properties": {f"p{i}": {"type": "string", "description": "d" * 200} for i in range(30)}}
    huge = {"type": "object", "properties": {"p": {"type": "string", "description": "h" * 300_000}}}
    tools = [tool(f"t{i}", wide) for i in range(60)]
    doc = await publish(tool("huge", huge), *tools)
    documented = [path for path in doc["paths"] if path.startswith("/api/mcp/tools/raw__")]
    assert "/api/mcp/tools/raw__huge" not in documented  # over MAX_OPERATION_BYTES alone
    assert 0 < len(documented) < 60
    assert f"{61 - len(documented)} tools are not documented here" in doc["info"]["description"]
    sizes = sum(len(json.dumps(doc["paths"][path], separators=(",", ":"))) for path in documented)
    assert sizes <= 200_000
    validate(doc)


async def test_the_document_is_written_once_per_change_of_tools_not_per_request(publish, monkeypatch):
    await publish(tool("fine"))
    written = []
    dumps = openapi.dumps

    def counted(value: Any) -> bytes:
        written.append(1)
        return dumps(value)

    monkeypatch.setattr(openapi, "dumps", counted)
    for _ in range(5):
        assert (await publish.client.anonymous.get(SPEC_PATH)).status == 200
    assert written == []
    doc = await publish(tool("fine"), tool("more"))
    assert written and "/api/mcp/tools/raw__more" in doc["paths"]


@pytest.mark.parametrize(
    ("schema", "shown"),
    [
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, {"anyOf": [{"type": "string", "nullable": True}]}),
        (
            {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
            {"oneOf": [{"type": "string", "nullable": True}, {"type": "integer"}]},  # null matches one member
        ),
        ({"anyOf": [{"type": "null"}]}, {"anyOf": [{"enum": [None], "nullable": True}]}),  # null, not any value
        ({"allOf": [{"type": "null"}]}, {"allOf": [{"enum": [None], "nullable": True}]}),
        (
            {"type": ["string", "integer", "null"]},
            {"anyOf": [{"type": "string", "nullable": True}, {"type": "integer", "nullable": True}]},
        ),
        (
            {"type": ["string", "integer"], "anyOf": [{"minLength": 1}, {"minimum": 1}]},
            {
                "anyOf": [{"minLength": 1}, {"minimum": 1}],
                "allOf": [{"anyOf": [{"type": "string"}, {"type": "integer"}]}],
            },
        ),
        (
            {"minimum": "5", "maxLength": -1, "readOnly": 3, "title": 7, "default": {"any": "json"}},
            {"default": {"any": "json"}},  # a value of the wrong type for 3.0 is left out
        ),
        ({"type": "null"}, {"nullable": True, "enum": [None]}),
        ({"type": "string", "nullable": True}, {"type": "string", "nullable": True}),
        ({"const": None}, {"enum": [None], "nullable": True}),
        ({"exclusiveMinimum": 5, "minimum": 0}, {"minimum": 5, "exclusiveMinimum": True}),
        ({"minimum": 0, "exclusiveMinimum": 5}, {"minimum": 5, "exclusiveMinimum": True}),
        ({"minimum": 10, "exclusiveMinimum": 5}, {"minimum": 10}),
        ({"maximum": 3, "exclusiveMaximum": 5}, {"maximum": 3}),
        ({"minimum": 1, "exclusiveMinimum": True}, {"minimum": 1, "exclusiveMinimum": True}),  # draft 4's form
        ({"type": ["string", "integer"]}, {"anyOf": [{"type": "string"}, {"type": "integer"}]}),
        ({"type": ["integer", "null"]}, {"type": "integer", "nullable": True}),
    ],
)
def test_what_a_schema_says_is_kept_in_openapi_30s_terms(schema, shown):
    assert openapi.openapi30_schema(schema) == shown


async def test_every_kept_form_makes_a_valid_document(publish):
    forms = [
        {"anyOf": [{"type": "string"}, {"type": "null"}]},
        {"type": "null"},
        {"const": None},
        {"exclusiveMinimum": 5, "minimum": 0},
        {"type": ["string", "integer", "null"]},
        {"anyOf": [{"type": "null"}]},
        {"oneOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
        {"type": ["string", "integer"], "anyOf": [{"minLength": 1}, {"minimum": 1}]},
    ]
    schema = {"type": "object", "properties": {f"p{i}": form for i, form in enumerate(forms)}}
    # draft 7 does not check $defs against its metaschema: values of the wrong type reach the document
    loose = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "$defs": {"X": {"minimum": "5", "readOnly": 3}},
        "properties": {"x": {}},
    }
    validate(await publish(tool("forms", schema), tool("loose", loose)))


async def test_no_tool_s_definition_stands_for_another_s(publish):
    def referring(name: str, definitions: dict[str, Any], key: str = "$defs") -> Any:
        properties = {n: {"$ref": f"#/{key}/{n}"} for n in definitions}
        return tool(name, {"type": "object", "properties": properties, key: definitions})

    doc = await publish(
        referring("a", {"in.Z": {"type": "string"}}),
        referring("a.in", {"Z": {"type": "integer"}}),
        tool("both", {"type": "object", "properties": {"x": {"$ref": "#/$defs/X"}, "y": {"$ref": "#/definitions/X"}},
                      "$defs": {"X": {"type": "string"}}, "definitions": {"X": {"type": "boolean"}}}),
    )  # fmt: skip
    validate(doc)
    components = doc["components"]["schemas"]

    def shown(name: str, prop: str) -> Any:
        body = operation(doc, name)["requestBody"]["content"]["application/json"]["schema"]
        return components[body["properties"][prop]["$ref"].rsplit("/", 1)[1]]

    assert shown("raw__a", "in.Z") == {"type": "string"} and shown("raw__a.in", "Z") == {"type": "integer"}
    assert shown("raw__both", "x") == {"type": "string"} and shown("raw__both", "y") == {"type": "boolean"}
