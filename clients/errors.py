"""Typed errors: one class per way a call can fail, each with the server's detail and request id."""

from __future__ import annotations

from typing import Any


class SkywardenError(Exception):
    """Base class. ``status`` is the HTTP status (None for transport failures)."""

    exit_code = 10

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        detail: dict[str, Any] | None = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.detail = detail or {}
        self.request_id = request_id

    def __str__(self) -> str:
        suffix = f" (HTTP {self.status})" if self.status else ""
        rid = f" [request {self.request_id}]" if self.request_id else ""
        return f"{self.message}{suffix}{rid}"


class AuthenticationError(SkywardenError):
    """401: missing, invalid, expired or revoked credential (the server does not say which)."""

    exit_code = 3


class PermissionDenied(SkywardenError):
    """403: the key may not use this tool, or the origin/host was refused."""

    exit_code = 4


class NotFound(SkywardenError):
    """404 for something that is not a tool (an admin key id, a route)."""

    exit_code = 5


class ToolNotFound(NotFound):
    exit_code = 5


class InvalidArguments(SkywardenError):
    """The arguments failed the tool's schema; ``field_errors`` maps field -> messages."""

    exit_code = 6

    def __init__(self, message: str, *, field_errors: dict[str, list[str]] | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.field_errors = field_errors or {}


class RateLimited(SkywardenError):
    """429; ``retry_after`` in seconds when the server said."""

    exit_code = 7

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


class ToolError(SkywardenError):
    """The tool ran and answered ``isError: true`` (raised only when asked to)."""

    exit_code = 1

    def __init__(self, message: str, *, result: Any = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.result = result


class ServerError(SkywardenError):
    """5xx, or an answer that breaks the protocol."""

    exit_code = 8


class TransportError(SkywardenError):
    """No answer: connection refused or dropped, TLS failure, timeout."""

    exit_code = 9
