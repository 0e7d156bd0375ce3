"""Loading what ``@tool`` and ``Plugin`` declared (plugin API 2): the function's signature
becomes the arguments' schema, its return type the result's, and its call an adapter that
passes the validated arguments as keywords and the Context under its parameter's name."""

from __future__ import annotations

import dataclasses
import inspect
from typing import Any

from skywarden.server.plugins import options
from skywarden.server.plugins.json_schema import json_schema
from skywarden.server.plugins.model import (
    PLUGIN_NAME,
    InvalidToolError,
    Invoke,
    PluginInfo,
    RegisteredTool,
    plugin_name_of,
)
from skywarden.server.plugins.results import declared_result, no_annotation
from skywarden.server.plugins.settings import SettingsDeclarationError, settings_of
from skywarden.server.plugins.signature import read_signature, type_hints
from skywarden.tools.declare import Plugin, ToolSpec


def plugin_info(plugin: Plugin[Any], distribution: str) -> PluginInfo:
    """Check a ``Plugin``'s own declarations; its ``tools`` are filled in by the registry."""
    name = plugin.name
    if not isinstance(name, str) or not PLUGIN_NAME.match(name):
        raise InvalidToolError(
            f"plugin name {name!r} must be a lower-case letter, then up to 39 lower-case letters, digits and _"
        )
    settings = plugin.settings
    if settings is not None and not (isinstance(settings, type) and dataclasses.is_dataclass(settings)):
        raise InvalidToolError(f"plugin {name!r}: settings must be a dataclass (its fields declared with setting())")
    if settings is not None:
        try:
            settings_of(name, settings)  # a declaration error skips this plugin, not every command
        except SettingsDeclarationError as exc:
            raise InvalidToolError(str(exc)) from None
    if plugin.user_agent is not None and not isinstance(plugin.user_agent, str):
        raise InvalidToolError(f"plugin {name!r}: user_agent must be a string")
    if not isinstance(plugin.title, str) or not plugin.title.strip():
        raise InvalidToolError(f"plugin {name!r}: title must be a non-empty string")
    for kind, hooks in (("start-up", plugin.startup), ("shutdown", plugin.shutdown)):
        for hook in hooks:
            if not inspect.iscoroutinefunction(hook):
                raise InvalidToolError(f"plugin {name!r}: {kind} hook {hook!r} must be an async function")
    return PluginInfo(
        name,
        distribution,
        plugin.title,
        settings=plugin.settings,
        user_agent=plugin.user_agent,
        startup=tuple(plugin.startup),
        shutdown=tuple(plugin.shutdown),
        source=plugin,
    )


def register_spec(spec: ToolSpec[Any, Any], distribution: str, owner: PluginInfo | None = None) -> RegisteredTool:
    """Check a ``@tool`` declaration and precompute its schemas, call and result shape.
    ``owner``: its plugin's info when the caller already made it (one per plugin)."""
    function = spec.function
    name = options.checked_name(spec.name)
    if not inspect.iscoroutinefunction(function):
        raise InvalidToolError(f"tool {name!r}: the function must be async (async def)")
    given = spec.description if spec.description is not None else inspect.cleandoc(function.__doc__ or "")
    description = options.checked_description(given, name)
    signature = read_signature(function, name, spec.arguments)
    if spec.result is not None:
        plan = declared_result(spec.result, name)
    else:
        plan = declared_result(type_hints(function, name).get("return", no_annotation()), name)
    try:
        input_schema = json_schema(signature.schema)
    except Exception as exc:  # a schema apispec cannot convert is a plugin bug
        raise InvalidToolError(f"tool {name!r}: arguments cannot be converted to JSON Schema: {exc}") from None
    if owner is None:
        owner = (
            plugin_info(spec.plugin, distribution)
            if spec.plugin is not None
            else PluginInfo(plugin_name_of(name), distribution, spec.title or name, source=spec)
        )
    return RegisteredTool(
        name=name,
        title=options.checked_title(spec.title, name),
        description=description,
        tool=spec,
        arguments_schema=signature.schema,
        result_schema=plan.schema,
        input_schema=input_schema,
        output_schema=plan.output_schema,
        distribution=distribution,
        cost=options.checked_cost(spec.cost, name),
        pure_arguments=signature.pure,
        plugin=owner.name,
        scopes=options.checked_scopes(spec.scopes, name),
        cache_ttl=options.checked_cache_ttl(spec.cache_ttl, name),
        annotations=options.checked_annotations(spec.annotations, name),
        owner=owner,
        invoke=invoker(function, signature.context),
        shape=plan.shape,
    )


def invoker(function: Any, context: str | None) -> Invoke:
    """The tool's call: the arguments (the call's own dict) as keywords, the Context added under
    its parameter's name. Returns the function's coroutine; nothing is looked up per call."""
    if context is None:

        def invoke(arguments: dict[str, Any], ctx: Any) -> Any:
            return function(**arguments)

    else:

        def invoke(arguments: dict[str, Any], ctx: Any) -> Any:
            arguments[context] = ctx
            return function(**arguments)

    return invoke


def register_plugin(plugin: Plugin[Any], distribution: str) -> list[RegisteredTool]:
    """Every tool of a ``Plugin``, sharing one ``PluginInfo``."""
    owner = plugin_info(plugin, distribution)
    if not plugin.tools:
        raise InvalidToolError(f"plugin {plugin.name!r} declares no tools")
    return [register_spec(spec, distribution, owner) for spec in plugin.tools]
