"""/metrics: not public, moves when requests happen."""

from __future__ import annotations

import re

from tests.support.admin import ADMIN_HEADERS

METRICS_TOKEN = "metrics-reader-token-0123456789abcdefghij"


def value(text: str, name: str, **labels: str) -> float:
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


async def scrape(client) -> str:
    resp = await client.anonymous.get("/metrics", headers=ADMIN_HEADERS)
    assert resp.status == 200 and resp.content_type.startswith("text/plain")
    return await resp.text()


async def test_metrics_are_not_public(client):
    assert (await client.anonymous.get("/metrics")).status == 401
    assert (await client.get("/metrics")).status == 401  # an API key is not enough
    assert (await client.anonymous.get("/metrics", headers={"Authorization": "Bearer " + "x" * 40})).status == 401


async def test_metrics_token_reads_metrics_but_not_admin(make_client, make_settings):
    client = await make_client(make_settings(metrics_token=METRICS_TOKEN))
    headers = {"Authorization": f"Bearer {METRICS_TOKEN}"}
    assert (await client.anonymous.get("/metrics", headers=headers)).status == 200
    assert (await client.anonymous.get("/api/admin/keys", headers=headers)).status == 401


async def test_counters_move(client, fake_nws):
    before = await scrape(client)
    await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})
    await client.post("/api/mcp/tools/get_alerts", json={"state": "KS"})  # the kept result
    await client.post("/api/mcp/tools/get_alerts", json={"state": "ks"})  # validates alike: the kept result too
    await client.post("/api/mcp/tools/get_forecast", json={"latitude": 39.7456, "longitude": -97.0892})
    # another point, the same NWS URL (four decimals): a new result from the cached upstream answers
    await client.post("/api/mcp/tools/get_forecast", json={"latitude": 39.74561, "longitude": -97.0892})
    await client.post("/api/mcp/tools/get_forecast", json={"latitude": 51.5074, "longitude": -0.1278})
    await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": "bad"})
    after = await scrape(client)

    route = "/api/mcp/tools/{toolName}"
    assert (
        value(after, "skywarden_http_requests_total", route=route, status="200")
        - value(before, "skywarden_http_requests_total", route=route, status="200")
        == 6
    )
    assert value(after, "skywarden_tool_calls_total", tool="get_alerts", outcome="ok") == 3
    assert value(after, "skywarden_tool_calls_total", tool="get_forecast", outcome="ok") == 2
    assert value(after, "skywarden_tool_result_cache_total", result="hit") == 2
    assert value(after, "skywarden_tool_result_cache_total", result="miss") == 4
    assert value(after, "skywarden_tool_calls_total", tool="get_forecast", outcome="error") == 1
    assert value(after, "skywarden_auth_failures_total", reason="malformed") == 1
    assert value(after, "skywarden_upstream_cache_total", result="hit") >= 1
    assert value(after, "skywarden_upstream_request_duration_seconds_count", service="nws") >= 2
    assert value(after, "skywarden_upstream_errors_total", service="nws") >= 1
    label_values = re.findall(r'="([^"]*)"', after)
    assert label_values and not [v for v in label_values if " " in v]  # short identifiers, never sentences
    assert re.search(
        r'skywarden_http_request_duration_seconds_bucket\{le="0.005",route="/api/mcp/tools/\{toolName\}"\}', after
    )


async def test_live_sessions_gauge(client):
    from tests.support.mcp_helpers import open_session

    await open_session(client)
    assert value(await scrape(client), "skywarden_mcp_sessions") == 1


async def test_metrics_can_be_switched_off(make_client, make_settings):
    client = await make_client(make_settings(metrics_enabled="false"))
    assert (await client.anonymous.get("/metrics", headers=ADMIN_HEADERS)).status == 404


def test_request_figures_are_cumulative_buckets_with_bounded_labels():
    from prometheus_client import CollectorRegistry, generate_latest

    from skywarden.server.observability.metrics import _RequestFigures

    figures = _RequestFigures()
    registry = CollectorRegistry()
    registry.register(figures)
    figures.observe("/mcp", "POST", 200, 0.003)
    figures.observe("/mcp", "POST", 200, 0.0025)  # on a bound: counted in it ("le")
    figures.observe("/mcp", "POST", 200, 99.0)
    for method in ("FOO", "BAR", "brew"):
        figures.observe("unmatched", method, 405, 0.0001)
    text = generate_latest(registry).decode()
    assert 'skywarden_http_requests_total{method="POST",route="/mcp",status="200"} 3.0' in text
    assert 'skywarden_http_requests_total{method="other",route="unmatched",status="405"} 3.0' in text
    assert 'skywarden_http_request_duration_seconds_bucket{le="0.001",route="/mcp"} 0.0' in text
    assert 'skywarden_http_request_duration_seconds_bucket{le="0.0025",route="/mcp"} 1.0' in text
    assert 'skywarden_http_request_duration_seconds_bucket{le="0.005",route="/mcp"} 2.0' in text
    assert 'skywarden_http_request_duration_seconds_bucket{le="10.0",route="/mcp"} 2.0' in text
    assert 'skywarden_http_request_duration_seconds_bucket{le="+Inf",route="/mcp"} 3.0' in text
    assert 'skywarden_http_request_duration_seconds_count{route="/mcp"} 3.0' in text
    assert 'skywarden_http_request_duration_seconds_sum{route="/mcp"} 99.0055' in text


async def test_tool_call_metrics_count_only_registered_tools(make_client):
    """A refused call names whatever the client sent; the metric's labels must stay bounded."""
    client = await make_client(scopes=["get_alerts"])
    from tests.support.mcp_helpers import modern_headers, modern_rpc

    for name in ("made-up-1", "made-up-2", "get_forecast"):
        message = modern_rpc("tools/call", {"name": name, "arguments": {}})
        await client.post("/mcp", json=message, headers=modern_headers(message))
    text = await (await client.admin.get("/metrics")).text()
    assert "made-up" not in text
    assert 'skywarden_tool_calls_total{outcome="denied",tool="get_forecast"} 1.0' in text


async def test_every_metric_the_operations_guide_names_is_served(client):
    """The metrics table and the alert rules of docs/operations.md name only series /metrics has
    (a histogram's ``_count``, ``_sum`` and ``_bucket`` included), and the table every one."""
    from pathlib import Path

    text = await scrape(client)
    families = dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, flags=re.MULTILINE))
    served = set(families)
    served.update(f"{name}{end}" for name, kind in families.items() if kind == "histogram" for end in HISTOGRAM)
    guide = (Path(__file__).resolve().parents[1] / "docs" / "operations.md").read_text()
    named = set(re.findall(r"\bskywarden_[a-z_]+[a-z]", guide))
    assert named & served and named & served == named - {"skywarden_metrics_token"}, sorted(named - served)
    assert set(families) <= named, sorted(set(families) - named)  # and the table lists every one


HISTOGRAM = ("_count", "_sum", "_bucket")
