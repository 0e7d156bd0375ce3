"""Loading a class-form tool (plugin API 1): an object with ``name``, ``description``,
``Arguments``, ``call`` and optional ``Result``, ``title``, ``cost``, ``settings_group``,
``pure_arguments``, ``cache_results`` and ``cache_ttl``."""

from __future__ import annotations

import inspect
from typing import Any

import marshmallow
import structlog

from skywarden.server.plugins import options
from skywarden.server.plugins.json_schema import json_schema
from skywarden.server.plugins.model import SETTINGS_GROUP, InvalidToolError, RegisteredTool
from skywarden.server.plugins.results import class_form_result

log = structlog.get_logger("skywarden.tools")


def _schema_instance(value: Any, what: str) -> marshmallow.Schema:
    if isinstance(value, type) and issubclass(value, marshmallow.Schema):
        return value()
    if isinstance(value, marshmallow.Schema):
        return value
    raise InvalidToolError(f"{what} must be a marshmallow Schema class")


def _flag(obj: Any, name: str, tool: str) -> bool:
    value = getattr(obj, name, False)
    if not isinstance(value, bool):
        raise InvalidToolError(f"tool {tool!r}: {name} must be True or False")
    return value


def register_class_tool(obj: Any, distribution: str) -> RegisteredTool:
    """Check ``obj`` against the class-form contract and precompute its schemas."""
    name = options.checked_name(getattr(obj, "name", None))
    description = options.checked_description(getattr(obj, "description", None), name)
    title = getattr(obj, "title", None) or name
    if not isinstance(title, str):
        raise InvalidToolError(f"tool {name!r}: title must be a string")
    call = getattr(obj, "call", None)
    if not inspect.iscoroutinefunction(call):
        raise InvalidToolError(f"tool {name!r}: call must be an async function")
    arguments = _schema_instance(getattr(obj, "Arguments", None), f"tool {name!r}: Arguments")
    result_cls = getattr(obj, "Result", None)
    result = _schema_instance(result_cls, f"tool {name!r}: Result") if result_cls is not None else None
    cost = options.checked_cost(getattr(obj, "cost", 1), name)
    pure_arguments = _flag(obj, "pure_arguments", name)
    cache_results = _flag(obj, "cache_results", name)
    if cache_results and not pure_arguments:
        raise InvalidToolError(f"tool {name!r}: cache_results needs pure_arguments (results are kept per argument set)")
    cache_ttl = options.checked_cache_ttl(getattr(obj, "cache_ttl", None), name)
    if cache_results:
        log.warning(
            "cache_results is deprecated: declare cache_ttl (seconds) instead; a result is still kept "
            "no longer than the upstream answers it used",
            tool=name,
            distribution=distribution,
        )
    settings_group = getattr(obj, "settings_group", None)
    if settings_group is not None and (not isinstance(settings_group, str) or not SETTINGS_GROUP.match(settings_group)):
        raise InvalidToolError(f"tool {name!r}: settings_group must be lower-case letters, digits and _")
    try:
        input_schema = json_schema(arguments)
    except Exception as exc:  # a schema apispec cannot convert is a plugin bug
        raise InvalidToolError(f"tool {name!r}: schema cannot be converted to JSON Schema: {exc}") from None
    plan = class_form_result(result, name)
    return RegisteredTool(
        name=name,
        title=title,
        description=description,
        tool=obj,
        arguments_schema=arguments,
        result_schema=result,
        input_schema=input_schema,
        output_schema=plan.output_schema,
        distribution=distribution,
        cost=cost,
        settings_group=settings_group,
        pure_arguments=pure_arguments,
        cache_results=cache_results,
        cache_ttl=cache_ttl,
        invoke=call,
        shape=plan.shape,
    )
