"""Marshmallow schemas from type annotations: a tool function's arguments from its signature,
and the structured result's shape from its return type.

Supported types: ``str``, ``int``, ``float`` (finite), ``bool``, ``list[T]``, ``dict[str, T]``,
``Literal[...]`` (of strings, integers and booleans), an ``Enum`` (string or integer values),
``T | None``, a dataclass, a ``TypedDict``, a marshmallow ``Schema`` class, and
``Annotated[T, ...]`` whose extras are a description (a string), marshmallow validators, or one
whole marshmallow field. The fields are strict, as the published JSON Schema says: a value of
another JSON type is refused, never converted (``"5"`` is no integer, ``1`` no boolean);
numbers follow JSON Schema (``2.0`` is the integer 2, ``2`` the float 2.0).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import inspect
import math
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Literal, NotRequired, Required, Union, get_args, get_origin

import marshmallow
from marshmallow import RAISE, fields, post_load, validate
from typing_extensions import ReadOnly, is_typeddict

from skywarden.server.plugins.model import InvalidToolError
from skywarden.tools.contract import Context


class UnsupportedAnnotation(Exception):
    """An annotation no field can be made from; the message says which and why."""


# Strict fields: JSON types in, the same values out (dumping never converts: the output
# schema check then sees what the tool really returned).


class JsonString(fields.String):
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class JsonInteger(fields.Integer):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if type(value) is float and value.is_integer():
            value = int(value)
        if type(value) is not int:
            raise self.make_error("invalid")
        return value

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class JsonFloat(fields.Float):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if type(value) is not float and type(value) is not int:
            raise self.make_error("invalid")
        try:
            number = float(value)
        except OverflowError:
            raise self.make_error("too_large") from None
        if not math.isfinite(number):
            raise self.make_error("special")
        return number

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class JsonBoolean(fields.Boolean):
    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        if value is True or value is False:
            return value
        raise self.make_error("invalid")

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value


class JsonList(fields.List):
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if type(value) is not list and type(value) is not tuple:
            return value  # not a list: the output schema says so
        return super()._serialize(value, attr, obj, **kwargs)


class JsonDict(fields.Dict):
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        return super()._serialize(value, attr, obj, **kwargs)  # type: ignore[no-untyped-call]  # marshmallow's Mapping._serialize is unannotated


class JsonEnum(fields.Enum):
    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> Any:
        return value.value if isinstance(value, enum.Enum) else value


class JsonLiteral(fields.Field):
    """One of fixed values, each matched with its JSON type: ``True`` is not ``1``."""

    def __init__(self, choices: tuple[Any, ...], **kwargs: Any) -> None:
        shown = ", ".join(repr(c) if isinstance(c, str) else str(c).lower() for c in choices)
        kwargs.setdefault("validate", []).append(validate.OneOf(choices))
        super().__init__(error_messages={"invalid": f"Must be one of: {shown}."}, **kwargs)
        self.choices = choices

    def _deserialize(self, value: Any, attr: str | None, data: Any, **kwargs: Any) -> Any:
        for choice in self.choices:
            if value == choice and _json_kind(value) == _json_kind(choice):
                return choice
        raise self.make_error("invalid")


def _json_kind(value: Any) -> str:
    if value is True or value is False:
        return "boolean"
    return "number" if isinstance(value, int | float) else type(value).__name__


class DerivedSchema(marshmallow.Schema):
    """A schema made from annotations: unknown fields refused."""

    class Meta:
        unknown = RAISE
        register = False


class DataclassSchema(DerivedSchema):
    """Loads into its dataclass, so nested arguments arrive as instances."""

    dataclass_type: ClassVar[Callable[..., Any]]

    @post_load
    def _make_instance(self, data: dict[str, Any], **kwargs: Any) -> Any:
        return type(self).dataclass_type(**data)


@dataclass
class _Options:
    """What an annotation's wrappers (``Annotated``, ``| None``) add to the field made for it."""

    allow_none: bool = False
    validators: list[Any] = dataclasses.field(default_factory=list)
    description: str | None = None
    whole: fields.Field | None = None


