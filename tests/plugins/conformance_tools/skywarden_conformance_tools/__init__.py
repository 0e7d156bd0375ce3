"""The fixture tools of the MCP conformance suite, as a third-party Skywarden plugin.

Installed only in the test environment; it is also the proof that a package
outside Skywarden adds tools through the ``skywarden.tools`` entry point.
"""

from __future__ import annotations

import asyncio
import base64
import struct
import zlib
from typing import Any

from marshmallow import RAISE, Schema
from skywarden.tools import (
    MissingClientCapability,
    ToolContext,
    ToolError,
    ToolResult,
    audio_content,
    image_content,
    text_content,
)


class NoArguments(Schema):
    class Meta:
        unknown = RAISE


def _png_1x1_red() -> str:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    raw = b"\x00\xff\x00\x00"
    png = (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )
    return base64.b64encode(png).decode()


def _wav_silence() -> str:
    samples = b"\x00\x00" * 80
    header = b"RIFF" + struct.pack("<I", 36 + len(samples)) + b"WAVEfmt "
    header += struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16) + b"data" + struct.pack("<I", len(samples))
    return base64.b64encode(header + samples).decode()


PNG = _png_1x1_red()
WAV = _wav_silence()


class _Fixed:
    Arguments = NoArguments

    def __init__(self, name: str, description: str, content: list[dict[str, Any]]) -> None:
        self.name = name
        self.title = name
        self.description = description
        self._content = content

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        return ToolResult(content=list(self._content))


simple_text_tool = _Fixed(
    "test_simple_text",
    "Returns a simple text response",
    [text_content("This is a simple text response for testing.")],
)
image_tool = _Fixed("test_image_content", "Returns a 1x1 PNG image", [image_content(PNG, "image/png")])
audio_tool = _Fixed("test_audio_content", "Returns a short WAV clip", [audio_content(WAV, "audio/wav")])
embedded_resource_tool = _Fixed(
    "test_embedded_resource",
    "Returns an embedded text resource",
    [
        {
            "type": "resource",
            "resource": {
                "uri": "test://embedded-resource",
                "mimeType": "text/plain",
                "text": "This is an embedded resource content.",
            },
        }
    ],
)
multiple_content_tool = _Fixed(
    "test_multiple_content_types",
    "Returns text, an image and a resource",
    [
        text_content("Multiple content types test:"),
        image_content(PNG, "image/png"),
        {
            "type": "resource",
            "resource": {
                "uri": "test://mixed-content-resource",
                "mimeType": "application/json",
                "text": '{"test":"data","value":123}',
            },
        },
    ],
)


class _ErrorHandling:
    name = "test_error_handling"
    title = name
    description = "Always fails with a tool error"
    Arguments = NoArguments

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        raise ToolError("This tool intentionally returns an error for testing")


class _WithProgress:
    name = "test_tool_with_progress"
    title = name
    description = "Reports progress 0, 50 and 100 of 100"
    Arguments = NoArguments

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        for step in (0, 50, 100):
            await context.report_progress(step, 100, f"step {step}")
            await asyncio.sleep(0)
        return ToolResult(content=[text_content("Progress tool completed")])


error_handling_tool = _ErrorHandling()
progress_tool = _WithProgress()


class _MissingCapability:
    """Needs the client's sampling capability: without it the server must answer -32021."""

    name = "test_missing_capability"
    title = name
    description = "Requires the client capability 'sampling'"
    Arguments = NoArguments

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        if "sampling" not in (context.client_capabilities or {}):
            raise MissingClientCapability({"sampling": {}})
        return ToolResult(content=[text_content("The client declared sampling.")])


class _LoggingTool:
    """Logs on the server side; Skywarden never sends notifications/message to clients."""

    name = "test_logging_tool"
    title = name
    description = "Writes three server-side log lines"
    Arguments = NoArguments

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        for step in range(3):
            context.log.info("conformance logging tool", step=step)
        return ToolResult(content=[text_content("Logged three lines on the server.")])


class _StreamingElicitation:
    """Streams progress only: a server on this transport never sends requests to the client."""

    name = "test_streaming_elicitation"
    title = name
    description = "Reports progress; elicitation is not offered by this server"
    Arguments = NoArguments

    async def call(self, arguments: dict[str, Any], context: ToolContext) -> ToolResult:
        await context.report_progress(1, 2, "working")
        return ToolResult(content=[text_content("Elicitation is not supported; finished without it.")])


missing_capability_tool = _MissingCapability()
logging_tool = _LoggingTool()
streaming_elicitation_tool = _StreamingElicitation()
