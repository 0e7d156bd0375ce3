"""Every upstream, declared in settings or added by an admin, and what the rest of the server
sees of them.

The factory builds one ``Gateway`` from the settings and a reader of the stored upstreams. Its
cleanup context starts a connection per enabled upstream, waits for each one's first attempt
(within its ``connect_timeout``: a server that answers is listed before the first client
arrives; one that does not is retried in the background), and stops them all on shutdown.
``refresh`` (the broadcast's ``upstreams-changed``, and a poll) reads the store again: an added
upstream starts, a removed or disabled one's tools go at once and its connection ends in the
background, a changed one starts anew. Each listing replaces the upstream's tools in the
registry; every change calls ``changed`` (the factory drops the encoded tool lists and the
names scopes may grant).
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from typing import Any

import structlog
from aiohttp import web
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from skywarden.server.extras import install_command
from skywarden.server.gateway.connection import UpstreamConnection
from skywarden.server.gateway.tools import plugin_of
from skywarden.server.plugins.model import RegisteredTool
from skywarden.server.plugins.registry import ToolRegistry
from skywarden.server.plugins.ssrf import AddressPolicy, parse_networks
from skywarden.server.settings import Settings, SettingsError
from skywarden.server.upstreams import StoredUpstreams, UpstreamConfig

log = structlog.get_logger("skywarden.gateway")
# An upstream's tool not offered now, by the upstream's state: what the refusal adds.
ABSENT_BECAUSE = {
    "starting": "the upstream {} is starting; retry in a moment",
    "down": "the upstream {} is unavailable",
    "disabled": "the upstream {} is disabled",
    "unusable": "the upstream {} cannot be run by this server",
    "up": "the upstream {} does not offer it",
}
STORE_POLL_SECONDS = 5.0  # stored upstreams are read this often besides the broadcast (CLI, workers without Redis)


class Gateway:
    """``load_stored`` (from the factory): the upstreams an admin added, read from the key store."""

    def __init__(
        self,
        settings: Settings,
        registry: ToolRegistry,
        changed: Callable[[], None],
        load_stored: Callable[[], Awaitable[StoredUpstreams]] | None = None,
    ) -> None:
        self.separator = separator = settings.gateway_separator
        for config in settings.upstreams:
            if separator in config.name:
                raise SettingsError(
                    f"invalid setting upstreams: the name {config.name!r} holds the separator {separator!r} "
                    "(gateway_separator); rename the upstream or choose another separator"
                )
        if any(c.enabled for c in settings.upstreams):
            require_sdk()
        self.registry = registry
        self.changed = changed
        self.load_stored = load_stored
        self.policy = AddressPolicy(parse_networks(settings.upstream_allowed_networks))
        self.checks_per_key = settings.max_concurrent_calls  # a key's calls at once: each may wait for a check
        self.declared = settings.upstreams
        self.configs: tuple[UpstreamConfig, ...] = settings.upstreams
        self.connections: dict[str, UpstreamConnection] = {}
        self.unusable: Mapping[str, str] = {}  # stored upstreams this server cannot run, and why
        self._lock = asyncio.Lock()
        self._stopping: set[asyncio.Task[None]] = set()  # connections being stopped after a change
        self._poll: asyncio.Task[None] | None = None
        for config in settings.upstreams:
            registry.replace_plugin(plugin_of(config), [])

    def _publish(self, config: UpstreamConfig, tools: list[RegisteredTool]) -> None:
        current = self.connections.get(config.name)
        if current is None or current.config is not config:
            return  # a listing that ends after its upstream was changed or removed
        clashes = self.registry.replace_plugin(plugin_of(config), tools)
        for name in clashes:
            log.warning("upstream tool left out: another tool has its name", upstream=config.name, tool=name)
        self.changed()

    def states(self) -> dict[str, str]:
        """Each upstream by name: starting, up, down, disabled or unusable (stored, and this server
        cannot run it: the admin API says why)."""
        states = {c.name: self.status(c.name)["state"] for c in self.configs}
        return {**{name: "unusable" for name in self.unusable if name not in states}, **states}

    def why_absent(self, tool: str) -> str | None:
        """Why ``tool`` (``<upstream><separator><name>``) is not offered now, if it names an upstream."""
        for config in self.configs:
            prefix = f"{config.name}{self.separator}"
            if tool.startswith(prefix):
                state = self.status(config.name)["state"]
                if state == "up" and config.tools and tool.removeprefix(prefix) not in config.tools:
                    return f"the upstream {config.name}'s tools option leaves it out"
                return ABSENT_BECAUSE.get(state, "").format(config.name) or None
        for name in self.unusable:
            if tool.startswith(f"{name}{self.separator}"):
                return ABSENT_BECAUSE["unusable"].format(name)
        return None

    def status(self, name: str) -> dict[str, Any]:
        """What the console and the admin API show of an upstream now."""
        connection = self.connections.get(name)
        if connection is None:
            known = any(c.name == name for c in self.configs)
            return {"state": "disabled" if known else "absent", "tools": [], "last_error": ""}
        f = connection.figures
        plugin = next((p for p in self.registry.plugins if p.name == plugin_of(connection.config).name), None)
        return {
            "state": f.state,
            "tools": list(plugin.tools) if plugin is not None else [],
            "last_error": f.last_error,
            "calls": f.calls,
            "errors": f.errors,
            "restarts": f.restarts,
        }

    async def start(self) -> None:
        stored = await self._read_store() if self.load_stored is not None else None
        async with self._lock:
            self._apply(stored or StoredUpstreams())
        waits = [
            asyncio.wait_for(c.first_attempt.wait(), c.config.connect_timeout + 1) for c in self.connections.values()
        ]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, TimeoutError):
                raise outcome
        if self.load_stored is not None:
            self._poll = asyncio.create_task(self._poll_store(), name="upstreams from the store")

    async def refresh(self, _: str = "") -> None:
        """Read the stored upstreams again and start, stop or restart what changed (the broadcast
        handler: its argument is not used)."""
        stored = await self._read_store()
        if stored is None:
            return
        async with self._lock:
            # in a context of its own: what changes here (and the connections it starts, which
            # log as long as they run) belongs to no request, whichever one asked for the refresh
            contextvars.Context().run(self._apply, stored)

    async def _read_store(self) -> StoredUpstreams | None:
        assert self.load_stored is not None
        try:
            return await self.load_stored()
        except Exception as exc:  # the store is away: keep what runs, read again later
            log.warning("stored upstreams could not be read; kept as they were", error=type(exc).__name__)
            return None

    async def _poll_store(self) -> None:
        while True:
            await asyncio.sleep(STORE_POLL_SECONDS)
            await self.refresh()

    def _apply(self, stored: StoredUpstreams) -> None:
        for name, problem in stored.unusable.items():
            if self.unusable.get(name) != problem:  # once, not at every read of the store
                log.warning("stored upstream left out", upstream=name, reason=problem)
        self.unusable = stored.unusable
        declared = {c.name for c in self.declared}
        wanted = {c.name: c for c in (*self.declared, *(c for c in stored.usable if c.name not in declared))}
        for name, connection in list(self.connections.items()):
            if wanted.get(name) != connection.config or not wanted[name].enabled:
                del self.connections[name]
                self._stop_later(connection)
        for config in self.configs:
            if config.name not in wanted:
                self.registry.remove_plugin(plugin_of(config).name)
                log.info("upstream removed", upstream=config.name)
        for config in wanted.values():
            if config.name in self.connections:
                continue
            self.registry.replace_plugin(plugin_of(config), [])
            if config.enabled:
                try:
                    require_sdk()
                except SettingsError as exc:
                    log.error("upstream not started", upstream=config.name, reason=str(exc))
                    continue
                connection = UpstreamConnection(config, self.separator, self._publish, self.policy, self.checks_per_key)
                self.connections[config.name] = connection
                connection.start()
        changed = self.configs != tuple(wanted.values())
        self.configs = tuple(wanted.values())
        if changed:
            self.changed()

    def _stop_later(self, connection: UpstreamConnection) -> None:
        """A changed or removed upstream's tools go at once; its connection ends in the background
        (a stdio server gets the SDK's whole shutdown), awaited by ``stop``."""
        task = asyncio.create_task(connection.stop(), name=f"stop upstream {connection.name}")
        self._stopping.add(task)
        task.add_done_callback(self._stopping.discard)

    async def stop(self) -> None:
        if self._poll is not None:
            self._poll.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._poll
        await asyncio.gather(*(c.stop() for c in self.connections.values()), *self._stopping)

    def collector(self) -> Collector:
        return _UpstreamFigures(self)


def gateway_context(gateway: Gateway) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        await gateway.start()
        try:
            yield
        finally:
            await gateway.stop()

    return ctx


def require_sdk() -> None:
    try:
        import mcp  # noqa: F401
    except ImportError:
        raise SettingsError(
            "invalid setting upstreams: upstream MCP servers need the MCP SDK; install it with "
            + install_command("gateway")
        ) from None


class _UpstreamFigures(Collector):
    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Any]:
        up = GaugeMetricFamily("skywarden_gateway_up", "1 while the upstream is connected", labels=["upstream"])
        tools = GaugeMetricFamily("skywarden_gateway_tools", "Tools the upstream offers", labels=["upstream"])
        calls = CounterMetricFamily("skywarden_gateway_calls", "Tool calls sent to the upstream", labels=["upstream"])
        errors = CounterMetricFamily(
            "skywarden_gateway_call_errors",
            "Upstream calls that ended in Skywarden's tool error (unavailable, time-out, transport)",
            labels=["upstream"],
        )
        restarts = CounterMetricFamily(
            "skywarden_gateway_restarts",
            "Connections lost or failed, each followed by a new attempt",
            labels=["upstream"],
        )
        latency = CounterMetricFamily(
            "skywarden_gateway_call_seconds", "Seconds of answered upstream calls (sum)", labels=["upstream"]
        )
        for name, connection in sorted(self.gateway.connections.items()):
            f = connection.figures
            up.add_metric([name], 1.0 if f.state == "up" else 0.0)
            tools.add_metric([name], f.tools)
            calls.add_metric([name], f.calls)
            errors.add_metric([name], f.errors)
            restarts.add_metric([name], f.restarts)
            latency.add_metric([name], f.latency_sum)
        yield from (up, tools, calls, errors, restarts, latency)
