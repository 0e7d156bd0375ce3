"""Prometheus metrics at /metrics (never public: admin token or the read-only metrics token).

Each app has its own registry. Request counters are updated from the audit
middleware, so one place sees every answer; cache and session figures are read
at scrape time.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterator, Sized
from typing import Any

from aiohttp import web
from aiohttp_apigami import docs
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

from skywarden.server.http.paths import METRICS_PATH
from skywarden.server.http.routes import METRICS, add_route
from skywarden.server.observability.denials import RecentDenials
from skywarden.server.observability.logging_setup import sink_states
from skywarden.server.ttlcache import TTLCache

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class _LiveFigures(Collector):
    def __init__(
        self, sessions: Sized, upstream_cache: TTLCache, result_cache: TTLCache, denials: RecentDenials | None
    ) -> None:
        self.sessions = sessions
        self.upstream_cache = upstream_cache
        self.result_cache = result_cache
        self.denials = denials

    def collect(self) -> Iterator[Any]:
        gauge = GaugeMetricFamily("skywarden_mcp_sessions", "Live MCP sessions")
        gauge.add_metric([], len(self.sessions))
        yield gauge
        cache = CounterMetricFamily("skywarden_upstream_cache", "Upstream cache lookups", labels=["result"])
        cache.add_metric(["hit"], self.upstream_cache.hits)
        cache.add_metric(["miss"], self.upstream_cache.misses)
        yield cache
        kept = CounterMetricFamily(
            "skywarden_tool_result_cache", "Kept tool result lookups (cache_results tools)", labels=["result"]
        )
        kept.add_metric(["hit"], self.result_cache.hits)
        kept.add_metric(["miss"], self.result_cache.misses)
        yield kept
        dropped = CounterMetricFamily(
            "skywarden_denials_dropped", "Recent denials not kept for the console (Redis slow or away)"
        )
        dropped.add_metric([], self.denials.dropped if self.denials is not None else 0)
        yield dropped
        yield from _log_figures()


def _log_figures() -> Iterator[Any]:
    """The log and audit log sinks: failing now (readiness is 503 meanwhile), failed writes, lines lost."""
    states = sink_states()
    failing = GaugeMetricFamily("skywarden_log_sink_failing", "1 while a log cannot be written", labels=["sink"])
    failures = CounterMetricFamily("skywarden_log_write_failures", "Failed log writes (retried)", labels=["sink"])
    lost = CounterMetricFamily("skywarden_log_lines_lost", "Log lines given up", labels=["sink"])
    for role, state in sorted(states.items()):
        failing.add_metric([role], int(state.failing))
        failures.add_metric([role], state.failures)
        lost.add_metric([role], state.lost)
    yield from (failing, failures, lost)


KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _RequestFigures(Collector):
    """Request counts and latencies kept as plain numbers and turned into metric families at
    scrape time: every request pays a dict update and a bisect, not prometheus_client's locks
    (one event loop thread updates them). Labels are bounded: routes are the app's own (or
    ``unmatched``), methods outside the standard ones count as ``other``."""

    def __init__(self) -> None:
        self.counts: dict[tuple[str, str, int], int] = {}
        self.latency: dict[str, list[float]] = {}  # route -> a count per bucket (+Inf last), then the sum

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        key = (route, method if method in KNOWN_METHODS else "other", status)
        self.counts[key] = self.counts.get(key, 0) + 1
        figures = self.latency.get(route)
        if figures is None:
            figures = self.latency[route] = [0] * (len(_LATENCY_BUCKETS) + 1) + [0.0]
        figures[bisect.bisect_left(_LATENCY_BUCKETS, seconds)] += 1
        figures[-1] += seconds

    def collect(self) -> Iterator[Any]:
        requests = CounterMetricFamily(
            "skywarden_http_requests", "HTTP requests answered", labels=["route", "method", "status"]
        )
        for (route, method, status), count in sorted(self.counts.items()):
            requests.add_metric([route, method, str(status)], count)
        yield requests
        latency = HistogramMetricFamily("skywarden_http_request_duration_seconds", "Time to answer", labels=["route"])
        for route, figures in sorted(self.latency.items()):
            buckets: list[tuple[str, float]] = []
            total: float = 0
            for bound, in_bucket in zip((*map(floatToGoString, _LATENCY_BUCKETS), "+Inf"), figures[:-1], strict=True):
                total += in_bucket
                buckets.append((bound, total))
            latency.add_metric([route], buckets, figures[-1])
        yield latency


class _ToolCallFigures(Collector):
    """Tool calls by tool and outcome, as plain numbers; only tools offered now are counted, an
    upstream's among them (a refused call names whatever the client sent, and labels must stay
    bounded: a tool no longer offered, an upstream's gone, loses its series)."""

    def __init__(self, tool_of: Callable[[str], object | None]) -> None:
        self.tool_of = tool_of
        self.counts: dict[tuple[str, str], int] = {}

    def count(self, tool: str, outcome: str) -> None:
        if self.tool_of(tool) is not None:
            key = (tool, outcome)
            self.counts[key] = self.counts.get(key, 0) + 1

    def collect(self) -> Iterator[Any]:
        for key in [key for key in self.counts if self.tool_of(key[0]) is None]:
            del self.counts[key]
        calls = CounterMetricFamily("skywarden_tool_calls", "Tool calls", labels=["tool", "outcome"])
        for (tool, outcome), count in sorted(self.counts.items()):
            calls.add_metric([tool, outcome], count)
        yield calls


