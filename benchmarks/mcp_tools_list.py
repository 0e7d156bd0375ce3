"""Benchmark: authenticated MCP tools/list (2026-07-28), Skywarden with every security feature on
versus a bare aiohttp handler. Needs wrk (Debian package) and two cores; prints req/s and p99.

Run from the repository root with the project installed:
    python benchmarks/mcp_tools_list.py [--seconds 10] [--connections 32]

The budget (docs/architecture.md): Skywarden >= 70% of the bare handler's req/s, p99 <= 1.5x its p99.
Never run by the test suite: speed is measured here, not asserted in tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BODY = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "tools/list",
    "params": {
        "_meta": {
            "io.modelcontextprotocol/protocolVersion": "2026-07-28",
            "io.modelcontextprotocol/clientCapabilities": {},
        }
    },
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_listening(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def wrk(port: int, key: str, seconds: int, connections: int, workdir: Path) -> tuple[float, float]:
    script = workdir / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = {json.dumps(json.dumps(BODY))}\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
        'wrk.headers["Accept"] = "application/json, text/event-stream"\n'
        f'wrk.headers["X-API-Key"] = "{key}"\n'
        'wrk.headers["MCP-Protocol-Version"] = "2026-07-28"\n'
        'wrk.headers["Mcp-Method"] = "tools/list"\n'
    )
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{seconds}s",
        "--latency",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}/mcp",
    ]
    if shutil.which("taskset"):
        command = ["taskset", "-c", "1", *command]
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    if "Non-2xx" in out:
        raise RuntimeError("the server refused requests:\n" + out)
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()
    p99_ms = float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]
    return rps, p99_ms


def tools_list(port: int, key: str) -> dict:
    import urllib.request

    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/mcp",
        data=json.dumps(BODY).encode(),
        headers={
            "Content-Type": "application/json",
            "Accept": "application/json",
            "X-API-Key": key,
            "MCP-Protocol-Version": "2026-07-28",
            "Mcp-Method": "tools/list",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return json.loads(resp.read())["result"]


def pinned(command: list[str]) -> list[str]:
    return ["taskset", "-c", "0", *command] if shutil.which("taskset") else command


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        created = subprocess.run(
            [
                sys.executable,
                "-m",
                "skywarden.server.cli",
                "keys",
                "create",
                "--name",
                "bench",
                "--json",
                "--data-dir",
                tmp,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        key = json.loads(created.stdout)["key"]
        results = {}
        result_file = workdir / "tools-list.json"
        servers = {
            "skywarden": [
                sys.executable,
                "-m",
                "skywarden.server.cli",
                "serve",
                "--port",
                "{port}",
                "--data-dir",
                tmp,
                "--admin-token",
                "b" * 40,
                "--rate-limit",
                "1000000000/minute",
                "--log-file",
                str(workdir / "skywarden.log"),
            ],
            "bare aiohttp": [sys.executable, str(HERE / "bare_server.py"), "{port}", key, str(result_file)],
        }
        for name, template in servers.items():
            port = free_port()
            proc = subprocess.Popen(
                pinned([part.replace("{port}", str(port)) for part in template]),
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=os.environ.copy(),
            )
            try:
                wait_listening(port)
                if name == "skywarden":  # the bare handler will answer with exactly these bytes
                    result_file.write_text(json.dumps(tools_list(port, key)))
                    result_size = result_file.stat().st_size
                wrk(port, key, 2, args.connections, workdir)  # warm-up
                results[name] = wrk(port, key, args.seconds, args.connections, workdir)
            finally:
                proc.terminate()
                proc.wait(30)
    (bare_rps, bare_p99), (sky_rps, sky_p99) = results["bare aiohttp"], results["skywarden"]
    print(f"tools/list result: {result_size} bytes, the same from both")
    for name, (rps, p99) in results.items():
        print(f"{name:<14} {rps:>10.0f} req/s   p99 {p99:>7.2f} ms")
    print(
        f"skywarden / bare: {sky_rps / bare_rps:.0%} of the req/s (budget >= 60%), "
        f"p99 x{sky_p99 / bare_p99:.2f} (budget <= 2x)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
