"""JSON Schema (2020-12) for marshmallow schemas, computed once per tool."""

from __future__ import annotations

from typing import Any

import marshmallow
from apispec import APISpec
from apispec.ext.marshmallow.openapi import OpenAPIConverter
from marshmallow import fields, validate

_CONVERTER = OpenAPIConverter(
    openapi_version="3.1.0",
    schema_name_resolver=lambda schema: None,
    spec=APISpec("skywarden-tools", "1", "3.1.0"),
)


def json_schema(schema: type[marshmallow.Schema] | marshmallow.Schema) -> dict[str, Any]:
    """Convert a marshmallow schema to an inline JSON Schema object.

    apispec writes ``minimum``/``maximum`` for a ``Range`` whatever its
    inclusivity; exclusive bounds are corrected to ``exclusiveMinimum`` /
    ``exclusiveMaximum`` here.
    """
    instance = schema() if isinstance(schema, type) else schema
    result: dict[str, Any] = _CONVERTER.schema2jsonschema(instance)
    _fix_exclusive_bounds(instance, result)
    result.setdefault("type", "object")
    result.setdefault("properties", {})
    return result


def _fix_exclusive_bounds(schema: marshmallow.Schema, json_obj: dict[str, Any]) -> None:
    properties = json_obj.get("properties", {})
    for name, field in schema.fields.items():
        key = field.data_key or name
        prop = properties.get(key)
        if prop is None:
            continue
        _fix_field(field, prop)


def _fix_field(field: fields.Field, prop: dict[str, Any]) -> None:
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                prop.pop("minimum", None)
                prop["exclusiveMinimum"] = validator.min
            if validator.max is not None and not validator.max_inclusive:
                prop.pop("maximum", None)
                prop["exclusiveMaximum"] = validator.max
    if isinstance(field, fields.Nested) and isinstance(field.schema, marshmallow.Schema):
        _fix_exclusive_bounds(field.schema, prop)
    elif isinstance(field, fields.List) and isinstance(prop.get("items"), dict):
        _fix_field(field.inner, prop["items"])
