"""What the client returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ToolInfo:
    name: str
    title: str | None
    description: str | None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any] | None = None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ToolInfo:
        return cls(
            name=data["name"],
            title=data.get("title"),
            description=data.get("description"),
            input_schema=data.get("inputSchema") or {},
            output_schema=data.get("outputSchema"),
        )


@dataclass(frozen=True)
class ToolCallResult:
    content: list[dict[str, Any]]
    structured_content: dict[str, Any] | None = None
    is_error: bool = False
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def text(self) -> str:
        """The text parts of the content, joined."""
        return "\n".join(part.get("text", "") for part in self.content if part.get("type") == "text")

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ToolCallResult:
        return cls(
            content=list(data.get("content") or []),
            structured_content=data.get("structuredContent"),
            is_error=bool(data.get("isError", False)),
        )
