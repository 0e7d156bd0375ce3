"""Protocol fuzz of /mcp with hypothesis: random and mutated bodies and headers, every revision,
sessions included. Whatever arrives: never a 5xx, always a JSON-RPC-shaped answer (or an empty
202/204), never a tool run without a valid key, and a valid request still works afterwards."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from skywarden.server.plugins.registry import ToolRegistry, register_tool
from skywarden.tools.contract import ToolResult, text_content
from tests.support.json_strategies import json_values
from tests.support.mcp_helpers import ACCEPT_BOTH, modern_headers, modern_rpc, open_session
from tests.support.plugin_samples import Echo

pytestmark = pytest.mark.slow  # a few hundred requests per test: CI and ./scripts/test run them

RUNS: list[str] = []  # every tool call that actually ran, with the key that ran it


class Counted(Echo):
    name = "counted"

    async def call(self, arguments, context):
        RUNS.append(context.principal.id)
        return ToolResult(content=[text_content("ran")])


VERSIONS = ["2025-03-26", "2025-06-18", "2025-11-25", "2026-07-28"]
METHODS = ["initialize", "ping", "tools/list", "tools/call", "server/discover", "notifications/initialized", "x"]


@st.composite
def messages(draw) -> Any:
    """A plausible JSON-RPC message with some of its parts replaced by anything."""
    version = draw(st.sampled_from(VERSIONS))
    message: dict[str, Any] = modern_rpc(
        draw(st.sampled_from(METHODS)),
        {"name": draw(st.sampled_from(["counted", "nope", ""])), "arguments": {"text": "x"}},
        id=draw(st.one_of(st.integers(), st.text(max_size=5))),
    )
    message["params"]["protocolVersion"] = version
    for part in draw(st.lists(st.sampled_from(["jsonrpc", "id", "method", "params", "name", "arguments", "_meta"]))):
        value = draw(json_values)
        if part in ("name", "arguments", "_meta") and isinstance(message.get("params"), dict):
            message["params"][part] = value
        elif draw(st.booleans()):
            message.pop(part, None)
        else:
            message[part] = value
    return message


@st.composite
def bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["message", "batch", "value", "bytes", "deep", "surrogate", "nul", "huge id"]))
    if kind == "message":
        return json.dumps(draw(messages())).encode()
    if kind == "batch":
        return json.dumps(draw(st.lists(messages(), max_size=6))).encode()
    if kind == "value":
        return json.dumps(draw(json_values)).encode()
    if kind == "bytes":
        return draw(st.binary(max_size=64))
    if kind == "deep":
        depth = draw(st.integers(min_value=20, max_value=2000))
        return b'{"a":' * depth + b"1" + b"}" * depth
    if kind == "huge id":
        return json.dumps({"jsonrpc": "2.0", "id": 10 ** draw(st.integers(20, 400)), "method": "ping"}).encode()
    text = json.dumps(draw(messages()))
    at = draw(st.integers(min_value=0, max_value=len(text)))
    insert = '"\\ud800"' if kind == "surrogate" else '"\\u0000"'
    return (text[:at] + insert + text[at:]).encode()


header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30)


def _b64(value: str) -> str:
    return "=?base64?" + base64.b64encode(value.encode()).decode() + "?="


@st.composite
def headers(draw, sessions: dict[str, str]) -> dict[str, str]:
    sent: dict[str, str] = {}
    choices = {
        "MCP-Protocol-Version": st.one_of(st.sampled_from([*VERSIONS, "2024-11-05"]), header_text),
        "Mcp-Method": st.one_of(st.sampled_from(METHODS), header_text, st.sampled_from(METHODS).map(_b64)),
        "Mcp-Name": st.one_of(st.just("counted"), header_text, st.just("counted").map(_b64), st.just("=?base64?!?=")),
        "Mcp-Session-Id": st.one_of(st.sampled_from(sorted(sessions.values())), header_text),
        "Accept": st.sampled_from([ACCEPT_BOTH, "application/json", "text/event-stream", "*/*", "", "text/html"]),
        "Content-Type": st.sampled_from(["application/json", "text/plain", "application/json; charset=utf-8", ""]),
        "Origin": st.one_of(st.just("http://localhost"), header_text),
    }
    for name, strategy in choices.items():
        if draw(st.booleans()):
            sent[name] = draw(strategy)
    sent.setdefault("Content-Type", "application/json")
    return sent


def assert_json_rpc_shaped(status: int, content_type: str, text: str) -> None:
    assert status < 500, text
    if status in (202, 204) or not text:
        return
    assert content_type in ("application/json", "text/event-stream"), (status, content_type, text)
    if content_type == "text/event-stream":
        return
    answer = json.loads(text)
    for one in answer if isinstance(answer, list) else [answer]:
        assert one.get("jsonrpc") == "2.0" and ("result" in one) != ("error" in one), text
        assert "id" in one
        if "error" in one:
            assert isinstance(one["error"]["code"], int) and isinstance(one["error"]["message"], str)


@pytest.fixture
async def fuzz_target(make_client, make_settings):
    registry = ToolRegistry([register_tool(Counted(), "fuzz")])
    client = await make_client(
        make_settings(rate_limit="", auth_failure_limit="", unauthenticated_limit="", max_sessions_per_key="1000"),
        registry=registry,
    )
    sessions = {v: await open_session(client, v) for v in VERSIONS[:3]}
    return client, sessions


FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    database=None,
)
KEYS = {"wrong": "skw_live_" + "A" * 50, "none": None}


@pytest.mark.parametrize("credential", ["valid", "wrong", "none"])
@FUZZ
@given(body=bodies(), data=st.data())
async def test_mcp_never_fails_whatever_it_is_sent(fuzz_target, credential, body, data):
    client, sessions = fuzz_target
    key = client.api_key if credential == "valid" else KEYS[credential]
    sent = data.draw(headers(sessions))
    if key is not None:
        sent["X-API-Key"] = key
    runs_before = len(RUNS)
    resp = await client.anonymous.post("/mcp", data=body, headers=sent)
    assert_json_rpc_shaped(resp.status, resp.content_type, await resp.text())
    if credential != "valid":
        assert len(RUNS) == runs_before  # nothing runs without a valid key
    message = modern_rpc("tools/call", {"name": "counted", "arguments": {"text": "after"}})
    resp = await client.post("/mcp", json=message, headers=modern_headers(message))
    assert resp.status == 200 and (await resp.json())["result"]["isError"] is False  # still serving


PATHS = [
    "/api/health",
    "/api/mcp/tools",
    "/api/mcp/tools/counted",
    "/api/admin/keys",
    "/mcp",
    "/metrics",
    "/nope",
    "/.well-known/oauth-protected-resource",
    "/api/docs",
]
any_header = st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF, exclude_characters="\x7f"), max_size=40)


@FUZZ
@given(
    path=st.sampled_from(PATHS),
    method=st.sampled_from(["GET", "POST", "DELETE", "PUT"]),
    sent=st.dictionaries(
        st.sampled_from(
            [
                "Host",
                "Origin",
                "X-Request-ID",
                "X-Forwarded-For",
                "X-Forwarded-Proto",
                "Authorization",
                "X-API-Key",
                "Accept",
                "Content-Type",
                "Content-Length",
                "MCP-Protocol-Version",
            ]
        ),
        st.one_of(any_header, st.sampled_from(["[", "[::1", "a]:b", "localhost:99999", "http://[", "Bearer", ""])),
        max_size=5,
    ),
)
async def test_any_header_value_gets_an_answer_in_the_door_format(fuzz_target, path, method, sent):
    client, _ = fuzz_target
    sent.pop("Content-Length", None) if method == "GET" else None
    try:
        resp = await client.anonymous.request(method, path, headers=sent, data=b"{}")
    except ValueError:  # the client library refuses to send this header at all
        return
    text = await resp.text()
    assert resp.status < 500, text
    if resp.status >= 400 and path == "/mcp":
        assert (await resp.json())["jsonrpc"] == "2.0"
    elif resp.status >= 400:
        assert resp.content_type == "application/problem+json", text
