"""Skywarden client library: an aiohttp-based async client over REST and MCP, and an admin client."""

from skywarden.clients.admin import AdminClient
from skywarden.clients.client import SkywardenClient
from skywarden.clients.errors import (
    AuthenticationError,
    InvalidArguments,
    NotFound,
    PermissionDenied,
    RateLimited,
    ServerError,
    SkywardenError,
    ToolError,
    ToolNotFound,
    TransportError,
)
from skywarden.clients.http import RetryPolicy, Timeouts
from skywarden.clients.results import ToolCallResult, ToolInfo

__all__ = [
    "AdminClient",
    "AuthenticationError",
    "InvalidArguments",
    "NotFound",
    "PermissionDenied",
    "RateLimited",
    "RetryPolicy",
    "ServerError",
    "SkywardenClient",
    "SkywardenError",
    "Timeouts",
    "ToolCallResult",
    "ToolError",
    "ToolInfo",
    "ToolNotFound",
    "TransportError",
]
