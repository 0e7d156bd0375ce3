"""A result dataclass written as JSON data without marshmallow, on the hot path of a tool call.

marshmallow's ``dump`` walks fields and their converters for every call; a dataclass of plain
fields needs none of that: its JSON is its fields' values, nested dataclasses, lists and dicts
written the same way, and enums by value. The output schema then checks what was written, so a
value of the wrong type is refused there rather than converted here.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable
from typing import Annotated, Any, Literal, Union

from marshmallow import validate

Dumper = Callable[[Any], Any]
_ATOMS = (str, int, float, bool, type(None))


def _same(value: Any) -> Any:
    return value


def _each_of_list(item: Dumper) -> Dumper:
    return lambda value: [item(v) for v in value]


def _each_of_dict(item: Dumper) -> Dumper:
    return lambda value: {k: item(v) for k, v in value.items()}


def _or_none(inner: Dumper) -> Dumper:
    return lambda value: None if value is None else inner(value)


def plain_dumper(annotation: Any) -> Dumper | None:
    """A dumper for instances of ``annotation``, a dataclass whose fields (and theirs) are JSON
    atoms, ``T | None``, ``Literal``, enums, ``list[T]``, ``dict[str, T]`` or dataclasses; None for
    anything else (a TypedDict, a whole marshmallow field, a recursive type), which keeps the
    marshmallow dump."""
    if not dataclasses.is_dataclass(annotation):
        return None
    return _dumper(annotation, frozenset())


def _dumper(tp: Any, seen: frozenset[Any]) -> Dumper | None:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if tp in _ATOMS or origin is Literal:
        return _same
    if origin is Annotated:
        if all(isinstance(extra, str | validate.Validator) for extra in args[1:]):
            return _dumper(args[0], seen)
        return None
    if origin in (Union, types.UnionType):
        others = [a for a in args if a is not type(None)]
        inner = _dumper(others[0], seen) if len(others) == 1 else None
        if inner is None or inner is _same:
            return inner
        return _or_none(inner)
    if origin is list and len(args) == 1:
        item = _dumper(args[0], seen)
        return None if item is None else _each_of_list(item)
    if origin is dict and len(args) == 2 and args[0] is str:
        value_dump = _dumper(args[1], seen)
        return None if value_dump is None else _each_of_dict(value_dump)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return lambda value: value.value
    if isinstance(tp, type) and dataclasses.is_dataclass(tp) and tp not in seen:
        return _dataclass_dumper(tp, seen | {tp})
    return None


def _dataclass_dumper(cls: type, seen: frozenset[Any]) -> Dumper | None:
    try:
        hints = typing.get_type_hints(cls, include_extras=True)
    except Exception:  # an annotation that does not resolve: marshmallow's dump says so
        return None
    fields: list[tuple[str, Dumper]] = []
    for f in dataclasses.fields(cls):
        dump = _dumper(hints.get(f.name), seen)
        if dump is None:
            return None
        fields.append((f.name, dump))
    if all(dump is _same for _, dump in fields):
        names = [name for name, _ in fields]
        return lambda value: {name: getattr(value, name) for name in names}
    return lambda value: {name: dump(getattr(value, name)) for name, dump in fields}
