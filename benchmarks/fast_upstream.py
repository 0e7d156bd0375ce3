"""A fast stdio MCP server, for the gateway rows of suite.py that measure the gateways alone.

Behind the official SDK server as their upstream, both gateways wait on the same slow upstream
(its own CPU a call is about twice Skywarden's whole gateway call), so their req/s say more about
the upstream than about them. This upstream answers every ``tools/call`` at once with one
result given in a file (the SDK server's own answer to the same call, so both gateways pass on
the same bytes): the gateways' own work is what is left to measure.

It speaks the handshake era (``initialize``, 2025-11-25 and older), as most stdio servers do
today, and refuses ``server/discover`` as such a server does; both gateways then fall back to
``initialize``. Standard library only: ``python benchmarks/fast_upstream.py RESULT_JSON_FILE``.
"""

from __future__ import annotations

import json
import sys
from typing import Any

VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
TOOL = {
    "name": "get_forecast",
    "description": "The forecast for a point (a canned answer).",
    "inputSchema": {
        "type": "object",
        "properties": {"latitude": {"type": "number"}, "longitude": {"type": "number"}},
        "required": ["latitude", "longitude"],
    },
}


def answer(message: dict[str, Any], call_result: dict[str, Any]) -> dict[str, Any] | None:
    """The response to one message (None for a notification)."""
    method, request_id = message.get("method"), message.get("id")
    if request_id is None or not isinstance(method, str):
        return None
    if method == "initialize":
        asked = message.get("params", {}).get("protocolVersion")
        result: dict[str, Any] = {
            "protocolVersion": asked if asked in VERSIONS else VERSIONS[-1],
            "capabilities": {"tools": {}},
            "serverInfo": {"name": "fast-upstream", "version": "1"},
        }
    elif method == "tools/list":
        result = {"tools": [TOOL]}
    elif method == "tools/call":
        result = call_result
    elif method == "ping":
        result = {}
    else:
        return {"jsonrpc": "2.0", "id": request_id, "error": {"code": -32601, "message": f"no method {method}"}}
    return {"jsonrpc": "2.0", "id": request_id, "result": result}


def main() -> None:
    with open(sys.argv[1], encoding="utf-8") as fh:
        call_result = json.load(fh)
    out = sys.stdout.buffer
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        response = answer(json.loads(line), call_result)
        if response is not None:
            out.write(json.dumps(response, separators=(",", ":")).encode() + b"\n")
            out.flush()


if __name__ == "__main__":
    main()
