"""``@tool`` and ``Plugin``: how a package declares its tools.

Declarations only: nothing here runs a tool or reads a setting. The server reads what is
declared (name, description, schemas from the signature, cost, scopes, caching, settings,
hooks) when it loads the plugin; see docs/plugins.md.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Generic, overload

from typing_extensions import ParamSpec, TypeVar

P = ParamSpec("P")
R = TypeVar("R")
S = TypeVar("S", default=Any)

Hook = Callable[[Any], Awaitable[None]]  # receives the plugin's Context (no caller, no request)


@dataclass(frozen=True, eq=False)
class ToolSpec(Generic[P, R]):
    """A tool declared with ``@tool`` (or ``@plugin.tool``): the function and what was said of it.

    Calling it calls the function, so a tool stays an ordinary async function in unit tests.
    """

    function: Callable[P, Awaitable[R]]
    name: str
    title: str | None = None
    description: str | None = None  # None: the function's docstring
    cost: int = 1
    scopes: tuple[str, ...] = ()  # scope names that grant this tool besides its own name
    cache_ttl: float | None = None  # seconds a successful result may answer identical arguments
    arguments: Any = None  # a marshmallow Schema class; None: derived from the signature
    result: Any = (
        None  # the structured result's type (a dataclass, TypedDict or Schema class); None: the return annotation
    )
    annotations: dict[str, Any] = field(default_factory=dict)  # MCP tool annotations (readOnlyHint, ...)
    plugin: Plugin[Any] | None = None

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> Awaitable[R]:
        return self.function(*args, **kwargs)


def _function(given: Any) -> Any:
    """What ``@tool`` was given first: the function, never an option written without its name."""
    if not callable(given):
        raise TypeError(f"@tool takes its options by name, such as @tool(scopes=[...]); got {type(given).__name__}")
    return given


class _Declare:
    """The options ``tool`` takes, shared by ``tool`` and ``Plugin.tool``."""

    @staticmethod
    def make(
        function: Callable[P, Awaitable[R]],
        plugin: Plugin[Any] | None,
        name: str | None,
        title: str | None,
        description: str | None,
        cost: int,
        scopes: tuple[str, ...] | list[str],
        cache_ttl: float | None,
        arguments: Any,
        result: Any,
        annotations: dict[str, Any] | None,
    ) -> ToolSpec[P, R]:
        given: object = scopes  # typed as a list, but a string is what a slip gives
        if isinstance(given, str):
            raise TypeError(f"scopes must be a list of scope names, such as [{given!r}], not a string")
        return ToolSpec(
            function=function,
            name=name or str(getattr(function, "__name__", "")),
            title=title,
            description=description,
            cost=cost,
            scopes=tuple(scopes),
            cache_ttl=cache_ttl,
            arguments=arguments,
            result=result,
            annotations=dict(annotations or {}),
            plugin=plugin,
        )


@overload
def tool(function: Callable[P, Awaitable[R]], /) -> ToolSpec[P, R]: ...


@overload
def tool(
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    cost: int = 1,
    scopes: tuple[str, ...] | list[str] = (),
    cache_ttl: float | None = None,
    arguments: Any = None,
    result: Any = None,
    annotations: dict[str, Any] | None = None,
) -> Callable[[Callable[P, Awaitable[R]]], ToolSpec[P, R]]: ...


def tool(
    function: Callable[P, Awaitable[R]] | None = None,
    /,
    *,
    name: str | None = None,
    title: str | None = None,
    description: str | None = None,
    cost: int = 1,
    scopes: tuple[str, ...] | list[str] = (),
    cache_ttl: float | None = None,
    arguments: Any = None,
    result: Any = None,
    annotations: dict[str, Any] | None = None,
) -> Any:
    """Declare an async function as a tool: ``@tool`` or ``@tool(cost=2, scopes=["acme"])``.

    The name is the function's, the description its docstring; the arguments are the
    parameters after the ``Context`` one, validated by a marshmallow schema made from their
    annotations (or ``arguments``, a Schema class); the return annotation is the structured
    result's type. Point an entry point of the group ``skywarden.tools`` at the result.
    """

    def declare(fn: Callable[P, Awaitable[R]]) -> ToolSpec[P, R]:
        return _Declare.make(
            fn, None, name, title, description, cost, scopes, cache_ttl, arguments, result, annotations
        )

    return declare(_function(function)) if function is not None else declare


class Plugin(Generic[S]):
    """Tools that share settings, an HTTP client identity and start-up/shutdown hooks.

    ``name`` is the settings prefix (``<name>_<setting>``, lower-case letters, digits and _);
    ``settings`` a dataclass whose fields are declared with ``setting(...)``; ``user_agent``
    what the plugin's HTTP calls send (default: the distribution's name and version, then
    Skywarden's). Point one entry point of the group ``skywarden.tools`` at the plugin.
    """

    def __init__(
        self,
        name: str,
        *,
        settings: type[S] | None = None,
        user_agent: str | None = None,
        title: str | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.user_agent = user_agent
        self.title = title or name
        self.tools: list[ToolSpec[Any, Any]] = []
        self.startup: list[Hook] = []
        self.shutdown: list[Hook] = []

    @overload
    def tool(self, function: Callable[P, Awaitable[R]], /) -> ToolSpec[P, R]: ...

    @overload
    def tool(
        self,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        cost: int = 1,
        scopes: tuple[str, ...] | list[str] = (),
        cache_ttl: float | None = None,
        arguments: Any = None,
        result: Any = None,
        annotations: dict[str, Any] | None = None,
    ) -> Callable[[Callable[P, Awaitable[R]]], ToolSpec[P, R]]: ...

    def tool(
        self,
        function: Callable[P, Awaitable[R]] | None = None,
        /,
        *,
        name: str | None = None,
        title: str | None = None,
        description: str | None = None,
        cost: int = 1,
        scopes: tuple[str, ...] | list[str] = (),
        cache_ttl: float | None = None,
        arguments: Any = None,
        result: Any = None,
        annotations: dict[str, Any] | None = None,
    ) -> Any:
        """``@plugin.tool``: as ``tool``, and the tool belongs to this plugin."""

        def declare(fn: Callable[P, Awaitable[R]]) -> ToolSpec[P, R]:
            spec = _Declare.make(
                fn, self, name, title, description, cost, scopes, cache_ttl, arguments, result, annotations
            )
            self.tools.append(spec)
            return spec

        return declare(_function(function)) if function is not None else declare

    def on_startup(self, hook: Hook) -> Hook:
        """Run ``await hook(context)`` when the server starts, in declaration order; a hook that
        raises stops the start with an error naming the plugin."""
        self.startup.append(hook)
        return hook

    def on_shutdown(self, hook: Hook) -> Hook:
        """Run ``await hook(context)`` when the server stops (after every call has ended), in
        reverse declaration order; each runs even if another failed."""
        self.shutdown.insert(0, hook)
        return hook

    def __repr__(self) -> str:
        return f"Plugin({self.name!r}, tools={[t.name for t in self.tools]})"
