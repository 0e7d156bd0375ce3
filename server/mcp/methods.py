"""The MCP methods a tools server answers, shared by every revision.

Results are shaped per revision: ``title``/``outputSchema``/``structuredContent``
from 2025-06-18, and ``resultType``/``ttlMs``/``cacheScope``/serverInfo only on
2026-07-28. The tools/list result is encoded once per (revision, scopes) and
kept (``calls/caches.py``); a kept tool result once per revision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from skywarden.server import __version__
from skywarden.server.calls import caches
from skywarden.server.calls.pipeline import InvalidArguments, ToolPipeline, UnknownTool
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp import protocol as p
from skywarden.server.plugins.model import RegisteredTool
from skywarden.server.principal import Principal
from skywarden.server.request_state import Prepaid
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ProgressReporter, ToolResult, no_progress, text_content

SERVER_INFO = {"name": "skywarden", "title": "Skywarden", "version": __version__}
CAPABILITIES = {"tools": {"listChanged": True}}  # mcp/streams.py
TOOLS_TTL_MS = 60_000
DISCOVER_TTL_MS = 300_000
MODERN_META = {p.META_SERVER_INFO: SERVER_INFO}


def modern(result: dict[str, Any]) -> dict[str, Any]:
    """Mark a 2026-07-28 result: ``resultType`` and the serverInfo stamp."""
    result["resultType"] = "complete"
    result["_meta"] = MODERN_META
    return result


def initialize_result(requested: Any) -> dict[str, Any]:
    version = requested if requested in p.HANDSHAKE_VERSIONS else p.LATEST_HANDSHAKE
    return {"protocolVersion": version, "capabilities": CAPABILITIES, "serverInfo": SERVER_INFO}


def discover_result() -> dict[str, Any]:
    return modern(
        {
            "supportedVersions": list(p.MODERN_VERSIONS),
            "capabilities": CAPABILITIES,
            "ttlMs": DISCOVER_TTL_MS,
            "cacheScope": "public",
        }
    )


@dataclass(frozen=True)
class ToolView:
    """Which tools an endpoint shows, and by which names: every tool as it is (``/mcp``), or one
    upstream's alone, without its prefix (``/mcp/u/<name>``: ``add`` for ``calc__add``)."""

    upstream: str | None = None
    prefix: str = ""

    def shows(self, tool: RegisteredTool) -> bool:
        return self.upstream is None or tool.upstream == self.upstream

    def outside(self, name: str) -> str:
        return name[len(self.prefix) :]

    def inside(self, name: str) -> str:
        return self.prefix + name


EVERY_TOOL = ToolView()


class McpMethods:
    def __init__(self, pipeline: ToolPipeline, tool_lists: TTLCache | None = None, view: ToolView = EVERY_TOOL) -> None:
        self.pipeline = pipeline
        self.tool_lists = tool_lists if tool_lists is not None else caches.tool_lists()
        self.view = view

    def audited_name(self, name: str) -> str:
        """The tool name the audit event records: the full name of a tool this endpoint shows,
        else the name as the client sent it (a refused one names no other tool)."""
        if self.view.upstream is None:
            return name
        tool = self._shown_tool(name)
        return tool.name if tool is not None else name

    def _shown_tool(self, name: str) -> RegisteredTool | None:
        """The tool this endpoint shows by ``name`` (one upstream's alone: not whatever else the
        name meets once prefixed, a plugin's or another upstream's)."""
        tool = self.pipeline.registry.get(self.view.inside(name))
        return tool if tool is not None and self.view.shows(tool) else None

    def viewed(self, view: ToolView) -> McpMethods:
        """The same methods through ``view`` (the encoded lists are kept apart per view)."""
        return McpMethods(self.pipeline, self.tool_lists, view)

    def tools_list(self, version: str, principal: Principal) -> bytes:
        """The encoded tools/list result for this revision and this key's scopes (what it shows
        depends on nothing else: the registry is the app's)."""
        view = self.view
        cache_key = (version, principal.scopes, view.upstream)
        cached: bytes | None = self.tool_lists.get(cache_key, count=False)
        if cached is not None:
            return cached
        structured = version in p.STRUCTURED_VERSIONS
        tools = []
        for tool in self.pipeline.visible_tools(principal):
            if not view.shows(tool):
                continue
            entry = tool.describe(with_output_schema=structured)
            if not structured:
                entry.pop("title", None)
            if view.prefix:
                entry["name"] = view.outside(entry["name"])
            tools.append(entry)
        result: dict[str, Any] = {"tools": tools}
        if version in p.MODERN_VERSIONS:
            result.update(ttlMs=TOOLS_TTL_MS, cacheScope="private")
            modern(result)
        encoded = dumps(result)
        self.tool_lists.keep(cache_key, encoded)
        return encoded

    async def tools_call(
        self,
        version: str,
        params: dict[str, Any],
        principal: Principal,
        *,
        prepaid: Prepaid | None = None,
        report_progress: ProgressReporter = no_progress,
        client_capabilities: dict[str, Any] | None = None,
    ) -> tuple[bytes, bool, str | None]:
        """Run the call through the pipeline: the encoded result, whether it is an error, and the
        upstream MCP server the tool belongs to (None for a plugin's).
        Refusals propagate as ``ApiError`` except argument errors, which are an ``isError``
        result from 2025-11-25 on (SEP-1303)."""
        name = params.get("name")
        if not isinstance(name, str):
            raise p.RpcError(p.INVALID_PARAMS, "params.name must be the name of a tool")
        if self.view.upstream is not None and self._shown_tool(name) is None:
            raise UnknownTool(name, self.pipeline.why_absent(self.view.inside(name)))
        try:
            outcome = await self.pipeline.call(
                self.view.inside(name),
                params.get("arguments"),
                principal,
                shown=name,
                prepaid=prepaid,
                report_progress=report_progress,
                client_capabilities=client_capabilities or {},
            )
        except InvalidArguments as exc:
            if version not in p.ARGUMENT_ERRORS_AS_RESULTS:
                raise
            error = ToolResult(content=[text_content(exc.detail)], is_error=True)
            return dumps(call_result(version, error)), True, None
        return outcome.encoded(version, _CALL_RESULT_SHAPES[version]), outcome.result.is_error, outcome.tool.upstream


def call_result(version: str, result: ToolResult) -> dict[str, Any]:
    """A tools/call result as this revision shapes it."""
    body: dict[str, Any] = {"content": result.content, "isError": result.is_error}
    if result.structured is not None and not result.is_error and version in p.STRUCTURED_VERSIONS:
        body["structuredContent"] = result.structured
    if version in p.MODERN_VERSIONS:
        modern(body)
    return body


# One shaping function per revision a session or a stateless request can be at.
_CALL_RESULT_SHAPES = {v: functools.partial(call_result, v) for v in (*p.HANDSHAKE_VERSIONS, *p.MODERN_VERSIONS)}
