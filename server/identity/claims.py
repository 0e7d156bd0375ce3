"""What a verified token is allowed: the admin rule and the token-scope -> tool mapping."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import TYPE_CHECKING

from skywarden.server.identity.claim_text import words
from skywarden.server.principal import ALL_TOOLS

if TYPE_CHECKING:
    from skywarden.server.identity.tokens import VerifiedToken

ALL_TOOLS_SCOPE = "tools"
TOOL_SCOPE_PREFIX = "tool:"


@dataclass(frozen=True)
class ClaimRule:
    """``claim=value``: the claim is a list holding the value, or a string equal to it or holding it
    as one of its space-separated words (as ``scope`` and Entra ID's ``scp`` are written)."""

    claim: str
    value: str

    @classmethod
    def parse(cls, text: str) -> ClaimRule:
        claim, _, value = text.partition("=")
        return cls(claim, value)

    def matches(self, token: VerifiedToken) -> bool:
        found = token.claims.get(self.claim)
        if isinstance(found, list):
            return self.value in found
        return isinstance(found, str) and (found == self.value or self.value in words(found))

    def __str__(self) -> str:
        return f"{self.claim}={self.value}"


def tool_scopes(
    token_scopes: Iterable[str], scope_map: Mapping[str, tuple[str, ...]], tool_names: AbstractSet[str]
) -> frozenset[str]:
    """What a token may call, as a key's scopes say it: each scope compared exactly as written,
    ``tools`` = every tool (``*``), ``tool:<name>`` = ``<name>`` when it is exactly one of
    ``tool_names`` (a tool's name, or a scope name tools declare, such as ``acme`` for the tools
    declared with ``scopes=["acme"]``), and a scope of ``oauth_scope_map`` = the names it lists
    that exist (``*`` there = every tool). Nothing else grants anything: no pattern (``tool:*``,
    ``tool:get_*``), no other case, no other spacing."""
    granted: set[str] = set()
    for scope in token_scopes:
        if scope == ALL_TOOLS_SCOPE:
            granted.add(ALL_TOOLS)
        elif scope.startswith(TOOL_SCOPE_PREFIX) and scope[len(TOOL_SCOPE_PREFIX) :] in tool_names:
            granted.add(scope[len(TOOL_SCOPE_PREFIX) :])
        granted.update(t for t in scope_map.get(scope, ()) if t == ALL_TOOLS or t in tool_names)
    return frozenset(granted)


def scopes_for_tool(
    tool_name: str, scope_map: Mapping[str, tuple[str, ...]], declared: tuple[str, ...] = ()
) -> list[str]:
    """Token scopes that grant ``tool_name`` (whose declaration names the scopes ``declared``),
    narrowest first (for an insufficient_scope challenge)."""
    grants = {tool_name, *declared, ALL_TOOLS}
    extra = [scope for scope, names in scope_map.items() if not grants.isdisjoint(names)]
    own = [TOOL_SCOPE_PREFIX + name for name in (tool_name, *declared)]
    return [*own, *extra, ALL_TOOLS_SCOPE]
