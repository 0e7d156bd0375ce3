"""Plugins' start-up and shutdown hooks.

When the app starts (after the upstream pool opens), each plugin's start-up hooks run, plugin by
plugin in the registry's order, each hook in its declaration order, with a ``Context`` of the
plugin (its settings, HTTP client, state and a logger bound to it; no caller). One that raises or
takes longer than ``plugin_hook_timeout`` stops the start: the plugins already started are shut
down, then ``PluginStartError`` says which hook failed and why. When the app stops (after the
last call has ended, before the upstream pool closes) the shutdown hooks of the started plugins
run in the reverse plugin order; one that fails is logged and the others still run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from typing import Any

import structlog
from aiohttp import web

from skywarden.server.plugins.registry import PluginInfo
from skywarden.server.plugins.runtime import PluginRuntime
from skywarden.tools.contract import Context

log = structlog.get_logger("skywarden.plugins")


class PluginStartError(RuntimeError):
    """A plugin's start-up hook failed; the message is one line naming the plugin and the hook."""


def _hook_name(hook: Any) -> str:
    return str(getattr(hook, "__name__", None) or type(hook).__name__)


def _reason(exc: BaseException, timeout: float) -> str:
    if isinstance(exc, TimeoutError):
        return f"TimeoutError: still running after {timeout:g} s (plugin_hook_timeout)"
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


class PluginLifecycle:
    def __init__(
        self, plugins: Sequence[PluginInfo], runtimes: Mapping[str, PluginRuntime], hook_timeout: float
    ) -> None:
        self.plugins = [p for p in plugins if p.startup or p.shutdown]
        self.runtimes = runtimes
        self.hook_timeout = hook_timeout
        self._started: list[PluginInfo] = []

    def _context(self, plugin: PluginInfo) -> Context[Any]:
        runtime = self.runtimes[plugin.name]
        return Context(runtime.settings, runtime.http, log.bind(plugin=plugin.name), state=runtime.state)

    async def _run(self, hook: Any, context: Context[Any]) -> None:
        await asyncio.wait_for(hook(context), self.hook_timeout)

    async def start(self) -> None:
        """Every start-up hook; PluginStartError (after shutting down what started) if one fails.
        A plugin whose later start-up hook failed counts as started: its shutdown hooks run."""
        for plugin in self.plugins:
            context = self._context(plugin)
            for index, hook in enumerate(plugin.startup):
                try:
                    await self._run(hook, context)
                except asyncio.CancelledError:  # the server was asked to stop while starting
                    if index:
                        self._started.append(plugin)
                    await self.stop()
                    raise
                except Exception as exc:
                    reason = _reason(exc, self.hook_timeout)
                    log.error(
                        "plugin start-up hook failed",
                        plugin=plugin.name,
                        hook=_hook_name(hook),
                        error=reason,
                        exc_info=exc,
                    )
                    if index:
                        self._started.append(plugin)
                    await self.stop()
                    raise PluginStartError(
                        f"plugin {plugin.name}: start-up hook {_hook_name(hook)} failed: {reason}"
                    ) from None
            self._started.append(plugin)

    async def stop(self) -> None:
        """The started plugins' shutdown hooks, last started first; a failure is logged, not raised."""
        while self._started:
            plugin = self._started.pop()
            context = self._context(plugin)
            for hook in plugin.shutdown:
                try:
                    await self._run(hook, context)
                except Exception as exc:
                    log.error(
                        "plugin shutdown hook failed",
                        plugin=plugin.name,
                        hook=_hook_name(hook),
                        error=_reason(exc, self.hook_timeout),
                        exc_info=exc,
                    )


def lifecycle_context(lifecycle: PluginLifecycle) -> Callable[[web.Application], AsyncIterator[None]]:
    """The app's cleanup context: start-up hooks when it starts, shutdown hooks when it stops."""

    async def run(app: web.Application) -> AsyncIterator[None]:
        await lifecycle.start()
        try:
            yield
        finally:
            await lifecycle.stop()

    return run
