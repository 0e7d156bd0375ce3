"""benchmarks/fast_upstream.py, the upstream of the suite's fast gateway rows, is a real MCP
server: the official SDK client connects to it over stdio and calls its tool, so the rows
measure gateways passing on a conforming exchange."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters, stdio_client

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))

from fast_upstream import answer  # noqa: E402

RESULT = {"content": [{"type": "text", "text": "canned"}], "structuredContent": {"a": 1}, "isError": False}


def test_initialize_keeps_a_handshake_version_it_knows_and_offers_its_newest_otherwise():
    for asked, given in (("2025-06-18", "2025-06-18"), ("2026-07-28", "2025-11-25"), (None, "2025-11-25")):
        reply = answer({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": asked}}, {})
        assert reply is not None
        assert reply["id"] == 1
        assert reply["result"]["protocolVersion"] == given
        assert reply["result"]["capabilities"] == {"tools": {}}


def test_every_call_gets_the_canned_result_under_its_own_id():
    for request_id in (7, "x-1"):
        reply = answer({"jsonrpc": "2.0", "id": request_id, "method": "tools/call", "params": {}}, RESULT)
        assert reply == {"jsonrpc": "2.0", "id": request_id, "result": RESULT}


def test_discover_and_unknown_methods_are_refused_notifications_unanswered():
    reply = answer({"jsonrpc": "2.0", "id": 2, "method": "server/discover"}, RESULT)
    assert reply is not None and reply["error"]["code"] == -32601
    assert answer({"jsonrpc": "2.0", "method": "notifications/initialized"}, RESULT) is None
    assert answer({"jsonrpc": "2.0", "id": 3, "method": "ping"}, RESULT) == {"jsonrpc": "2.0", "id": 3, "result": {}}


@pytest.mark.slow
async def test_the_sdk_client_lists_and_calls_its_tool_over_stdio(tmp_path):
    result_file = tmp_path / "result.json"
    result_file.write_text(json.dumps(RESULT))
    argv = [str(BENCHMARKS / "fast_upstream.py"), str(result_file)]
    server = StdioServerParameters(command=sys.executable, args=argv)
    async with Client(stdio_client(server), mode="auto") as client:
        tools = await client.list_tools()
        assert [tool.name for tool in tools.tools] == ["get_forecast"]
        called = await client.call_tool("get_forecast", {"latitude": 1.0, "longitude": 2.0})
    assert called.is_error is False
    assert called.structured_content == {"a": 1}
    assert [block.text for block in called.content] == ["canned"]
