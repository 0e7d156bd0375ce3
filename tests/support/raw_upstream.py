"""Test-only: a stdio MCP server written by hand, line by line, that misbehaves where an SDK server
would not (run: ``python -m tests.support.raw_upstream [stubborn]``).

Tools: ``echo``; ``outs`` answers structured content its output schema refuses; ``closed`` answers
the JSON-RPC error the SDK uses for a closed connection; ``flood`` sends 5,000 progress
notifications with long messages before its answer; ``request_id`` answers its request's id,
``hold`` never answers, and ``cancelled`` answers the ids of the calls cancelled so far; ``long``
answers on a line of 5 MB (``long_last`` too, its id last), ``long_note`` writes a 5 MB line before its answer; ``deaf``
answers, then reads nothing more; ``asks`` sends Skywarden 3,000 requests before its answer,
then reads nothing more; ``pings`` pings Skywarden and answers what came back. With
``stubborn`` it ignores the end of its input (and SIGTERM), so only its process group's end
stops it. With ``many`` its listing has two pages:
its tools and a tool of 200 KB, then 20 more tools (``n0`` ...). With ``flap`` every listing
holds a tool with an invalid name and is followed by ``notifications/tools/list_changed``, and the
tool ``listings`` answers how many listings it gave. With ``invalid`` its listing holds a tool whose
input schema is no object schema, which the SDK's model of a listing refuses; with ``notools``
its listing's tools are no list at all. With ``heavy`` its listing adds ``heavy``, whose schemas
match its string ``s`` against one slow pattern 40 times over (``HEAVY``): it answers with ``s``
as given, or with ``size`` bytes of it.
"""

from __future__ import annotations

import json
import random
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
    {"name": "long_last", "inputSchema": {"type": "object"}},
    {"name": "deaf", "inputSchema": {"type": "object"}},
    {"name": "asks", "inputSchema": {"type": "object"}},
    {"name": "pings", "inputSchema": {"type": "object"}},
]
# A pattern whose lazy DFA keeps missing its cache (about 250 ns a byte), 40 times over a string.
SLOW_PATTERN = "^[ab]*a[ab]{18}$"
HEAVY_STRING = {"type": "string", "allOf": [{"pattern": SLOW_PATTERN}] * 40}
HEAVY = {
    "name": "heavy",
    "inputSchema": {"type": "object", "properties": {"s": HEAVY_STRING, "size": {"type": "integer"}}},
    "outputSchema": {"type": "object", "properties": {"s": HEAVY_STRING}, "required": ["s"]},
}


def random_ab(size: int) -> str:
    """``size`` letters a and b, the same for a size, ending in a match of ``SLOW_PATTERN``
    (its DFA keeps missing its cache on such a string, not on a regular one)."""
    pick = random.Random(size).choice
    return "".join(pick("ab") for _ in range(size - 20)) + "a" * 20


cancelled: list[object] = []  # the request ids of notifications/cancelled received
listings: list[object] = []  # the request ids of the tools/list answered (``flap``)


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
    elif method == "tools/list" and MODE == "many":  # two pages, the first with a tool of 200 KB
        if params.get("cursor") is None:
            huge = {"name": "huge", "description": "d" * 200_000, "inputSchema": {"type": "object"}}
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [*TOOLS, huge], "nextCursor": "2"}})
        else:
            more = [{"name": f"n{i}", "inputSchema": {"type": "object"}} for i in range(20)]
            send({"jsonrpc": "2.0", "id": rid, "result": {"tools": more}})
    elif method == "tools/list" and MODE == "invalid":
        odd = {"name": "odd", "inputSchema": {"type": "string"}}
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [*TOOLS, odd, "no tool at all"]}})
    elif method == "tools/list" and MODE == "notools":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": "none"}})
    elif method == "tools/list" and MODE == "flap":  # a change announced after every listing
        listings.append(rid)
        bad = {"name": "bad name!", "inputSchema": {"type": "object"}}
        listing = {"name": "listings", "inputSchema": {"type": "object"}}
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [*TOOLS, listing, bad]}})
        send({"jsonrpc": "2.0", "method": "notifications/tools/list_changed"})
    elif method == "tools/list" and MODE == "heavy":
        send({"jsonrpc": "2.0", "id": rid, "result": {"tools": [*TOOLS, HEAVY]}})
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
        elif name == "long_last":  # 5 MB, written as the TypeScript SDK orders it: the id last
            result = {"content": [{"type": "text", "text": "x" * 5_000_000}]}
            sys.stdout.write(json.dumps({"result": result, "jsonrpc": "2.0", "id": rid}) + "\n")
            sys.stdout.flush()
            return
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
        elif name == "asks":
            for i in range(3000):
                send({"jsonrpc": "2.0", "id": f"ask-{i}", "method": "roots/list" if i % 2 else "ping"})
            send({"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": "asked"}]}})
            while True:
                time.sleep(60)
        elif name == "pings":
            send({"jsonrpc": "2.0", "id": "ping-1", "method": "ping"})
            back = next(m for m in map(json.loads, sys.stdin) if m.get("id") == "ping-1" and "method" not in m)
            result = {"content": [{"type": "text", "text": json.dumps(back)}]}
        elif name == "heavy":
            arguments = params.get("arguments") or {}
            size = arguments.get("size")
            text = random_ab(size) if size else arguments.get("s")
            result = {"content": [{"type": "text", "text": "s"}], "structuredContent": {"s": text}}
        elif name == "listings":
            result = {"content": [{"type": "text", "text": str(len(listings))}]}
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


MODE = ""  # the command line's argument


def main() -> None:
    global MODE
    MODE = sys.argv[1] if len(sys.argv) > 1 else ""
    stubborn = MODE == "stubborn"
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
