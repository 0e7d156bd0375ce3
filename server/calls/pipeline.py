"""The one path a tool call takes, whichever door (REST or MCP) it came through.

lookup -> authorization -> charging (rate limit and tool cost) -> argument
validation -> a kept result, or a concurrency slot -> invocation -> result.
Each refusal is an ``ApiError`` from the server's error table; the doors only
translate in and out. A tool's own failure is a result with ``is_error`` set,
never an error.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import marshmallow
import structlog

from skywarden.server.calls.caches import kept_result_key, no_kept_results, validated_arguments
from skywarden.server.errors import (
    CAPABILITY_REQUIRED,
    INSUFFICIENT_SCOPE,
    RATE_LIMITED,
    UNKNOWN_TOOL,
    ApiError,
    ValidationFailed,
    describe_errors,
)
from skywarden.server.http.challenges import REALM, bearer_challenge
from skywarden.server.jsonutil import dumps
from skywarden.server.plugins.http_client import FreshnessTracker
from skywarden.server.plugins.model import ArgumentsRejected
from skywarden.server.plugins.registry import RegisteredTool, ToolRegistry
from skywarden.server.plugins.results import InvalidResult, ResultMismatch, ResultNotJson
from skywarden.server.plugins.runtime import PluginRuntime
from skywarden.server.principal import Principal
from skywarden.server.request_state import Prepaid
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import (
    Context,
    MissingClientCapability,
    ProgressReporter,
    ToolError,
    ToolResult,
    no_progress,
    text_content,
)
from skywarden.tools.http import UpstreamError

log = structlog.get_logger("skywarden.tools")

INSUFFICIENT_SCOPE_CHALLENGE = bearer_challenge(realm=REALM, error="insufficient_scope")
MAX_NAME_SHOWN = 128  # the longest tool name MCP allows; longer input is cut in error texts
CONCURRENCY_RETRY_SECONDS = 1
ARGUMENTS_MUST_BE_AN_OBJECT = "Arguments must be a JSON object."

# ``RateLimits.charge``: units of a principal's own limit, answered with its RateLimit fields.
Charger = Callable[[Principal, int], Awaitable[dict[str, str]]]


class UnknownTool(ApiError):
    def __init__(self, name: str, why: str | None = None) -> None:
        super().__init__(UNKNOWN_TOOL, f"Unknown tool: {name[:MAX_NAME_SHOWN]}" + (f" ({why})" if why else ""))
        self.name = name


class ToolForbidden(ApiError):
    def __init__(self, name: str, detail: str = "", challenge: str = INSUFFICIENT_SCOPE_CHALLENGE) -> None:
        super().__init__(
            INSUFFICIENT_SCOPE,
            detail or f"This API key may not use the tool {name!r}.",
            headers={"WWW-Authenticate": challenge},
        )
        self.name = name


def forbid_tool(tool: RegisteredTool, principal: Principal, shown: str) -> ApiError:
    """The 403 for a key without the tool (or one of its scopes) in its scopes (resource-server
    mode has its own). ``shown`` is the tool's name as the endpoint shows it."""
    return ToolForbidden(shown)


class InvalidArguments(ValidationFailed):
    def __init__(self, tool: str, errors: Mapping[str, Any]) -> None:
        super().__init__(errors, f"Invalid arguments for {tool}: {describe_errors(errors)}")
        self.tool = tool


class CapabilityRequired(ApiError):
    def __init__(self, capabilities: Mapping[str, Any]) -> None:
        super().__init__(
            CAPABILITY_REQUIRED,
            f"This tool needs the client capabilities: {', '.join(sorted(capabilities))}. "
            "Call it over MCP (POST /mcp) with a client that declares them.",
            data={"requiredCapabilities": dict(capabilities)},
        )


class TooManyConcurrentCalls(ApiError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            RATE_LIMITED,
            f"This key already has {limit} tool calls running; retry when one finishes.",
            headers={"Retry-After": str(CONCURRENCY_RETRY_SECONDS)},
            data={"policy": "concurrency"},
            audit={"limit": "concurrency"},
        )


@dataclass
class CallOutcome:
    tool: RegisteredTool
    result: ToolResult
    _encoded: dict[str, bytes] = field(default_factory=dict, repr=False)

    def encoded(self, shape: str, build: Callable[[ToolResult], Any]) -> bytes:
        """``build(result)`` as JSON, encoded once per shape (a door's answer format): a kept
        outcome answers every identical call with the same bytes. ``shape`` names ``build``."""
        found = self._encoded.get(shape)
        if found is None:
            try:
                found = dumps(build(self.result))
            except (TypeError, ValueError, RecursionError):  # content that is no JSON: bytes, a cycle, ...
                log.error("tool result cannot be written as JSON", tool=self.tool.name)
                text = f"The tool {self.tool.name} returned a result that cannot be written as JSON."
                self.result = ToolResult(content=[text_content(text)], is_error=True)
                self._encoded.clear()
                found = dumps(build(self.result))
            self._encoded[shape] = found
        return found


