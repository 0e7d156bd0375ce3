"""The first error of a value against a compiled JSON Schema (jsonschema-rs), and what is told
of it. Imported by the schema worker's process too, so it loads nothing else."""

from __future__ import annotations

from typing import Any

import jsonschema_rs


def first_error(validator: Any, instance: Any) -> jsonschema_rs.ValidationError | None:
    """The first error of ``instance`` against ``validator`` (jsonschema-rs), or None when it is
    valid. Never all of them: jsonschema-rs's ``iter_errors`` gathers every error before it yields
    the first, and one request of 300,000 empty objects against ``items: {required: [five
    names]}`` made 1.5 million of them (14 s of the event loop, 2.7 GB). ``validate`` stops at
    the first. A value that is no JSON raises ``ValueError`` or ``TypeError`` as ``is_valid`` does."""
    try:
        validator.validate(instance)
    except jsonschema_rs.ValidationError as error:
        return error
    return None


def error_fields(error: jsonschema_rs.ValidationError) -> dict[str, Any]:
    """What a caller is told of ``error``, as JSON: where, the keyword, its message, and for a
    missing or unexpected member its name (``property``, ``unexpected``)."""
    kind = error.kind
    detail = kind.as_dict() if hasattr(kind, "as_dict") else {}
    return {
        "instance_path": list(error.instance_path),
        "schema_path": list(error.schema_path),
        "kind": type(kind).__name__,
        "message": error.message[:1000],
        "property": detail.get("property"),
        "unexpected": list(detail.get("unexpected") or [])[:10],
    }
