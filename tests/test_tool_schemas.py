"""Argument validation for every field, and the generated JSON Schemas."""

from __future__ import annotations

import jsonschema
import pytest
from marshmallow import Schema, fields, validate

from skywarden.server.plugins.json_schema import json_schema
from skywarden.server.plugins.registry import discover_tools


@pytest.fixture(scope="module")
def registry():
    return discover_tools()


def test_builtin_tools_are_registered(registry):
    assert {"get_forecast", "get_alerts"} <= set(registry.names())
    assert registry.get("get_forecast").distribution.startswith("skywarden ")


def test_generated_schemas_are_valid_json_schema(registry):
    for tool in registry:
        jsonschema.Draft202012Validator.check_schema(tool.input_schema)
        if tool.output_schema:
            jsonschema.Draft202012Validator.check_schema(tool.output_schema)


def test_forecast_input_schema(registry):
    schema = registry.get("get_forecast").input_schema
    assert schema["required"] == ["latitude", "longitude"]
    assert schema["additionalProperties"] is False
    assert schema["properties"]["latitude"]["minimum"] == -90
    assert schema["properties"]["longitude"]["maximum"] == 180


def test_exclusive_range_becomes_exclusive_minimum():
    class S(Schema):
        x = fields.Float(validate=validate.Range(min=0, min_inclusive=False, max=10, max_inclusive=False))
        inner = fields.Nested(lambda: Inner())

    class Inner(Schema):
        y = fields.Integer(validate=validate.Range(min=1, min_inclusive=False))

    result = json_schema(S)
    assert result["properties"]["x"]["exclusiveMinimum"] == 0 and "minimum" not in result["properties"]["x"]
    assert result["properties"]["x"]["exclusiveMaximum"] == 10
    assert result["properties"]["inner"]["properties"]["y"]["exclusiveMinimum"] == 1
    jsonschema.Draft202012Validator.check_schema(result)


@pytest.mark.parametrize(
    ("args", "field", "fragment"),
    [
        ({"longitude": 0}, "latitude", "Missing data"),
        ({"latitude": 0}, "longitude", "Missing data"),
        ({"latitude": "north", "longitude": 0}, "latitude", "Not a valid number"),
        ({"latitude": 0, "longitude": None}, "longitude", "may not be null"),
        ({"latitude": 90.5, "longitude": 0}, "latitude", "between -90 and 90"),
        ({"latitude": -91, "longitude": 0}, "latitude", "between -90 and 90"),
        ({"latitude": 0, "longitude": 180.01}, "longitude", "between -180 and 180"),
        ({"latitude": 0, "longitude": -181}, "longitude", "between -180 and 180"),
        ({"latitude": 0, "longitude": 0, "units": "si"}, "units", "Unknown field"),
        ({"latitude": [1], "longitude": 0}, "latitude", "Not a valid number"),
    ],
)
async def test_forecast_argument_errors(client, fake_nws, args, field, fragment):
    resp = await client.post("/api/mcp/tools/get_forecast", json=args)
    assert resp.status == 422
    assert resp.content_type == "application/problem+json"
    body = await resp.json()
    by_field = {e["field"]: " ".join(e["messages"]) for e in body["errors"]}
    assert fragment in by_field[field]
    assert fake_nws.requests == []


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({}, "Missing data"),
        ({"state": "XX"}, "two-letter US state"),
        ({"state": "California"}, "two-letter US state"),
        ({"state": 12}, "Not a valid string"),
        ({"state": ""}, "two-letter US state"),
        ({"state": "CA", "extra": 1}, "Unknown field"),
    ],
)
async def test_alerts_argument_errors(client, args, fragment):
    resp = await client.post("/api/mcp/tools/get_alerts", json=args)
    assert resp.status == 422
    body = await resp.json()
    assert fragment in " ".join(m for e in body["errors"] for m in e["messages"])


async def test_arguments_must_be_an_object(client):
    resp = await client.post("/api/mcp/tools/get_alerts", json=["CA"])
    assert resp.status == 422
    body = await resp.json()
    assert body["errors"][0]["messages"] == ["Arguments must be a JSON object."]


async def test_valid_arguments_match_the_published_schema(client, registry):
    """What the schema accepts the server accepts, and what it refuses the server refuses."""
    schema = registry.get("get_forecast").input_schema
    good = {"latitude": 39.7456, "longitude": -97.0892}
    bad = {"latitude": 100, "longitude": 0}
    jsonschema.validate(good, schema)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(bad, schema)
    assert (await client.post("/api/mcp/tools/get_forecast", json=bad)).status == 422