@dataclass
class ToolPipeline:
    registry: ToolRegistry
    runtimes: Mapping[str, PluginRuntime]  # by tool name: its plugin's settings, HTTP client and state
    charge: Charger | None = None
    max_concurrent: int = 8
    # the scope refusal (resource-server mode: its own), naming the tool as the endpoint shows it
    refuse: Callable[[RegisteredTool, Principal, str], ApiError] = forbid_tool
    results: TTLCache = field(default_factory=no_kept_results)  # kept outcomes of cache_ttl and cache_results tools
    # raw argument key -> (validated arguments, their own key: what a kept result is kept under)
    validated: TTLCache = field(default_factory=validated_arguments)
    # the runtime of a tool that joined after the app was built (an upstream's: it reads none of it)
    default_runtime: PluginRuntime = field(default_factory=lambda: PluginRuntime("", MappingProxyType({}), None))
    # why a tool of this name is not offered now, when it may be later (an upstream's: starting, ...)
    why_absent: Callable[[str], str | None] = lambda name: None
    _running: dict[str, int] = field(default_factory=dict)
    _loggers: dict[str, Any] = field(default_factory=dict)

    def visible_tools(self, principal: Principal) -> list[RegisteredTool]:
        return [t for t in self.registry if principal.allows(t.grants)]

    def authorize(self, name: Any, principal: Principal, shown: str | None = None) -> RegisteredTool:
        """Steps 1-2: the tool exists and this principal may use it. A refusal names the tool
        ``shown`` (how the endpoint names it: ``add`` at ``/mcp/u/calc`` for ``calc__add``)."""
        if not isinstance(name, str):
            raise UnknownTool(shown if shown is not None else str(name))
        tool = self.registry.get(name)
        if tool is None:
            raise UnknownTool(shown if shown is not None else name, self.why_absent(name))
        if not principal.allows(tool.grants):
            raise self.refuse(tool, principal, shown if shown is not None else tool.name)
        return tool

    async def call(
        self,
        name: Any,
        arguments: Any,
        principal: Principal,
        *,
        shown: str | None = None,
        prepaid: Prepaid | None = None,
        report_progress: ProgressReporter = no_progress,
        client_capabilities: Mapping[str, Any] | None = None,
    ) -> CallOutcome:
        """The call of the tool ``name``; its refusals name the tool ``shown`` (default: ``name``)."""
        tool = self.authorize(name, principal, shown)
        shown = shown if shown is not None else tool.name
        await self._charge(tool, principal, prepaid)
        validated, result_key = self._validate(tool, arguments, shown)
        invocation = (tool, validated, principal, report_progress, client_capabilities, shown)
        if tool.cache_ttl is not None and self.results.max_entries:
            result_key = result_key if result_key is not None else kept_result_key(tool.name, validated)
        elif not tool.cache_results or not self.results.max_entries:
            result_key = None
        if result_key is None:
            return CallOutcome(tool, await self._invoke(*invocation))
        kept: CallOutcome | None = self.results.get(result_key)
        if kept is not None:
            return kept
        with FreshnessTracker() as freshness:
            result = await self._invoke(*invocation)
        outcome = CallOutcome(tool, result)
        if result.is_error:
            return outcome
        if tool.cache_ttl is not None:  # for its TTL, and no longer than the upstream answers it used
            self.results.put(result_key, outcome, tool.cache_ttl, until=freshness.until)
        elif freshness.consulted:  # cache_results: while the upstream answers it used are fresh
            self.results.put_until(result_key, outcome, freshness.until)
        return outcome

    async def _charge(self, tool: RegisteredTool, principal: Principal, prepaid: Prepaid | None) -> None:
        units = tool.cost - (prepaid.take(tool.cost) if prepaid is not None else 0)
        if units > 0 and self.charge is not None and principal.metered:
            await self.charge(principal, units)

    def _validate(
        self, tool: RegisteredTool, arguments: Any, shown: str
    ) -> tuple[dict[str, Any], tuple[Any, ...] | None]:
        """The validated arguments, and their key when identical sets may share work (a
        ``pure_arguments`` tool's short scalars). The key is the validated set's, not the input's:
        ``"ks"`` and ``" KS"`` validate alike and share what is kept under it."""
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            raise InvalidArguments(shown, {"_schema": [ARGUMENTS_MUST_BE_AN_OBJECT]})
        memo_key = _memo_key(tool, arguments)
        if memo_key is not None:
            found = self.validated.get(memo_key, count=False)
            if found is not None:
                return dict(found[0]), found[1]  # scalars only: a shallow copy is a full one
        try:
            validated = tool.arguments_schema.load(arguments)
        except marshmallow.ValidationError as exc:
            errors = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
            raise InvalidArguments(shown, errors) from None
        if memo_key is None or not all(type(v) in _SCALARS for v in validated.values()):
            return validated, None
        validated_key = _memo_key(tool, validated)
        self.validated.keep(memo_key, (dict(validated), validated_key))
        return validated, validated_key

    def _take_slot(self, key_id: str) -> None:
        """One of the key's ``max_concurrent`` running calls, held for the length of the call."""
        count = self._running.get(key_id, 0)
        if count >= self.max_concurrent:
            raise TooManyConcurrentCalls(self.max_concurrent)
        self._running[key_id] = count + 1

    def _free_slot(self, key_id: str) -> None:
        left = self._running[key_id] - 1
        if left:
            self._running[key_id] = left
        else:
            del self._running[key_id]

    async def _invoke(
        self,
        tool: RegisteredTool,
        arguments: dict[str, Any],
        principal: Principal,
        report_progress: ProgressReporter,
        client_capabilities: Mapping[str, Any] | None,
        shown: str,
    ) -> ToolResult:
        """Steps 5-7: the call, in one of the key's concurrency slots, and its result. A failure
        names the tool ``shown`` (an error result is never kept, so never shared between
        endpoints that name the tool differently)."""
        bound = self._loggers.get(tool.name)
        if bound is None:
            bound = self._loggers[tool.name] = log.bind(tool=tool.name)
        runtime = self.runtimes.get(tool.name) or self.default_runtime
        context = Context(
            runtime.settings,
            runtime.http,
            bound,
            principal,
            report_progress,
            client_capabilities,
            runtime.state,
        )
        self._take_slot(principal.id)
        try:
            returned = await tool.invoke(arguments, context)
        except ToolError as exc:
            log_tool_failure(bound, exc)
            return ToolResult(content=[text_content(runtime.scrub(str(exc)))], is_error=True)
        except ArgumentsRejected as exc:
            raise InvalidArguments(shown, exc.errors) from None
        except ResultMismatch as exc:  # a tool that checks its own result (an upstream's)
            return _mismatched(bound, exc, shown)
        except MissingClientCapability as exc:
            raise CapabilityRequired(exc.capabilities) from None
        except asyncio.CancelledError:
            raise
        except Exception:
            bound.exception("tool raised an unexpected error")
            return ToolResult(
                content=[text_content(f"The tool {shown} failed unexpectedly; the error was logged.")],
                is_error=True,
            )
        finally:
            self._free_slot(principal.id)
        try:
            return tool.shape(returned)
        except ResultMismatch as exc:
            return _mismatched(bound, exc, shown)
        except ResultNotJson:
            bound.error("tool result cannot be written as JSON")
            text = f"The tool {shown} returned a result that cannot be written as JSON."
            return ToolResult(content=[text_content(text)], is_error=True)
        except InvalidResult:
            bound.error(
                "tool returned an unexpected value",
                returned=type(returned).__name__,
                hint="return a str or a ToolResult, or annotate the result type (-> int, -> Thing)",
            )
            return ToolResult(content=[text_content(f"The tool {shown} returned an invalid result.")], is_error=True)