class FieldMaker:
    """Makes fields for one tool's annotations; ``pure`` stays true while every validator is one
    of marshmallow's own (then the schema's answer depends on the input alone)."""

    def __init__(self, output: bool) -> None:
        self.output = output
        self.pure = True
        self._building: list[type] = []

    def field(self, annotation: Any, **kwargs: Any) -> fields.Field:
        """A field for ``annotation``; ``kwargs`` (required, load_default, ...) go to the field."""
        options = _Options()
        base = self._unwrap(annotation, options)
        if options.description is not None:
            kwargs["metadata"] = {**kwargs.get("metadata", {}), "description": options.description}
        if options.allow_none:
            kwargs["allow_none"] = True
        if options.whole is not None:
            return self._adopt(options.whole, options, kwargs)
        if options.validators:
            kwargs["validate"] = list(options.validators)
        return self._leaf(base, kwargs)

    def schema(self, cls: Any) -> type[marshmallow.Schema]:
        """The schema of a dataclass or TypedDict (or a Schema class, as it is)."""
        if isinstance(cls, type) and issubclass(cls, marshmallow.Schema):
            self.pure = False  # its hooks and validators are its author's
            return cls
        if cls in self._building:
            raise UnsupportedAnnotation(f"{cls.__name__} refers to itself; recursive types are not supported")
        self._building.append(cls)
        try:
            if dataclasses.is_dataclass(cls):
                return self._dataclass_schema(cls)
            return self._typeddict_schema(cls)
        finally:
            self._building.pop()

    def _unwrap(self, annotation: Any, options: _Options) -> Any:
        while True:
            origin = get_origin(annotation)
            if origin is Annotated:
                for extra in annotation.__metadata__:
                    self._extra(extra, options)
                annotation = annotation.__origin__
            elif origin is Union or origin is types.UnionType:
                members = [a for a in get_args(annotation) if a is not type(None)]
                if len(members) != 1:
                    raise UnsupportedAnnotation(
                        f"{_shown(annotation)}: only T | None is supported among unions; "
                        "use Literal[...] or an Enum for a choice of values"
                    )
                options.allow_none = True
                annotation = members[0]
            else:
                return annotation

    def _extra(self, extra: Any, options: _Options) -> None:
        if isinstance(extra, str):
            options.description = extra
        elif isinstance(extra, validate.Validator):
            if type(extra).__module__ != validate.__name__:
                self.pure = False
            options.validators.append(extra)
        elif isinstance(extra, fields.Field):
            if options.whole is not None:
                raise UnsupportedAnnotation("Annotated takes at most one marshmallow field")
            options.whole = extra
        else:
            raise UnsupportedAnnotation(
                f"Annotated extra {type(extra).__name__} is not supported: give a description (a string), "
                "marshmallow validators or a marshmallow field"
            )

    def _adopt(self, given: fields.Field, options: _Options, kwargs: dict[str, Any]) -> fields.Field:
        """A whole field from ``Annotated``, with what the signature says (required, default)."""
        if type(given).__module__ != fields.__name__ or isinstance(
            given, fields.Nested | fields.Pluck | fields.Function | fields.Method
        ):
            self.pure = False
        if any(type(v).__module__ != validate.__name__ for v in given.validators):
            self.pure = False
        field = copy.copy(given)
        field.validators = [*given.validators, *options.validators]
        field.metadata = {**given.metadata, **kwargs.get("metadata", {})}
        if "required" in kwargs:
            field.required = kwargs["required"]
        for name in ("load_default", "dump_default"):
            if name in kwargs and getattr(given, name) is marshmallow.missing:
                setattr(field, name, kwargs[name])
        if kwargs.get("allow_none") or field.load_default is None:
            field.allow_none = True
        return field

    def _leaf(self, base: Any, kwargs: dict[str, Any]) -> fields.Field:
        if base is str:
            return JsonString(**kwargs)
        if base is bool:
            return JsonBoolean(**kwargs)
        if base is int:
            return JsonInteger(**kwargs)
        if base is float:
            return JsonFloat(**kwargs)
        origin, args = get_origin(base), get_args(base)
        if origin is list:
            if len(args) != 1:
                raise UnsupportedAnnotation("list needs its item type: list[T]")
            return JsonList(self.field(args[0]), **kwargs)
        if origin is dict:
            if len(args) != 2 or args[0] is not str:
                raise UnsupportedAnnotation("dict needs string keys and its value type: dict[str, T]")
            return JsonDict(keys=JsonString(), values=self.field(args[1]), **kwargs)
        if origin is Literal:
            return self._literal(args, kwargs)
        if isinstance(base, type) and issubclass(base, enum.Enum):
            return self._enum(base, kwargs)
        if dataclasses.is_dataclass(base) or is_typeddict(base):
            return fields.Nested(self.schema(base), **kwargs)
        if isinstance(base, type) and issubclass(base, marshmallow.Schema):
            return fields.Nested(self.schema(base), **kwargs)
        if base in (list, dict):
            raise UnsupportedAnnotation(f"{base.__name__} needs its item type: list[T] or dict[str, T]")
        raise UnsupportedAnnotation(
            f"{_shown(base)} is not supported; use str, int, float, bool, list[T], dict[str, T], Literal, "
            "an Enum, T | None, a dataclass or a TypedDict"
        )

    def _literal(self, choices: tuple[Any, ...], kwargs: dict[str, Any]) -> fields.Field:
        values = tuple(c for c in choices if c is not None)
        if len(values) != len(choices):
            kwargs["allow_none"] = True
        if not values or not all(isinstance(c, str | int) for c in values):  # bool is an int
            raise UnsupportedAnnotation("Literal values must be strings, integers or booleans")
        return JsonLiteral(values, **kwargs)

    def _enum(self, cls: type[enum.Enum], kwargs: dict[str, Any]) -> fields.Field:
        values = [member.value for member in cls]
        if values and all(type(v) is str for v in values):
            return JsonEnum(cls, by_value=JsonString, **kwargs)
        if values and all(type(v) is int for v in values):
            return JsonEnum(cls, by_value=JsonInteger, **kwargs)
        raise UnsupportedAnnotation(f"Enum {cls.__name__} needs all-string or all-integer values")

    def _dataclass_schema(self, cls: Any) -> type[marshmallow.Schema]:
        hints = _hints(cls)
        made: dict[str, Any] = {}
        for item in dataclasses.fields(cls):
            if not item.init and not self.output:
                continue
            has_default = item.default is not dataclasses.MISSING or item.default_factory is not dataclasses.MISSING
            default = item.default_factory if item.default_factory is not dataclasses.MISSING else item.default
            options: dict[str, Any] = {}
            if self.output:  # a dataclass always has every field: a dict given for one gets the defaults
                options["required"] = True
                if has_default:
                    options["dump_default"] = default
            elif has_default:
                options["load_default"] = default
            else:
                options["required"] = True
            made[item.name] = self._member(cls, item.name, hints, options)
        base = DerivedSchema if self.output else DataclassSchema
        return type(f"{cls.__name__}Schema", (base,), {**made, "dataclass_type": cls})

    def _typeddict_schema(self, cls: Any) -> type[marshmallow.Schema]:
        hints = _hints(cls)
        made = {
            name: self._member(cls, name, hints, {"required": True} if _required(cls, name, hint) else {})
            for name, hint in hints.items()
        }
        return type(f"{cls.__name__}Schema", (DerivedSchema,), made)

    def _member(self, cls: Any, name: str, hints: dict[str, Any], options: dict[str, Any]) -> fields.Field:
        try:
            return self.field(_strip_qualifiers(hints[name]), **options)
        except UnsupportedAnnotation as exc:
            raise UnsupportedAnnotation(f"{cls.__name__}.{name}: {exc}") from None


