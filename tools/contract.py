"""What a tool is, what it receives and what it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import marshmallow

ProgressReporter = Callable[[float, "float | None", "str | None"], Awaitable[None]]


async def no_progress(progress: float, total: float | None = None, message: str | None = None) -> None:
    return None


class ToolError(Exception):
    """A failure the caller should see as a tool result with ``isError: true``.

    The message is shown to the caller (and to the model), so it must be clear
    and must not contain secrets.
    """


class MissingClientCapability(Exception):
    """The tool needs a client capability (e.g. ``{"sampling": {}}``) the caller did not declare."""

    def __init__(self, capabilities: dict[str, Any]) -> None:
        super().__init__(f"This tool needs the client capabilities: {', '.join(sorted(capabilities))}")
        self.capabilities = capabilities


@dataclass
class ToolResult:
    content: list[dict[str, Any]]
    structured: dict[str, Any] | None = None
    is_error: bool = False


@dataclass
class ToolContext:
    """Everything a tool call gets besides its arguments, and nothing more of the server.

    ``upstream`` is the shared HTTP client for outside APIs (timeouts, size
    caps, caching); ``settings`` holds the tool's own settings only (its
    ``settings_group``: the server's ``<group>_*`` settings without the prefix,
    plus ``tool_settings.<group>``); ``log`` is bound to the request;
    ``principal`` is the authenticated caller.
    """

    upstream: Any  # the server's HTTP client for outside APIs (get_json)
    settings: Mapping[str, Any]
    log: Any
    principal: Any = None
    report_progress: ProgressReporter = no_progress
    client_capabilities: Mapping[str, Any] | None = None  # None when the door (REST) has no such notion


@runtime_checkable
class Tool(Protocol):
    name: str
    title: str
    description: str
    Arguments: type[marshmallow.Schema]

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult: ...


def text_content(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_content(data_b64: str, mime_type: str) -> dict[str, Any]:
    return {"type": "image", "data": data_b64, "mimeType": mime_type}


def audio_content(data_b64: str, mime_type: str) -> dict[str, Any]:
    return {"type": "audio", "data": data_b64, "mimeType": mime_type}
