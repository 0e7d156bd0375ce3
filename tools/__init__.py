"""Skywarden tool plugins: everything a tool package imports.

    from skywarden.tools import Context, tool

    @tool
    async def word_count(ctx: Context, text: str) -> int:
        "Count the words in a text."
        return len(text.split())

Point an entry point of the group ``skywarden.tools`` at a tool or a ``Plugin``. This package
is the stable contract; the server's side of it lives in ``skywarden.server.plugins``. See
docs/plugins.md.
"""

from skywarden.tools.contract import (
    Context,
    MissingClientCapability,
    ToolContext,
    ToolError,
    ToolResult,
    audio_content,
    image_content,
    text_content,
)
from skywarden.tools.declare import Plugin, ToolSpec, tool
from skywarden.tools.http import HttpClient, HttpResponse, UpstreamError
from skywarden.tools.settings import Secret, Url, setting

__all__ = [
    "Context",
    "HttpClient",
    "HttpResponse",
    "MissingClientCapability",
    "Plugin",
    "Secret",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "ToolSpec",
    "UpstreamError",
    "Url",
    "audio_content",
    "image_content",
    "setting",
    "text_content",
    "tool",
]
