"""Instructions per request, counted by valgrind: a figure that a noisy machine moves far less.

Each server's aiohttp protocol is fed raw HTTP requests through an in-memory transport, in one
process: no sockets, no system calls, no second core. Callgrind counts the instructions of two
runs that differ only in how many requests they serve; the difference per request is what one
request costs, start-up and warm-up excluded. Skywarden's figure for one build stays within
about 2% from run to run (the bare handlers' within about 5%: the count includes what runs on
wall-clock timers, such as aiohttp's Date header and the log writer's wake-ups, and under
valgrind the clock runs at whatever pace the machine allows), where wrk's req/s moves 5-20%
here. It counts user-space work only: system calls (the same for every server) and cache
effects are outside it, so it complements suite.py, never replaces it.

Skywarden runs as suite.py runs it (every security feature on, an audit line per request to a
file, the fake NWS as upstream), built by ``create_app`` and served by the same guarded runner
``skywarden serve`` uses; the bare handlers are bare_server.py's, answering the bytes Skywarden
gave.

Run from the repository root with the test virtualenv (valgrind: apt-get install valgrind):
    .venv-test/bin/python benchmarks/instructions.py [--only rest ...] [--requests 200 1200]
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import contextlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import suite  # noqa: E402  (this folder's scripts, not a package)

SCENARIOS = {
    "tools/list": suite.TOOLS_LIST,
    "tools/call": suite.TOOLS_CALL,
    "tools/call distinct": suite.TOOLS_CALL_DISTINCT,
    "rest": suite.REST_CALL,
    "gateway stdio": suite.gateway_call("stdio"),
    "gateway http": suite.gateway_call("http"),
}
UPSTREAM_KEY = "bench-upstream-key-0123456789abcdefghij"
WARM_UP = 300


class MemoryTransport(asyncio.Transport):
    """Collects what the server writes; ``answered`` is set when an answer went out."""

    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []
        self.answered: asyncio.Future[None] | None = None
        self._closing = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        return {"peername": ("127.0.0.1", 40000), "sockname": ("127.0.0.1", 8080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written.append(bytes(data))
        if self.answered is not None and not self.answered.done():
            self.answered.set_result(None)

    def writelines(self, lines: list[bytes]) -> None:
        self.write(b"".join(lines))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self._closing = True

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    def get_write_buffer_size(self) -> int:
        return 0


def raw_requests(request: suite.Request, key: str) -> list[bytes]:
    """The request (or each of its variants) as the bytes a client sends."""
    out = []
    for body in request.variants or (request.body,):
        data = json.dumps(body).encode()
        headers = {
            "Host": "127.0.0.1:8080",
            "Content-Type": "application/json",
            "X-API-Key": key,
            **request.headers,
            "Content-Length": str(len(data)),
        }
        head = f"POST {request.path} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
        out.append(head.encode() + data)
    return out


async def serve(server, payloads: list[bytes], count: int, start: int = 0) -> bytes:
    """``count`` requests on one keep-alive connection, one at a time, the payloads in rotation
    from ``start``; the last answer."""
    loop = asyncio.get_running_loop()
    protocol = server()
    transport = MemoryTransport()
    protocol.connection_made(transport)
    for i in range(count):
        transport.answered = loop.create_future()
        protocol.data_received(payloads[(start + i) % len(payloads)])
        await transport.answered
    last = transport.written[-1]
    transport.written.clear()
    protocol.connection_lost(None)
    return last


@dataclass(frozen=True)
class Servers:
    """What a counted run talks to besides itself: the fake NWS and the SDK server on it."""

    nws_url: str
    sdk_port: int

    def argv(self) -> list[str]:
        return [self.nws_url, str(self.sdk_port)]


async def child(target: str, scenario: str, count: int, servers: Servers, workdir: str, lines: int = 0) -> None:
    """One counted run: set Skywarden up (it makes the key and the answers bare gives), warm the
    target up, then serve ``count`` requests to it (with ``lines``: and print the Python lines
    each of the ``lines`` busiest functions ran per request, from the interpreter's line events)."""
    from aiohttp import web
    from bare_server import make_app

    from skywarden.server.app import create_app
    from skywarden.server.appkeys import KEY_OPERATIONS
    from skywarden.server.auth.key_operations import CLI_ACTOR
    from skywarden.server.cli.serve import configure_server_logging
    from skywarden.server.http.connections import GuardedAppRunner
    from skywarden.server.observability.audit import audit_connection
    from skywarden.server.plugins.registry import discover_tools
    from skywarden.server.plugins.settings import declared_settings
    from skywarden.server.settings import load_settings

    cli = {
        "data_dir": workdir,
        "admin_token": suite.ADMIN_TOKEN,
        "secret": suite.SECRET,
        "rate_limit": suite.HIGH_LIMIT,
        "auth_failure_limit": suite.HIGH_LIMIT,
        "weather_base_url": servers.nws_url,
        "log_file": str(Path(workdir) / "server.log"),
    }
    gateway = scenario.startswith("gateway")
    upstreams = _upstreams(scenario, servers) if gateway else {}
    if gateway:  # the official SDK server as the upstream (its own process: callgrind counts only this one)
        cli["upstreams"] = json.dumps(upstreams)
    registry = discover_tools()
    settings = load_settings(cli=cli, environ={}, plugins=declared_settings(registry.plugins))
    configure_server_logging(settings)
    app = create_app(settings, registry=registry)
    sky = GuardedAppRunner(app, idle_timeout=60, auditor=audit_connection, handle_signals=False, access_log=None)
    await sky.setup()
    scopes = [f"upstream:{name}" for name in upstreams] or suite.BENCH_KEY["scopes"]
    _, key = await app[KEY_OPERATIONS].create({**suite.BENCH_KEY, "scopes": scopes}, CLI_ACTOR)
    results = {}
    answered_by_both = {"tools/list": suite.TOOLS_LIST, "tools/call": suite.TOOLS_CALL, "rest": suite.REST_CALL}
    for name, request in ({} if gateway else answered_by_both).items():  # the gateway has no bare counterpart
        answer = await serve(sky.server, raw_requests(request, key), 1)
        body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
        results[name] = body if name == "rest" else body["result"]
    if target == "bare":  # Skywarden's timers (key cache, change feed) must not run in bare's count
        await sky.cleanup()
        runner = web.AppRunner(make_app(key, results), handle_signals=False, access_log=None)
        await runner.setup()
    else:
        runner = sky
    server = runner.server
    payloads = raw_requests(SCENARIOS[scenario], key)
    await serve(server, payloads, WARM_UP)
    ran: Counter[str] = Counter()
    if lines:
        sys.settrace(_line_counter(ran))
    last = await serve(server, payloads, count, start=WARM_UP)  # variants the warm-up did not send
    sys.settrace(None)
    if lines:
        print(f"{target} {scenario}: {sum(ran.values()) / count:.0f} Python lines per request")
        for where, n in ran.most_common(lines):
            print(f"{n / count:8.1f}  {where}")
    if not last.startswith(b"HTTP/1.1 200"):
        raise SystemExit(f"{target} {scenario}: {last[:200]!r}")
    answer = json.loads(last.split(b"\r\n\r\n", 1)[1])
    if scenario == "rest":  # the result itself
        failed = not isinstance(answer, dict) or bool(answer.get("isError"))
    else:
        failed = "error" in answer or not isinstance(answer.get("result"), dict) or answer["result"].get("isError")
    if failed:
        raise SystemExit(f"{target} {scenario}: the call failed, so its count says nothing: {last[-300:]!r}")
    await runner.cleanup()


def _upstreams(scenario: str, servers: Servers) -> dict:
    """The SDK server as the scenario's upstream: a stdio one started by Skywarden, or the one
    ``fake_nws`` serves over Streamable HTTP."""
    if scenario == "gateway stdio":
        return {"stdio": suite.stdio_upstream(servers.nws_url, core=None)}
    url = f"http://127.0.0.1:{servers.sdk_port}/mcp"
    return {"http": {"url": url, "allow_private": True, "headers": {"X-API-Key": UPSTREAM_KEY}}}


def _line_counter(ran: Counter[str]):
    def trace(frame, event, arg):
        if event == "line":
            code = frame.f_code
            ran[f"{code.co_filename.split('site-packages/')[-1]}:{code.co_name}"] += 1
        return trace

    return trace


def counted(target: str, scenario: str, count: int, servers: Servers, tmp: Path) -> int:
    """Instructions of a whole child run under callgrind (in a data folder of its own)."""
    workdir = tmp / re.sub(r"\W", "_", f"{target}-{scenario}-{count}")
    workdir.mkdir()
    command = ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable, __file__]
    command += ["--child", target, scenario, str(count), *servers.argv(), str(workdir)]
    run = subprocess.run(command, capture_output=True, text=True, env={"PYTHONHASHSEED": "0", "PATH": "/usr/bin:/bin"})
    found = re.search(r"Collected : (\d+)", run.stderr)
    if run.returncode != 0 or found is None:
        raise SystemExit(f"{target} {scenario} failed:\n{run.stderr[-2000:]}")
    return int(found.group(1))


