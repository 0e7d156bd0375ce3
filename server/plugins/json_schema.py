"""JSON Schema (2020-12) for marshmallow schemas, computed once per tool."""

from __future__ import annotations

import re
from typing import Any

import jsonschema_rs
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

    Corrections to apispec's answer, at every depth: a ``Range``'s exclusive bounds become
    ``exclusiveMinimum`` / ``exclusiveMaximum`` (apispec writes ``minimum``/``maximum`` whatever
    the inclusivity); a ``OneOf``'s choices are listed as given (apispec makes a set of them, in
    which ``1`` and ``True`` are one); and a field that takes ``null`` and has an ``enum`` (an
    Enum or Literal that may be None) lists ``null`` among its values; a ``Regexp`` with flags
    publishes no ``pattern``. The result must compile as JSON Schema (a Python-only pattern such
    as ``\\Z`` does not): clients compile what they are given.
    """
    instance = schema() if isinstance(schema, type) else schema
    result: dict[str, Any] = _CONVERTER.schema2jsonschema(instance)
    _fix_schema(instance, result)
    result.setdefault("type", "object")
    result.setdefault("properties", {})
    jsonschema_rs.validator_for(result)  # ValidationError for one that is not valid JSON Schema
    return result


def _fix_schema(schema: marshmallow.Schema, json_obj: dict[str, Any]) -> None:
    properties = json_obj.get("properties", {})
    for name, field in schema.fields.items():
        key = field.data_key or name
        prop = properties.get(key)
        if prop is None:
            continue
        _fix_field(field, prop)


def _fix_field(field: fields.Field, prop: dict[str, Any]) -> None:
    if any(isinstance(v, validate.Regexp) and v.regex.flags & ~re.UNICODE for v in field.validators):
        prop.pop("pattern", None)  # JSON Schema has no flags: a pattern without them would refuse more
    for validator in field.validators:
        if isinstance(validator, validate.Range):
            if validator.min is not None and not validator.min_inclusive:
                prop.pop("minimum", None)
                prop["exclusiveMinimum"] = validator.min
            if validator.max is not None and not validator.max_inclusive:
                prop.pop("maximum", None)
                prop["exclusiveMaximum"] = validator.max
    one_of = [v for v in field.validators if isinstance(v, validate.OneOf)]
    if len(one_of) == 1 and "enum" in prop:  # apispec makes a set of them: 1 and True would be one
        prop["enum"] = list(one_of[0].choices)
    choices = prop.get("enum")
    if field.allow_none and isinstance(choices, list) and None not in choices:
        prop["enum"] = [*choices, None]
    if isinstance(field, fields.Nested) and isinstance(field.schema, marshmallow.Schema):
        _fix_schema(field.schema, prop)
    elif isinstance(field, fields.List) and isinstance(prop.get("items"), dict):
        _fix_field(field.inner, prop["items"])
    elif isinstance(field, fields.Dict) and field.value_field is not None:
        values = prop.get("additionalProperties")
        if isinstance(values, dict):
            _fix_field(field.value_field, values)
