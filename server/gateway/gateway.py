"""Every configured upstream, and what the rest of the server sees of them.

The factory builds one ``Gateway`` from the settings. Its cleanup context starts a connection per
enabled upstream, waits for each one's first attempt (within its ``connect_timeout``: a server
that answers is listed before the first client arrives; one that does not is retried in the
background), and stops them all on shutdown. Each listing replaces the upstream's tools in the
registry and calls ``changed`` (the factory drops the encoded tool lists).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
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
from skywarden.server.upstreams import UpstreamConfig

log = structlog.get_logger("skywarden.gateway")


class Gateway:
    def __init__(self, settings: Settings, registry: ToolRegistry, changed: Callable[[], None]) -> None:
        separator = settings.gateway_separator
        for config in settings.upstreams:
            if separator in config.name:
                raise SettingsError(
                    f"invalid setting upstreams: the name {config.name!r} holds the separator {separator!r} "
                    "(gateway_separator); rename the upstream or choose another separator"
                )
        if any(c.enabled for c in settings.upstreams):
            _require_sdk()
        self.registry = registry
        self.changed = changed
        policy = AddressPolicy(parse_networks(settings.upstream_allowed_networks))
        self.configs = settings.upstreams
        self.connections = {
            c.name: UpstreamConnection(c, separator, self._publish, policy) for c in settings.upstreams if c.enabled
        }
        for config in settings.upstreams:
            registry.replace_plugin(plugin_of(config), [])

    def _publish(self, config: UpstreamConfig, tools: list[RegisteredTool]) -> None:
        clashes = self.registry.replace_plugin(plugin_of(config), tools)
        for name in clashes:
            log.warning("upstream tool left out: another tool has its name", upstream=config.name, tool=name)
        self.changed()

    def states(self) -> dict[str, str]:
        """Each upstream by name: starting, up, down or disabled."""
        return {
            c.name: self.connections[c.name].figures.state if c.name in self.connections else "disabled"
            for c in self.configs
        }

    async def start(self) -> None:
        for connection in self.connections.values():
            connection.start()
        waits = [
            asyncio.wait_for(c.first_attempt.wait(), c.config.connect_timeout + 1) for c in self.connections.values()
        ]
        for outcome in await asyncio.gather(*waits, return_exceptions=True):
            if isinstance(outcome, BaseException) and not isinstance(outcome, TimeoutError):
                raise outcome

    async def stop(self) -> None:
        await asyncio.gather(*(c.stop() for c in self.connections.values()))

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


def _require_sdk() -> None:
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