def per_request(runs: dict[int, int], low: int, high: int) -> float:
    return (runs[high] - runs[low]) / (high - low)


@contextlib.contextmanager
def fake_nws(tmp: Path) -> Iterator[Servers]:
    """The fake NWS, and the SDK server over Streamable HTTP on it (the ``gateway http``
    upstream), as processes for as long as the block runs."""
    port, sdk_port = suite.free_port(), suite.free_port()
    nws = suite.Process([sys.executable, str(HERE / "fake_nws_server.py"), str(port)], port, tmp / "nws.log", pin=False)
    sdk = None
    try:
        url = f"http://127.0.0.1:{port}"
        suite.wait_for(url + "/points/39.7456,-97.0892")
        sdk = suite.Process([sys.executable, str(HERE / "sdk_server.py"), str(sdk_port), UPSTREAM_KEY, url, "uvloop"],
                            sdk_port, tmp / "sdk-server.log", pin=False)  # fmt: skip
        suite.Suite._wait_port(sdk_port)
        yield Servers(url, sdk_port)
    finally:
        if sdk is not None:
            sdk.stop()
        nws.stop()


def _targets(scenario: str) -> tuple[str, ...]:
    """The servers a scenario is counted on: the gateway's has no bare counterpart."""
    return ("skywarden",) if scenario.startswith("gateway") else ("bare", "skywarden")


