"""Protocol facts: revisions, header names, error codes, and JSON-RPC framing.

The error codes live in the server's one error table (``skywarden.server.errors``)
and are re-exported here, so MCP code reads ``p.INVALID_PARAMS``.
"""

from __future__ import annotations

from typing import Any

from skywarden.server.errors import (
    FORBIDDEN_CODE as FORBIDDEN_CODE,
)
from skywarden.server.errors import (
    HEADER_MISMATCH as HEADER_MISMATCH,
)
from skywarden.server.errors import (
    INTERNAL_ERROR as INTERNAL_ERROR,
)
from skywarden.server.errors import (
    INVALID_PARAMS as INVALID_PARAMS,
)
from skywarden.server.errors import (
    INVALID_REQUEST as INVALID_REQUEST,
)
from skywarden.server.errors import (
    METHOD_NOT_FOUND as METHOD_NOT_FOUND,
)
from skywarden.server.errors import (
    MISSING_CLIENT_CAPABILITY as MISSING_CLIENT_CAPABILITY,
)
from skywarden.server.errors import (
    PARSE_ERROR as PARSE_ERROR,
)
from skywarden.server.errors import (
    RATE_LIMITED_CODE as RATE_LIMITED_CODE,
)
from skywarden.server.errors import (
    UNAUTHORIZED_CODE as UNAUTHORIZED_CODE,
)
from skywarden.server.errors import (
    UNSUPPORTED_VERSION as UNSUPPORTED_VERSION,
)
from skywarden.server.errors import (
    ApiError,
)
from skywarden.server.jsonutil import dumps

HANDSHAKE_VERSIONS = ("2025-03-26", "2025-06-18", "2025-11-25")
LATEST_HANDSHAKE = HANDSHAKE_VERSIONS[-1]
# Versions a client may name in the header that still mean "handshake era" (we then refuse the old ones).
HANDSHAKE_ERA_NAMES = frozenset({"2024-11-05", *HANDSHAKE_VERSIONS})
MODERN_VERSIONS = ("2026-07-28",)
BATCH_VERSIONS = frozenset({"2025-03-26"})
STRUCTURED_VERSIONS = frozenset({"2025-06-18", "2025-11-25", "2026-07-28"})
ARGUMENT_ERRORS_AS_RESULTS = frozenset({"2025-11-25", "2026-07-28"})  # SEP-1303

VERSION_HEADER = "MCP-Protocol-Version"
SESSION_HEADER = "Mcp-Session-Id"
METHOD_HEADER = "Mcp-Method"
NAME_HEADER = "Mcp-Name"
ROUTING_HEADERS = ("mcp-protocol-version", "mcp-method", "mcp-name")

META_PROTOCOL_VERSION = "io.modelcontextprotocol/protocolVersion"
META_CLIENT_CAPABILITIES = "io.modelcontextprotocol/clientCapabilities"
META_CLIENT_INFO = "io.modelcontextprotocol/clientInfo"
META_SERVER_INFO = "io.modelcontextprotocol/serverInfo"

MODERN_ERROR_STATUS = {
    PARSE_ERROR: 400,
    INVALID_REQUEST: 400,
    INVALID_PARAMS: 400,
    HEADER_MISMATCH: 400,
    MISSING_CLIENT_CAPABILITY: 400,
    UNSUPPORTED_VERSION: 400,
    METHOD_NOT_FOUND: 404,
    FORBIDDEN_CODE: 403,
}


class RpcError(Exception):
    """A JSON-RPC error to answer with; ``status`` overrides the era's default HTTP status."""

    def __init__(
        self,
        code: int,
        message: str,
        data: Any = None,
        status: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data
        self.status = status
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.data is not None:
            error["data"] = self.data
        return error


# A JSON-RPC error answered inside a session keeps HTTP 200 at the handshake revisions, except
# these statuses, which clients and proxies act on at the HTTP level.
TRANSPORT_STATUSES = frozenset({401, 403, 429, 503})


def rpc_error_from(error: ApiError) -> RpcError:
    """The JSON-RPC rendering of an ``ApiError``: its kind's code, its detail, data and headers."""
    status = error.kind.status if error.kind.status in TRANSPORT_STATUSES else None
    return RpcError(error.kind.rpc_code, error.detail, data=error.data, status=status, headers=error.headers)


def error_message(request_id: Any, error: RpcError) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "error": error.body()}


def result_message(request_id: Any, result: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def result_bytes(request_id: Any, encoded_result: bytes) -> bytes:
    """Frame an already-encoded result without decoding it again (the cached tools/list path)."""
    return b'{"jsonrpc":"2.0","id":' + dumps(request_id) + b',"result":' + encoded_result + b"}"


def valid_request_id(value: Any) -> bool:
    return (isinstance(value, (str, int)) and not isinstance(value, bool)) or value is None


def is_request(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and isinstance(message.get("method"), str)
        and "id" in message
        and valid_request_id(message["id"])
        and message["id"] is not None
        and isinstance(message.get("params", {}), dict)
    )


def is_notification(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and isinstance(message.get("method"), str)
        and "id" not in message
    )


def is_response(message: Any) -> bool:
    return (
        isinstance(message, dict)
        and message.get("jsonrpc") == "2.0"
        and "id" in message
        and "method" not in message
        and ("result" in message or "error" in message)
    )


def echo_id(message: Any) -> Any:
    """The request id to echo in an error, when the message has a usable one."""
    if isinstance(message, dict) and valid_request_id(message.get("id")):
        return message.get("id")
    return None