class Metrics:
    def __init__(
        self,
        sessions: Sized,
        upstream_cache: TTLCache,
        result_cache: TTLCache,
        tool_of: Callable[[str], object | None],  # a tool offered now, by name (or None)
        denials: RecentDenials | None = None,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = _RequestFigures()
        r.register(self.requests)
        self.tool_calls = _ToolCallFigures(tool_of)
        r.register(self.tool_calls)
        self.auth_failures = Counter("skywarden_auth_failures", "Failed authentications", ["reason"], registry=r)
        self.rate_limited = Counter("skywarden_rate_limited", "Requests refused by a rate limit", ["limit"], registry=r)
        self.upstream_latency = Histogram(
            "skywarden_upstream_request_duration_seconds",
            "Upstream request time",
            ["service"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.upstream_errors = Counter("skywarden_upstream_errors", "Failed upstream requests", ["service"], registry=r)
        r.register(_LiveFigures(sessions, upstream_cache, result_cache, denials))

    def observe_request(self, request: web.Request, status: int, latency: float, fields: dict[str, Any]) -> None:
        route = request.match_info.route.resource
        route_name = route.canonical if route is not None else "unmatched"
        self.requests.observe(route_name, request.method, status, latency)
        tool = fields.get("tool")
        if tool and fields.get("outcome") == "allowed" and "rpc_error" not in fields:
            self.tool_calls.count(tool, "error" if fields.get("tool_error") else "ok")
        elif tool and fields.get("outcome") == "denied":
            self.tool_calls.count(tool, "denied")
        if status == 401 and fields.get("reason"):
            self.auth_failures.labels(fields["reason"]).inc()
        if status == 429:
            self.rate_limited.labels(fields.get("limit", "unknown")).inc()

    def observe_upstream(self, service: str, seconds: float, failed: bool) -> None:
        self.upstream_latency.labels(service).observe(seconds)
        if failed:
            self.upstream_errors.labels(service).inc()

    @docs(
        tags=["monitoring"],
        summary="Prometheus metrics (text exposition format)",
        responses={200: {"description": "Metrics"}},
    )
    async def metrics_handler(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    def add_routes(self, app: web.Application) -> None:
        add_route(app, "GET", METRICS_PATH, self.metrics_handler, rule=METRICS)
