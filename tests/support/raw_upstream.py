"""Test-only: a stdio MCP server written by hand, line by line, that misbehaves where an SDK server
would not (run: ``python -m tests.support.raw_upstream [stubborn]``).

Tools: ``echo``; ``outs`` answers structured content its output schema refuses; ``closed`` answers
the JSON-RPC error the SDK uses for a closed connection; ``flood`` sends 5,000 progress
notifications with long messages before its answer; ``request_id`` answers its request's id,
``hold`` never answers, and ``cancelled`` answers the ids of the calls cancelled so far; ``long``
answers on a line of 5 MB, ``long_note`` writes a 5 MB line before its answer; ``deaf``
answers, then reads nothing more. With ``stubborn`` it ignores the end of its input (and
SIGTERM), so only its process group's end stops it.
"""

from __future__ import annotations

import json
import signal
import sys
import time

TOOLS = [
    {"name": "echo", "inputSchema": {"type": "object", "properties": {"text": {"type": "string"}}}},
    {
        "name": "outs",
        "inputSchema": {"type": "object"},
        "outputSchema": {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]},
    },
    {"name": "closed", "inputSchema": {"type": "object"}},
    {"name": "flood", "inputSchema": {"type": "object"}},
    {"name": "request_id", "inputSchema": {"type": "object"}},
    {"name": "hold", "inputSchema": {"type": "object"}},
    {"name": "cancelled", "inputSchema": {"type": "object"}},
    {"name": "long", "inputSchema": {"type": "object"}},
    {"name": "long_note", "inputSchema": {"type": "object"}},
    {"name": "deaf", "inputSchema": {"type": "object"}},
]
cancelled: list[object] = []  # the request ids of notifications/cancelled received


def send(message: dict) -> None:
    if "id" in message:  # as the SDKs write it: the id before the result
        message = {"jsonrpc": "2.0", "id": message["id"], **message}
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


def answer(request: dict) -> None:
    rid, method = request["id"], request["method"]
    params = request.get("params") or {}
    if method == "initialize":
        info = {"name": "raw", "version": "1"}
        send(
            {
                "jsonrpc": "2.0",
                "id": rid,
                "result": {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}}, "serverInfo": info},
            }
        )
    elif method == "tools/list":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": TOOLS}})
    elif method == "ping":
        send({"jsonrpc": "2.0", "id": rid, "result": {}})
    elif method == "tools/call":
        name, token = params["name"], (params.get("_meta") or {}).get("progressToken")
        if name == "outs":
            result = {"content": [{"type": "text", "text": "x"}], "structuredContent": {"x": "not a number"}}
        elif name == "closed":
            send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32000, "message": "Connection closed"}})
            return
        elif name == "hold":
            return  # never answered
        elif name == "request_id":
            result = {"content": [{"type": "text", "text": json.dumps(rid)}]}
        elif name == "long":  # an answer of 5 MB on one line
            result = {"content": [{"type": "text", "text": "x" * 5_000_000}]}
        elif name == "long_note":  # a 5 MB log line first, then the answer
            send(
                {
                    "jsonrpc": "2.0",
                    "method": "notifications/message",
                    "params": {"level": "info", "data": "x" * 5_000_000},
                }
            )
            result = {"content": [{"type": "text", "text": "after the long line"}]}
        elif name == "deaf":
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "deaf now"}]}})
            while True:
                time.sleep(60)
        elif name == "cancelled":
            result = {"content": [{"type": "text", "text": json.dumps(cancelled)}]}
        elif name == "flood":
            for i in range(5000):
                note = {"progressToken": token, "progress": i, "message": "m" * 5000}
                send({"jsonrpc": "2.0", "method": "notifications/progress", "params": note})
            result = {"content": [{"type": "text", "text": "flooded"}]}
        else:
            result = {"content": [{"type": "text", "text": str((params.get("arguments") or {}).get("text"))}]}
        send({"jsonrpc": "2.0", "id": rid, "result": result})
    else:
        send({"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}})


def main() -> None:
    stubborn = sys.argv[1:] == ["stubborn"]
    if stubborn:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for line in sys.stdin:
        message = json.loads(line)
        if "id" in message and "method" in message:
            answer(message)
        elif message.get("method") == "notifications/cancelled":
            cancelled.append(message["params"]["requestId"])
    while stubborn:
        time.sleep(60)


if __name__ == "__main__":
    main()
