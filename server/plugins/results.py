"""What a tool returns becomes its result here, and the structured part is held to the published
output schema.

Read once per tool when it loads (``declared_result``, ``class_form_result``); the ``ResultShape``
it gives runs on every call, in the pipeline, for both doors. MCP wants ``structuredContent`` to
be an object, so a result of another type (``-> int``, ``-> list[Thing]``) is published and sent
wrapped as ``{"result": value}``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Annotated, Any, get_args, get_origin

import jsonschema_rs
import marshmallow
from typing_extensions import is_typeddict

from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.json_schema import json_schema
from skywarden.server.plugins.model import InvalidToolError
from skywarden.server.plugins.plain_dump import plain_dumper
from skywarden.server.plugins.schema_errors import error_fields, first_error
from skywarden.server.plugins.signature import DerivedSchema, FieldMaker, UnsupportedAnnotation
from skywarden.tools.contract import ToolResult, text_content

WRAPPED = "result"  # the one property of a wrapped result


class InvalidResult(Exception):
    """The tool returned something it may not (not a ToolResult, nor a value of its type)."""


class ResultNotJson(InvalidResult):
    """The result holds a value JSON cannot write (bytes, a cycle, an integer of 4,300 digits)."""


class ResultMismatch(Exception):
    """The structured result does not match the output schema; ``failures`` say where (paths only:
    the values are the tool's data and are never logged)."""

    def __init__(self, failures: list[dict[str, str]]) -> None:
        super().__init__("structured result does not match the output schema")
        self.failures = failures


class ResultShape:
    """A tool's return value -> its ``ToolResult``.

    Every tool may return a ``ToolResult``; a tool without an output schema may return a string
    (its text). A tool with one may return its structured value alone (``dump`` makes the JSON
    of it; the class form returns JSON as it is), and gets the JSON as its text when it wrote
    none. The structured part of a successful result must match the output schema."""

    __slots__ = ("_dump", "_owed", "_plain", "_plain_type", "_validator", "_wrap")

    def __init__(
        self,
        output_schema: dict[str, Any] | None,
        dump: marshmallow.Schema | None,
        wrap: bool,
        plain_type: type | None = None,
        validator: Any = None,
        checked_in_call: bool = False,
    ) -> None:
        """``validator``: the output schema already compiled (an upstream's, with its bounds);
        ``checked_in_call``: the tool checks its structured part against it itself (an upstream's,
        which may take the schema worker), so only the rest is done here: the part is owed, and
        its JSON is the text when there is none."""
        if validator is None and output_schema is not None and not checked_in_call:
            validator = jsonschema_rs.validator_for(output_schema)
        self._owed = output_schema is not None or validator is not None  # a structured part, in every success
        self._validator = validator
        self._dump = dump
        self._wrap = wrap
        self._plain = plain_dumper(plain_type) if plain_type is not None else None
        self._plain_type = plain_type if self._plain is not None else None

    def __call__(self, value: Any) -> ToolResult:
        written: ToolResult | None = None
        if isinstance(value, ToolResult):
            if value.is_error or not self._owed:
                return value
            if value.structured is None:
                raise ResultMismatch(whole_value("no structured result"))
            written, structured, content = value, value.structured, value.content
        elif not self._owed:
            if isinstance(value, str):
                return ToolResult(content=[text_content(value)])
            raise InvalidResult(type(value).__name__)
        elif self._dump is None:  # the class form returns a ToolResult
            raise InvalidResult(type(value).__name__)
        else:
            structured, content = value, []
        data = self._data(structured)
        if self._validator is not None:
            try:
                valid = self._validator.is_valid(data)
            except (ValueError, TypeError, RecursionError):  # no JSON (a class-form tool's datetime, a cycle, ...)
                raise ResultMismatch(whole_value("not JSON")) from None
            if not valid:
                raise ResultMismatch(self._failures(data))
        if written is not None and data is structured and content:  # the class form's, as it came
            return written
        if not content:
            try:
                content = [text_content(dumps(data[WRAPPED] if self._wrap else data).decode())]
            except (TypeError, ValueError, RecursionError):
                raise ResultNotJson(type(value).__name__) from None
        return ToolResult(content=content, structured=data)

    def _data(self, structured: Any) -> Any:
        if self._dump is None:
            return structured
        if type(structured) is self._plain_type and self._plain is not None:  # the declared dataclass itself
            try:
                return self._plain(structured)
            except (AttributeError, TypeError) as exc:  # a field holding what its type cannot
                raise ResultMismatch(whole_value(type(exc).__name__)) from None
        try:
            return self._dump.dump({WRAPPED: structured} if self._wrap else structured)
        except Exception as exc:  # a value its type's fields cannot read (a str where a list goes, ...)
            raise ResultMismatch(whole_value(type(exc).__name__)) from None

    def _failures(self, data: Any) -> list[dict[str, str]]:
        """Where the result fails its schema: the first failure (``first_error``), never all."""
        try:
            error = first_error(self._validator, data) if self._validator is not None else None
        except (ValueError, TypeError, RecursionError):  # the validator gives up on it (a cycle, ...)
            return whole_value("not JSON")
        return [failure(error_fields(error))] if error is not None else []


def failure(error: Mapping[str, Any]) -> dict[str, str]:
    """Where a result fails its schema (an error as ``error_fields`` tells it), as it is logged:
    its paths only, never its values."""
    return {"instance_path": _pointer(error["instance_path"]), "schema_path": _pointer(error["schema_path"])}


def whole_value(problem: str) -> list[dict[str, str]]:
    """The failures of a result that fails as a whole (``problem``: why), as ``failure`` gives them."""
    return [{"instance_path": "", "schema_path": "", "problem": problem}]


def _pointer(path: Any) -> str:
    return "".join(f"/{str(part).replace('~', '~0').replace('/', '~1')}" for part in path)


@dataclasses.dataclass(frozen=True)
class ResultPlan:
    shape: ResultShape
    schema: marshmallow.Schema | None  # the structured result's schema (``RegisteredTool.result_schema``)
    output_schema: dict[str, Any] | None


def class_form_result(result: marshmallow.Schema | None, tool: str) -> ResultPlan:
    """A class-form tool's ``Result``: published and checked; its ``structured`` is JSON already."""
    output = _json_schema(result, tool) if result is not None else None
    return ResultPlan(_shape(output, None, False, tool), result, output)


_NO_ANNOTATION = object()


def declared_result(annotation: Any, tool: str) -> ResultPlan:
    """An API-2 tool's result from its return annotation (or ``result=``): ``str``, none or a bare
    ``ToolResult`` -> no output schema; ``ToolResult[T]`` or ``T`` -> the schema of ``T``, wrapped
    unless ``T`` is a dataclass, TypedDict or Schema class."""
    if annotation is None or annotation is type(None):
        raise InvalidToolError(f"tool {tool!r}: a tool returns something: annotate the result type (str for text)")
    if annotation is _NO_ANNOTATION or annotation is str or annotation is ToolResult:
        return ResultPlan(_shape(None, None, False, tool), None, None)
    if get_origin(annotation) is ToolResult:
        (annotation,) = get_args(annotation)
    bare = annotation
    while get_origin(bare) is Annotated:
        bare = bare.__origin__
    maker = FieldMaker(output=True)
    try:
        if _is_object(bare):
            schema = maker.schema(bare)()
            wrap = False
        else:
            field = maker.field(annotation, required=True)
            schema = type(f"{tool}Result", (DerivedSchema,), {WRAPPED: field})()
            wrap = True
    except UnsupportedAnnotation as exc:
        raise InvalidToolError(f"tool {tool!r}: result: {exc}") from None
    output = _json_schema(schema, tool)
    plain = bare if not wrap and dataclasses.is_dataclass(bare) and isinstance(bare, type) else None
    return ResultPlan(_shape(output, schema, wrap, tool, plain), schema, output)


def no_annotation() -> Any:
    """The annotation a function without a return annotation has, for ``declared_result``."""
    return _NO_ANNOTATION


def _is_object(annotation: Any) -> bool:
    return (
        dataclasses.is_dataclass(annotation)
        or is_typeddict(annotation)
        or (isinstance(annotation, type) and issubclass(annotation, marshmallow.Schema))
    )


def _json_schema(schema: marshmallow.Schema, tool: str) -> dict[str, Any]:
    try:
        return json_schema(schema)
    except Exception as exc:  # a schema apispec cannot convert is a plugin bug
        raise InvalidToolError(f"tool {tool!r}: result schema cannot be converted to JSON Schema: {exc}") from None


def _shape(
    output: dict[str, Any] | None, dump: marshmallow.Schema | None, wrap: bool, tool: str, plain: type | None = None
) -> ResultShape:
    try:
        return ResultShape(output, dump, wrap, plain)
    except ValueError as exc:  # jsonschema_rs refuses the schema
        raise InvalidToolError(f"tool {tool!r}: result schema is no valid JSON Schema: {exc}") from None