def _mismatched(bound: Any, mismatch: ResultMismatch, shown: str) -> ToolResult:
    bound.error("tool result does not match its output schema", failures=mismatch.failures)
    text = f"The tool {shown} returned a result that does not match its output schema."
    return ToolResult(content=[text_content(text)], is_error=True)


MAX_LOGGED_DETAIL = 300


def upstream_failure_of(error: BaseException) -> UpstreamError | None:
    """The upstream failure behind a tool's error: the error itself, or what it was raised from
    or while handling (a tool that turns an upstream 404 into its own message)."""
    seen: BaseException | None = error
    for _ in range(8):  # a chain is short; never loop on a cycle
        if seen is None or isinstance(seen, UpstreamError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def log_tool_failure(bound: Any, error: ToolError) -> None:
    """One warning per failed call (the caller gets a 200 with ``isError``, so nothing else
    records why): the tool (bound), the request id (from the context), and for an upstream
    failure its address without query, status and cause. The tool's own message is logged only
    when it is the tool's: an upstream failure's may quote what the upstream answered."""
    fields: dict[str, Any] = {"error": type(error).__name__}
    upstream = upstream_failure_of(error)
    if upstream is not None:
        fields.update(upstream=upstream.url, upstream_status=upstream.status, cause=upstream.cause)
    if upstream is not error:
        fields["detail"] = str(error)[:MAX_LOGGED_DETAIL]
    bound.warning("tool call failed", **fields)


_SCALARS = frozenset({str, int, float, bool, type(None)})
_MEMO_MAX_ITEMS = 16
_MEMO_MAX_TEXT = 256


def _memo_key(tool: RegisteredTool, arguments: dict[str, Any]) -> tuple[Any, ...] | None:
    """A key for identical arguments of a ``pure_arguments`` tool: a few short scalars, each with
    its type (``True`` and ``1`` validate differently). Anything else is validated every time."""
    if not tool.pure_arguments or len(arguments) > _MEMO_MAX_ITEMS:
        return None
    items = []
    for name, value in arguments.items():
        kind = type(value)
        if kind not in _SCALARS or (kind is str and len(value) > _MEMO_MAX_TEXT):
            return None
        items.append((name, kind, value.hex() if kind is float else value))  # -0.0 and 0.0 apart
    items.sort()  # by name: names are unique, so the rest of an item is never compared
    return (tool.name, *items)
