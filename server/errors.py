"""The one error taxonomy of the server.

Every refusal or failure on the request path is an ``ApiError`` carrying an
``ErrorKind``. The kind is the single table row that says how each door
answers it: the HTTP status, problem type and title for the REST and admin
paths (problem+json, RFC 9457), the JSON-RPC code for /mcp, and the reason the
audit log records. Raise; never build an answer by hand. The door renderers
are ``http.problems.problem_answer`` and ``mcp.wire.rpc_error_answer``; the
error middleware (``http/errors.py``) asks its ``DoorRenderers`` for the path's.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# JSON-RPC codes (JSON-RPC 2.0 and MCP); the MCP layer imports them from here.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
INVALID_PARAMS = -32602
INTERNAL_ERROR = -32603
UNAUTHORIZED_CODE = -32001
FORBIDDEN_CODE = -32003
RATE_LIMITED_CODE = -32029
HEADER_MISMATCH = -32020
MISSING_CLIENT_CAPABILITY = -32021
UNSUPPORTED_VERSION = -32022


@dataclass(frozen=True)
class ErrorKind:
    status: int
    title: str
    slug: str  # problem type, appended to PROBLEM_TYPE_BASE
    rpc_code: int
    audit_reason: str | None = None  # recorded as the audit event's ``reason``


BAD_REQUEST = ErrorKind(400, "Bad request", "bad-request", INVALID_REQUEST)
INVALID_HEADER = ErrorKind(400, "Bad request", "invalid-header", INVALID_REQUEST, "invalid_header")
INVALID_TARGET = ErrorKind(400, "Bad request", "invalid-request-target", INVALID_REQUEST, "request_target")
INVALID_JSON = ErrorKind(400, "Bad request", "invalid-json", PARSE_ERROR)
INVALID_BODY = ErrorKind(400, "Bad request", "invalid-body", INVALID_REQUEST)
AMBIGUOUS_CREDENTIALS = ErrorKind(400, "Bad request", "ambiguous-credentials", INVALID_REQUEST, "ambiguous_credentials")
CREDENTIAL_IN_URL = ErrorKind(400, "Bad request", "credential-in-url", INVALID_REQUEST, "key_in_query")
CAPABILITY_REQUIRED = ErrorKind(
    400, "Client capability required", "client-capability-required", MISSING_CLIENT_CAPABILITY
)
UNAUTHORIZED = ErrorKind(401, "Unauthorized", "unauthorized", UNAUTHORIZED_CODE)
INSUFFICIENT_SCOPE = ErrorKind(403, "Forbidden", "insufficient-scope", FORBIDDEN_CODE, "scope")
ADMIN_RULE_NOT_MET = ErrorKind(403, "Forbidden", "admin-role-required", FORBIDDEN_CODE, "admin_rule")
FORBIDDEN_HOST = ErrorKind(403, "Forbidden", "forbidden-origin", INVALID_REQUEST, "host")
FORBIDDEN_ORIGIN = ErrorKind(403, "Forbidden", "forbidden-origin", INVALID_REQUEST, "origin")
KEY_RATE_UNUSABLE = ErrorKind(403, "Forbidden", "key-rate-limit-unusable", FORBIDDEN_CODE, "key_rate_limit")
HTTPS_REQUIRED = ErrorKind(403, "HTTPS required", "https-required", INVALID_REQUEST, "https_required")
NOT_FOUND = ErrorKind(404, "Not found", "not-found", METHOD_NOT_FOUND)
OAUTH_NOT_CONFIGURED = ErrorKind(404, "OAuth is not configured", "oauth-not-configured", METHOD_NOT_FOUND)
UNKNOWN_TOOL = ErrorKind(404, "Unknown tool", "unknown-tool", INVALID_PARAMS)
KEY_NOT_FOUND = ErrorKind(404, "Not found", "key-not-found", INVALID_PARAMS)
UPSTREAM_NOT_FOUND = ErrorKind(404, "Not found", "upstream-not-found", INVALID_PARAMS)
METHOD_NOT_ALLOWED = ErrorKind(405, "Method not allowed", "method-not-allowed", INVALID_REQUEST)
NOT_ACCEPTABLE = ErrorKind(406, "Not acceptable", "not-acceptable", INVALID_REQUEST)
REQUEST_TIMEOUT = ErrorKind(408, "Request timeout", "request-timeout", INVALID_REQUEST)
KEY_REVOKED = ErrorKind(409, "Conflict", "key-revoked", INVALID_REQUEST)
UPSTREAM_CONFLICT = ErrorKind(409, "Conflict", "upstream-conflict", INVALID_REQUEST)
PAYLOAD_TOO_LARGE = ErrorKind(413, "Payload too large", "payload-too-large", INVALID_REQUEST)
UNSUPPORTED_MEDIA_TYPE = ErrorKind(415, "Unsupported media type", "unsupported-media-type", INVALID_REQUEST)
EXPECTATION_FAILED = ErrorKind(417, "Expectation failed", "expectation-failed", INVALID_REQUEST, "expectation")
VALIDATION_FAILED = ErrorKind(422, "Validation failed", "validation-failed", INVALID_PARAMS)
RATE_LIMITED = ErrorKind(429, "Too many requests", "rate-limited", RATE_LIMITED_CODE, "rate_limited")
HEADERS_TOO_LARGE = ErrorKind(431, "Request header fields too large", "headers-too-large", INVALID_REQUEST)
INTERNAL = ErrorKind(500, "Internal server error", "internal-error", INTERNAL_ERROR)
NOT_READY = ErrorKind(503, "Not ready", "not-ready", INTERNAL_ERROR)
LIMITER_UNAVAILABLE = ErrorKind(
    503, "Rate limiter unavailable", "limiter-unavailable", INTERNAL_ERROR, "limiter_unavailable"
)
IDENTITY_UNAVAILABLE = ErrorKind(
    503, "Identity provider unavailable", "identity-unavailable", INTERNAL_ERROR, "identity_unavailable"
)
STORE_UNAVAILABLE = ErrorKind(503, "Key store unavailable", "store-unavailable", INTERNAL_ERROR, "store_unavailable")
SESSIONS_UNAVAILABLE = ErrorKind(
    503, "Session store unavailable", "sessions-unavailable", INTERNAL_ERROR, "sessions_unavailable"
)
DENIALS_UNAVAILABLE = ErrorKind(503, "Recent denials unavailable", "denials-unavailable", INTERNAL_ERROR)
TOO_MANY_SESSIONS = ErrorKind(429, "Too many sessions", "too-many-sessions", RATE_LIMITED_CODE, "sessions")
TOO_MANY_STREAMS = ErrorKind(429, "Too many streams", "too-many-streams", RATE_LIMITED_CODE, "streams")
BATCH_TOO_LARGE = ErrorKind(400, "Batch too large", "batch-too-large", INVALID_REQUEST)

KINDS: tuple[ErrorKind, ...] = tuple(v for v in list(globals().values()) if isinstance(v, ErrorKind))
# Statuses aiohttp raises by itself (router, body size), mapped onto the table.
KIND_BY_STATUS: Mapping[int, ErrorKind] = {
    400: BAD_REQUEST,
    404: NOT_FOUND,
    405: METHOD_NOT_ALLOWED,
    406: NOT_ACCEPTABLE,
    408: REQUEST_TIMEOUT,
    413: PAYLOAD_TOO_LARGE,
    415: UNSUPPORTED_MEDIA_TYPE,
    417: EXPECTATION_FAILED,
    431: HEADERS_TOO_LARGE,
}


class ApiError(Exception):
    """A refusal or failure; each door renders it from ``kind``.

    ``detail`` is shown to the client and must hold no secret. ``extra`` adds
    problem+json members, ``data`` is the JSON-RPC error's ``data``,
    ``headers`` go on the answer at either door and ``audit`` adds fields to
    the request's audit event.
    """

    def __init__(
        self,
        kind: ErrorKind,
        detail: str,
        *,
        headers: Mapping[str, str] | None = None,
        extra: Mapping[str, Any] | None = None,
        data: Any = None,
        audit: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail
        self.headers = dict(headers or {})
        self.extra = dict(extra or {})
        self.data = data
        self.audit = dict(audit or {})


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
    """One line per bad field, for texts a person or a model reads."""
    return "; ".join(f"{e['field']}: {' '.join(e['messages'])}" for e in flatten_errors(errors))


class ValidationFailed(ApiError):
    """422 naming each bad field (REST ``errors`` member, JSON-RPC ``data.errors``)."""

    def __init__(self, errors: Mapping[str, Any], detail: str = "Some fields are not valid.") -> None:
        flat = flatten_errors(errors)
        super().__init__(VALIDATION_FAILED, detail, extra={"errors": flat}, data={"errors": flat})
        self.errors = errors
