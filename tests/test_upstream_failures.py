"""An upstream failure answers 200 with ``isError``; one warning records why: the tool, the
request id, the upstream's address without its query, the status and the cause. Never a secret.

Every kind of failure the weather tools can meet, through both doors, against the fake NWS.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from skywarden.tools.http import UpstreamError, loggable_url
from tests.support.fake_nws import Answer
from tests.support.logs import drain_logs
from tests.support.mcp_helpers import modern_headers, modern_rpc
from tests.support.server_process import free_port

POINT = "/points/39.7456,-97.0892"
FORECAST = "/gridpoints/TOP/32,81/forecast"
HERE = {"latitude": 39.7456, "longitude": -97.0892}
SECRET = "s3cr3t-query-token-0123456789"


@dataclass
class Failure:
    path: str | None  # the fake NWS path that fails (None: the whole NWS is down)
    answer: Answer | None
    status: int | None  # what the log line gives as upstream_status
    cause: str
    logged: str | None  # the upstream address the line names: a path on the NWS, a URL, or None
    settings: dict[str, str] = field(default_factory=dict)
    tool: str = "get_forecast"
    arguments: dict = field(default_factory=lambda: dict(HERE))


def _link(target: str) -> Answer:
    return Answer(200, b'{"properties": {"forecast": "' + target.encode() + b'"}}')


FAILURES = {
    "NWS down": Failure(None, None, None, "ClientConnectorError", POINT),
    "timeout": Failure(POINT, Answer(hang=True), None, "TimeoutError", POINT, {"upstream_timeout": "0.2"}),
    "HTML instead of JSON": Failure(POINT, Answer(200, b"<html>down</html>", "text/html"), 200, "not_json", POINT),
    "JSON that does not parse": Failure(POINT, Answer(200, b'{"properties": '), 200, "not_json", POINT),
    "500": Failure(POINT, Answer(500, b'{"title": "Unexpected"}', "application/problem+json"), 500, "status", POINT),
    "503 without a body": Failure(POINT, Answer(503, b""), 503, "status", POINT),
    "429 from NWS": Failure(POINT, Answer(429, b"{}"), 429, "status", POINT),
    "a redirect": Failure(POINT, Answer(301, b"{}", headers={"Location": "/elsewhere"}), 301, "status", POINT),
    "outside coverage (404)": Failure("/points/51.5074,-0.1278", None, 404, "status", "/points/51.5074,-0.1278", {},
                                      "get_forecast", {"latitude": 51.5074, "longitude": -0.1278}),
    "oversize answer": Failure(POINT, Answer(200, b'{"x":"' + b"a" * 5000 + b'"}'), 200, "too_large", POINT,
                               {"upstream_max_bytes": "2048"}),
    "second hop fails": Failure(FORECAST, Answer(502, b"{}"), 502, "status", FORECAST),
    "link to another site (SSRF)": Failure(POINT, _link(f"http://169.254.169.254/latest/meta-data?token={SECRET}"),
                                           None, "foreign_link", "http://169.254.169.254/latest/meta-data"),
    "link with a port out of range": Failure(POINT, _link("http://127.0.0.1:99999/x"), None, "foreign_link",
                                             "http://127.0.0.1:(not a port)/x"),
    "no link": Failure(POINT, Answer(200, b'{"properties": {}}'), None, "no_link", POINT),
    "point lookup in an unexpected format": Failure(POINT, Answer(200, b'{"properties": "not an object"}'), None,
                                                    "unexpected_format", POINT),
    "forecast in an unexpected format": Failure(FORECAST, Answer(200, b'{"properties": {"periods": 5}}'), None,
                                                "unexpected_format", FORECAST),
    "a period in an unexpected format": Failure(FORECAST, Answer(200, b'{"properties": {"periods": [7]}}'), None,
                                                "unexpected_format", FORECAST),
    "alerts in an unexpected format": Failure("/alerts/active/area/KS", Answer(200, b'{"features": {}}'), None,
                                              "unexpected_format", "/alerts/active/area/KS", {}, "get_alerts",
                                              {"state": "KS"}),
    "an alert in an unexpected format": Failure("/alerts/active/area/KS", Answer(200, b'{"features": [1]}'), None,
                                                "unexpected_format", "/alerts/active/area/KS", {}, "get_alerts",
                                                {"state": "KS"}),
    "alerts upstream 500": Failure("/alerts/active/area/KS", Answer(500, b"{}"), 500, "status",
                                   "/alerts/active/area/KS", {}, "get_alerts", {"state": "KS"}),
}  # fmt: skip


async def _call(client, door: str, tool: str, arguments: dict):
    if door == "rest":
        return await client.post(f"/api/mcp/tools/{tool}", json=arguments)
    message = modern_rpc("tools/call", {"name": tool, "arguments": arguments})
    return await client.post(
        "/mcp", json=message, headers={**modern_headers(message), "Content-Type": "application/json"}
    )


def _failure_lines(request_id: str) -> list[dict]:
    return [e for e in drain_logs() if e.get("event") == "tool call failed" and e.get("request_id") == request_id]


@pytest.mark.parametrize("door", ["rest", "mcp"])
@pytest.mark.parametrize("name", list(FAILURES))
async def test_an_upstream_failure_is_logged_once_with_its_cause(make_client, make_settings, fake_nws, name, door):
    failure = FAILURES[name]
    settings = dict(failure.settings)
    if failure.path is None:
        settings["weather_base_url"] = f"http://127.0.0.1:{free_port()}"
    elif failure.answer is not None:
        fake_nws.set(failure.path, failure.answer)
    client = await make_client(make_settings(**settings))
    resp = await _call(client, door, failure.tool, failure.arguments)
    body = await resp.json()
    result = body if door == "rest" else body["result"]
    assert resp.status == 200 and result["isError"] is True, body
    lines = _failure_lines(resp.headers["X-Request-ID"])
    assert len(lines) == 1, lines
    line = lines[0]
    assert line["level"] == "warning" and line["tool"] == failure.tool
    assert line["cause"] == failure.cause and line.get("upstream_status") == failure.status
    base = settings.get("weather_base_url", fake_nws.url)
    logged = failure.logged if failure.logged is None or "://" in failure.logged else base + failure.logged
    assert line.get("upstream") == logged
    assert SECRET not in str(line) and client.api_key not in str(line)


async def test_a_tool_failure_of_its_own_is_logged_with_its_message(client, fake_nws):
    fake_nws.set(FORECAST, Answer(200, b'{"properties": {"periods": []}}'))
    resp = await client.post("/api/mcp/tools/get_forecast", json=HERE)
    assert (await resp.json())["isError"] is True
    (line,) = _failure_lines(resp.headers["X-Request-ID"])
    assert "no forecast periods" in line["detail"] and "upstream" not in line and line["error"] == "ToolError"


async def test_a_successful_call_logs_no_failure(client):
    resp = await client.post("/api/mcp/tools/get_forecast", json=HERE)
    assert (await resp.json())["isError"] is False
    assert _failure_lines(resp.headers["X-Request-ID"]) == []


@given(
    scheme=st.sampled_from(["http", "https"]),
    host=st.from_regex(r"[a-z][a-z0-9-]{0,20}(\.[a-z]{2,6}){0,2}", fullmatch=True)
    | st.ip_addresses(v=6).map(lambda a: f"[{a}]")
    | st.ip_addresses(v=4).map(str),
    port=st.sampled_from(["", ":80", ":443", ":8443", ":0"]),
    path=st.lists(
        st.tuples(
            st.from_regex(r"[A-Za-z0-9._~-]{0,12}", fullmatch=True), st.sampled_from(["", f";jsessionid={SECRET}"])
        ),
        max_size=4,
    ),
    userinfo=st.sampled_from(["", "user:", f"user:{SECRET}@"]).map(lambda u: u if not u or u.endswith("@") else ""),
    query=st.sampled_from(["", f"?appid={SECRET}", f"?a=1&key={SECRET}&b=2", f"?{SECRET}"]),
    fragment=st.sampled_from(["", f"#{SECRET}"]),
)
def test_a_logged_upstream_address_never_carries_a_query_credentials_or_fragment(
    scheme, host, port, path, userinfo, query, fragment
):
    """Only what says where: the scheme, the host as written (an IPv6 one in brackets), a port
    written in the URL, and the path without its parameters; nothing that may carry a secret."""
    written = "".join(f"/{segment}{params}" for segment, params in path)
    url = f"{scheme}://{userinfo}{host}{port}{written}{query}{fragment}"
    logged = loggable_url(url)
    bare = "".join(f"/{segment}" for segment, _ in path)
    assert SECRET not in logged and logged == f"{scheme}://{host.lower()}{port}{bare}"
    assert UpstreamError("x", url=url).url == logged
