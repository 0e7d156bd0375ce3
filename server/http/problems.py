"""RFC 9457 problem details: the one error format of the REST API."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from aiohttp import web

from skywarden.server.jsonutil import dumps

PROBLEM_TYPE_BASE = "https://skywarden.dev/problems/"
PROBLEM_CONTENT_TYPE = "application/problem+json"


class ProblemError(Exception):
    """Raise anywhere in a REST request to answer with a problem+json body."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str | None = None,
        *,
        type: str | None = None,
        extra: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.title = title
        self.detail = detail
        self.type = type or title.lower().replace(" ", "-")
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


def problem_body(
    status: int, title: str, detail: str | None, type_: str, extra: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    body: dict[str, Any] = {"type": PROBLEM_TYPE_BASE + type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if extra:
        body.update(extra)
    return body


def problem_response(error: ProblemError, request_id: str | None = None) -> web.Response:
    body = problem_body(error.status, error.title, error.detail, error.type, error.extra)
    if request_id:
        body["request_id"] = request_id
    return web.Response(
        status=error.status,
        body=dumps(body),
        content_type=PROBLEM_CONTENT_TYPE,
        headers=error.headers,
    )


def validation_problem(errors: Mapping[str, Any], detail: str = "Some fields are not valid.") -> ProblemError:
    """422 listing each bad field with its messages."""
    return ProblemError(
        422,
        "Validation failed",
        detail,
        type="validation-failed",
        extra={"errors": flatten_errors(errors)},
    )


def flatten_errors(errors: Any, prefix: str = "") -> list[dict[str, Any]]:
    """marshmallow's nested error dict -> [{"field": "a.b", "messages": [...]}]."""
    result: list[dict[str, Any]] = []
    if isinstance(errors, Mapping):
        for key, value in errors.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if isinstance(value, Mapping):
                result.extend(flatten_errors(value, name))
            else:
                messages = value if isinstance(value, list) else [value]
                result.append({"field": name, "messages": [str(m) for m in messages]})
    elif isinstance(errors, list):
        result.append({"field": prefix or "_schema", "messages": [str(m) for m in errors]})
    return result


def describe_errors(errors: Mapping[str, Any]) -> str:
    """One line per bad field, for texts a model reads (MCP isError results)."""
    return "; ".join(f"{e['field']}: {' '.join(e['messages'])}" for e in flatten_errors(errors))
