"""What a tool is, what it receives and what it returns."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Generic

from typing_extensions import TypeVar

if TYPE_CHECKING:
    from skywarden.tools.http import HttpClient

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


T = TypeVar("T", default=Any)


@dataclass
class ToolResult(Generic[T]):
    """A tool's answer: ``content`` blocks for the model, and ``structured`` data (an instance of
    the declared result type, or a dict of its published shape) for ``structuredContent``.
    Annotate a tool ``-> ToolResult[Forecast]`` to publish ``Forecast`` as its output schema and
    still write the text yourself."""

    content: list[dict[str, Any]]
    structured: T | dict[str, Any] | None = None
    is_error: bool = False


S = TypeVar("S", default=Any)


@dataclass(slots=True)
class Context(Generic[S]):
    """What a tool call gets besides its arguments, and nothing more of the server.

    ``settings`` is the plugin's own settings (an instance of its settings dataclass; a tool
    without one gets an empty mapping, a class-form tool with ``settings_group`` its group's
    table); ``http`` the plugin's HTTP client for outside APIs (its User-Agent, the SSRF guard,
    timeouts, size caps, caching); ``log`` a structlog logger bound to the request and tool;
    ``principal`` the caller (``id``, ``name``, ``scopes``; ``None`` in start-up and shutdown
    hooks); ``state`` the plugin's own namespace, filled by its start-up hooks.
    """

    settings: S
    http: HttpClient
    log: Any
    principal: Any = None
    report_progress: ProgressReporter = no_progress
    client_capabilities: Mapping[str, Any] | None = None  # None when the door (REST) has no such notion
    state: SimpleNamespace = field(default_factory=SimpleNamespace)

    @property
    def upstream(self) -> HttpClient:
        """The HTTP client under its first name (plugin API 1)."""
        return self.http


ToolContext = Context  # plugin API 1's name, kept for class-form tools


def text_content(text: str) -> dict[str, Any]:
    return {"type": "text", "text": text}


def image_content(data_b64: str, mime_type: str) -> dict[str, Any]:
    return {"type": "image", "data": data_b64, "mimeType": mime_type}


def audio_content(data_b64: str, mime_type: str) -> dict[str, Any]:
    return {"type": "audio", "data": data_b64, "mimeType": mime_type}
