"""Who is calling: the result of authentication, read by authorization."""

from __future__ import annotations

from dataclasses import dataclass, field

ALL_TOOLS = "*"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "key" or "admin"
    id: str
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    rate_limit: str | None = None

    def allows(self, tool_name: str) -> bool:
        return ALL_TOOLS in self.scopes or tool_name in self.scopes

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"
