"""Server answers -> typed errors, for problem+json (REST) and JSON-RPC (MCP) bodies."""

from __future__ import annotations

import json
from typing import Any

from skywarden.clients import errors as e
from skywarden.clients.http import Answer


def decode(answer: Answer) -> Any:
    try:
        return json.loads(answer.body) if answer.body else None
    except ValueError:
        raise e.ServerError(
            "the server answered with something that is not JSON", status=answer.status, request_id=answer.request_id
        ) from None


def _by_status(answer: Answer, message: str, detail: dict[str, Any]) -> e.SkywardenError:
    common: dict[str, Any] = {"status": answer.status, "detail": detail, "request_id": answer.request_id}
    status = answer.status
    if status == 401:
        return e.AuthenticationError(message, **common)
    if status == 403:
        return e.PermissionDenied(message, **common)
    if status == 429:
        return e.RateLimited(message, retry_after=answer.retry_after(), **common)
    if status == 404:
        return e.NotFound(message, **common)
    if status >= 500:
        return e.ServerError(message, **common)
    return e.SkywardenError(message, **common)


def field_errors(items: Any) -> dict[str, list[str]]:
    result: dict[str, list[str]] = {}
    if isinstance(items, list):
        for item in items:
            if isinstance(item, dict) and "field" in item:
                result[str(item["field"])] = [str(m) for m in item.get("messages", [])]
    return result


def problem_error(answer: Answer) -> e.SkywardenError:
    """A REST error answer (problem+json, or anything else a proxy may have sent)."""
    try:
        body = json.loads(answer.body) if answer.body else {}
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = str(body.get("detail") or body.get("title") or f"HTTP {answer.status}")
    kind = str(body.get("type", ""))
    common: dict[str, Any] = {"status": answer.status, "detail": body, "request_id": answer.request_id}
    if answer.status == 404 and kind.endswith("/unknown-tool"):
        return e.ToolNotFound(message, **common)
    if answer.status == 422:
        return e.InvalidArguments(message, field_errors=field_errors(body.get("errors")), **common)
    return _by_status(answer, message, body)


UNKNOWN_TOOL = "Unknown tool"


def rpc_error(answer: Answer, error: dict[str, Any]) -> e.SkywardenError:
    """A JSON-RPC error; the HTTP status decides first (401/403/429), then the code."""
    message = str(error.get("message", "JSON-RPC error"))
    data = error.get("data")
    common: dict[str, Any] = {"status": answer.status, "detail": error, "request_id": answer.request_id}
    if answer.status in (401, 403, 429) or answer.status >= 500:
        return _by_status(answer, message, error)
    code = error.get("code")
    if code == -32602 and message.startswith(UNKNOWN_TOOL):
        return e.ToolNotFound(message, **common)
    if code == -32602 and isinstance(data, dict) and "errors" in data:
        return e.InvalidArguments(message, field_errors=field_errors(data["errors"]), **common)
    return e.ServerError(message, **common)