def _lines(scenario: str, top: int) -> int:
    """Where the Python lines of one request go, for both servers (no valgrind needed)."""
    with tempfile.TemporaryDirectory() as tmp, fake_nws(Path(tmp)) as servers:
        for target in _targets(scenario):
            workdir = Path(tmp) / target
            workdir.mkdir()
            command = [sys.executable, __file__, "--child", target, scenario, "200", *servers.argv(), str(workdir)]
            subprocess.run([*command, "--lines", str(top)], check=True)
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        target, scenario, count, nws_url, sdk_port, workdir = sys.argv[2:8]
        import uvloop

        lines = int(sys.argv[9]) if sys.argv[8:9] == ["--lines"] else 0
        uvloop.run(child(target, scenario, int(count), Servers(nws_url, int(sdk_port)), workdir, lines=lines))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", choices=sorted(SCENARIOS), help="scenarios to count (default: all)")
    parser.add_argument("--requests", nargs=2, type=int, default=(200, 1200), metavar=("LOW", "HIGH"))
    parser.add_argument("--jobs", type=int, default=2, help="counted runs at a time")
    parser.add_argument("--lines", choices=sorted(SCENARIOS), help="instead: Python lines per request, by function")
    parser.add_argument("--top", type=int, default=40, help="with --lines: how many functions to list")
    args = parser.parse_args()
    if args.top < 1:
        parser.error("--top must be at least 1")
    if args.lines:
        return _lines(args.lines, args.top)
    if not shutil.which("valgrind"):
        print("valgrind is needed: apt-get install valgrind", file=sys.stderr)
        return 2
    low, high = args.requests
    compileall.compile_dir(HERE, quiet=1)  # else the first counted run alone compiles these scripts
    with tempfile.TemporaryDirectory() as tmp, fake_nws(Path(tmp)) as servers:
        jobs = [(t, s, n) for s in args.only or SCENARIOS for t in _targets(s) for n in (low, high)]
        with ThreadPoolExecutor(args.jobs) as pool:  # callgrind's counts do not depend on what runs beside
            counts = list(pool.map(lambda job: counted(*job, servers, Path(tmp)), jobs))
    found: dict[tuple[str, str], dict[int, int]] = {}
    for (target, scenario, count), total in zip(jobs, counts, strict=True):
        found.setdefault((target, scenario), {})[count] = total
    print(f"instructions per request (callgrind; {high} - {low} requests)")
    print("| scenario | bare aiohttp | Skywarden | bare / Skywarden |")
    print("|---|---|---|---|")
    for scenario in args.only or SCENARIOS:
        sky = per_request(found["skywarden", scenario], low, high)
        if "bare" not in _targets(scenario):
            print(f"| {scenario} | | {sky:,.0f} | |")
            continue
        bare = per_request(found["bare", scenario], low, high)
        print(f"| {scenario} | {bare:,.0f} | {sky:,.0f} | {bare / sky:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