def _hints(cls: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(cls, include_extras=True)
    except Exception as exc:  # a name the annotations use cannot be found
        raise UnsupportedAnnotation(f"the annotations of {cls.__name__} cannot be resolved: {exc}") from None


def _required(cls: Any, name: str, hint: Any) -> bool:
    """Whether a TypedDict key is required. Its class's ``__required_keys__`` says so only for
    annotations it could read when it was made (not those written as strings, as under
    ``from __future__ import annotations``); ``Required``/``NotRequired`` in the resolved hint say
    it in every case."""
    origin = get_origin(hint)
    if origin in (Required, typing.Required):
        return True
    if origin in (NotRequired, typing.NotRequired):
        return False
    return name in cls.__required_keys__


def _strip_qualifiers(annotation: Any) -> Any:
    """A TypedDict key's type without ``Required``/``NotRequired``/``ReadOnly`` (its class says)."""
    while get_origin(annotation) in (Required, NotRequired, ReadOnly, typing.Required, typing.NotRequired):
        annotation = get_args(annotation)[0]
    return annotation


def _shown(annotation: Any) -> str:
    return annotation.__name__ if isinstance(annotation, type) else repr(annotation).replace("typing.", "")


def is_context(annotation: Any) -> bool:
    """Whether a parameter's annotation is ``Context`` (or ``Context[Settings]``): that parameter
    receives the call's context and is no argument."""
    while get_origin(annotation) is Annotated:
        annotation = annotation.__origin__
    origin = get_origin(annotation) or annotation
    return isinstance(origin, type) and issubclass(origin, Context)


@dataclass(frozen=True)
class Signature:
    """What a tool function's signature says: its Context parameter and its arguments."""

    context: str | None  # the name of the parameter that receives the Context
    arguments: tuple[str, ...]  # every other parameter
    schema: marshmallow.Schema  # validates the arguments; the function gets what it loads as keywords
    pure: bool  # the schema's answer depends on the input alone (derived with marshmallow's validators)


def type_hints(function: Any, tool: str) -> dict[str, Any]:
    try:
        return typing.get_type_hints(function, include_extras=True)
    except Exception as exc:
        raise InvalidToolError(
            f"tool {tool!r}: its annotations cannot be resolved: {type(exc).__name__}: {exc}"
        ) from None


def read_signature(function: Any, tool: str, arguments: Any = None) -> Signature:
    """Read ``function``'s parameters; derive the arguments' schema from their annotations, or
    check that ``arguments`` (a Schema class) names exactly the parameters."""
    hints = type_hints(function, tool)
    context: str | None = None
    params: list[inspect.Parameter] = []
    for param in inspect.signature(function).parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            raise InvalidToolError(
                f"tool {tool!r}: parameter {param.name!r}: *args and **kwargs are not supported; name each argument"
            )
        if param.kind is param.POSITIONAL_ONLY:
            raise InvalidToolError(
                f"tool {tool!r}: parameter {param.name!r} is positional-only; arguments are passed by name"
            )
        if param.name in hints and is_context(hints[param.name]):
            if context is not None:
                raise InvalidToolError(
                    f"tool {tool!r}: parameters {context!r} and {param.name!r} both take the Context"
                )
            context = param.name
            continue
        params.append(param)
    names = tuple(p.name for p in params)
    if arguments is not None:
        return Signature(context, names, _given_schema(arguments, params, tool), pure=False)
    maker = FieldMaker(output=False)
    made = {}
    for param in params:
        if param.name not in hints:
            raise InvalidToolError(
                f"tool {tool!r}: parameter {param.name!r} needs a type annotation (or the Context annotation)"
            )
        try:
            made[param.name] = maker.field(hints[param.name], **_default_options(param.default))
        except UnsupportedAnnotation as exc:
            raise InvalidToolError(f"tool {tool!r}: parameter {param.name!r}: {exc}") from None
        _check_default(made[param.name], param, tool)
    schema = type(f"{tool}Arguments", (DerivedSchema,), made)
    return Signature(context, names, schema(), maker.pure)


_ATOMS = (str, int, float, bool, type(None), enum.Enum)


def _default_options(default: Any) -> dict[str, Any]:
    if default is inspect.Parameter.empty:
        return {"required": True}
    if not isinstance(default, _ATOMS):  # each call gets its own copy: no caller sees another's changes
        shown = {"default": default} if isinstance(default, list | dict) else {}  # published when JSON
        return {"load_default": lambda: copy.deepcopy(default), "metadata": shown}
    return {"load_default": default}


def _check_default(field: marshmallow.fields.Field, param: inspect.Parameter, tool: str) -> None:
    """A JSON-shaped default is one its own field takes: it is published as the default."""
    default = param.default
    if default is inspect.Parameter.empty or not isinstance(default, str | int | float | bool | list | dict | None):
        return
    try:
        field.deserialize(default)
    except marshmallow.ValidationError as exc:
        raise InvalidToolError(
            f"tool {tool!r}: parameter {param.name!r}: its default does not fit its type ({exc.messages})"
        ) from None


def _given_schema(arguments: Any, params: list[inspect.Parameter], tool: str) -> marshmallow.Schema:
    if not (isinstance(arguments, type) and issubclass(arguments, marshmallow.Schema)):
        raise InvalidToolError(f"tool {tool!r}: arguments must be a marshmallow Schema class")
    schema = arguments()
    loaded = {field.attribute or name for name, field in schema.fields.items() if not field.dump_only}
    unknown = sorted(loaded - {p.name for p in params})
    if unknown:
        raise InvalidToolError(
            f"tool {tool!r}: arguments {arguments.__name__} has fields the function does not take: {', '.join(unknown)}"
        )
    missing = sorted(p.name for p in params if p.name not in loaded and p.default is inspect.Parameter.empty)
    if missing:
        raise InvalidToolError(
            f"tool {tool!r}: arguments {arguments.__name__} lacks the parameters: {', '.join(missing)}"
        )
    return schema
