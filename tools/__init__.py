"""Skywarden tool plugins: the contract every tool package follows.

A plugin exposes one object per tool through the entry-point group
``skywarden.tools``. See ``docs/plugins.md``.
"""

from skywarden.tools.contract import (
    MissingClientCapability,
    Tool,
    ToolContext,
    ToolError,
    ToolResult,
    audio_content,
    image_content,
    text_content,
)

__all__ = [
    "MissingClientCapability",
    "Tool",
    "ToolContext",
    "ToolError",
    "ToolResult",
    "audio_content",
    "image_content",
    "text_content",
]
