"""Every benchmark scenario in one go, printed as one table (docs/performance.md has the results).

Each server is pinned to core 0 with taskset and wrk (Debian: apt-get install wrk) to core 1.
Skywarden runs with its defaults and every security feature on: request id, an audit event per
request written to a file, Host/Origin checks, key verification from the real store, the per-IP
failure limit, a per-key limiter with a high limit, metrics, security headers. The bare aiohttp
handler checks one key, parses the body and answers the bytes Skywarden gave; the official SDK
server (sdk_server.py) runs the same two tools on the same fake NWS. All of them run on the same
event loop (``--loop``), so the ratios measure the servers, not the loop.

Run from the repository root with the test virtualenv (it has the SDK, asyncpg and redis):
    .venv-test/bin/python benchmarks/suite.py [--seconds 10] [--connections 32] [--loop uvloop]
        [--only tools/list ...] [--no-shared]

PostgreSQL (127.0.0.1:5432, trust) and Redis (127.0.0.1:6379) are needed for the shared-state
rows, as for the test suite. Never run by the tests: speed is measured here, not asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import re
import secrets
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
PYTHON = sys.executable
ADMIN_TOKEN = "bench-admin-token-0123456789abcdefghijklmn"
SECRET = "bench-server-secret-0123456789abcdefghijklm"
ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
HIGH_LIMIT = "1000000000/minute"
FORECAST_ARGUMENTS = {"latitude": 39.7456, "longitude": -97.0892}
# Every benchmark key may use the two weather tools and no other: the test virtualenv also holds
# the conformance suite's tool plugin, whose ten tools would otherwise swell tools/list (4,421
# bytes instead of 2,485) beyond what the SDK server lists.
BENCH_KEY = {"name": "bench", "scopes": ["get_forecast", "get_alerts"]}
MODERN_META = {
    "io.modelcontextprotocol/protocolVersion": "2026-07-28",
    "io.modelcontextprotocol/clientCapabilities": {},
}


def mcp_body(method: str, params: dict | None = None) -> dict:
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": {**(params or {}), "_meta": MODERN_META}}


@dataclass(frozen=True)
class Request:
    """One kind of request wrk sends over and over (``variants``: bodies sent in rotation instead)."""

    path: str
    body: dict
    headers: dict[str, str] = field(default_factory=dict)
    variants: tuple[dict, ...] = ()


def mcp_request(method: str, params: dict | None = None, name: str | None = None) -> Request:
    headers = {
        "Accept": "application/json, text/event-stream",
        "MCP-Protocol-Version": "2026-07-28",
        "Mcp-Method": method,
    }
    if name:
        headers["Mcp-Name"] = name
    return Request("/mcp", mcp_body(method, params), headers)


TOOLS_LIST = mcp_request("tools/list")
TOOLS_CALL = mcp_request("tools/call", {"name": "get_forecast", "arguments": FORECAST_ARGUMENTS}, "get_forecast")
# Points that differ past NWS's four decimals: each a new argument set (more of them than results
# are kept, so every call misses the kept results) answered from the same cached NWS answers.
DISTINCT_POINTS = 2_000
TOOLS_CALL_DISTINCT = dataclasses.replace(
    TOOLS_CALL,
    variants=tuple(
        mcp_body("tools/call", {"name": "get_forecast", "arguments": {**FORECAST_ARGUMENTS, "latitude": latitude}})
        for latitude in (FORECAST_ARGUMENTS["latitude"] + i * 2e-8 for i in range(DISTINCT_POINTS))
    ),
)


APART = "stdio, upstream on core 1"  # the gateway runs where the stdio upstream does not
FAST = "a fast stdio upstream"  # fast_upstream.py: the gateways' own work, not the upstream's
BARE_PROXY = "bare aiohttp proxy -> SDK server over Streamable HTTP"  # bare_proxy.py: the floor of a gateway


def gateway_call(upstream: str) -> Request:
    """tools/call get_forecast through Skywarden's gateway to the upstream named ``upstream``."""
    tool = f"{upstream}__get_forecast"
    return mcp_request("tools/call", {"name": tool, "arguments": FORECAST_ARGUMENTS}, tool)


def stdio_upstream(nws_url: str, core: int | None = 0) -> dict:
    """The official SDK server (sdk_server.py) as a stdio upstream's settings (on ``core``)."""
    return _on_core([PYTHON, str(HERE / "sdk_server.py"), "stdio", "-", nws_url], core)


def fast_upstream(result_file: Path, core: int | None = 0) -> dict:
    """fast_upstream.py, answering every call with the result in ``result_file``, as a stdio
    upstream's settings (on ``core``)."""
    return _on_core([PYTHON, str(HERE / "fast_upstream.py"), str(result_file)], core)


def _on_core(argv: list[str], core: int | None) -> dict:
    if core is None:
        return {"command": argv[0], "args": argv[1:]}
    return {"command": "taskset", "args": ["-c", str(core), *argv]}


REST_CALL = Request("/api/mcp/tools/get_forecast", FORECAST_ARGUMENTS)
SAME_SERVER_CALL = "Skywarden tools/call"  # run in REST's rounds: REST's req/s as a share of it
SDK_CALL = "official SDK tools/call"  # run in REST's rounds too: REST's req/s as a multiple of it
# The rows measured again on PostgreSQL + Redis and with --workers 2 (``Suite.shared_state``).
SHARED_SCENARIOS = (
    ("MCP tools/list", TOOLS_LIST),
    ("MCP tools/call get_forecast", TOOLS_CALL),
    ("REST get_forecast", REST_CALL),
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(url: str, timeout: float = 60) -> float:
    """Seconds until ``url`` answers 200."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError(f"{url} did not answer within {timeout}s")


def pinned(command: list[str], core: int) -> list[str]:
    return ["taskset", "-c", str(core), *command] if shutil.which("taskset") else command


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """The CPU time (user + system) a process has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def send(port: int, request: Request, key: str) -> bytes:
    http = urllib.request.Request(
        f"http://127.0.0.1:{port}{request.path}",
        data=json.dumps(request.body).encode(),
        headers={"Content-Type": "application/json", "X-API-Key": key, **request.headers},
    )
    with urllib.request.urlopen(http, timeout=10) as resp:
        return resp.read()


def wrk_script(workdir: Path, request: Request, keys_file: Path) -> Path:
    """A wrk script sending ``request`` with the keys of ``keys_file`` in rotation (one key = a hot key)."""
    headers = {"Content-Type": "application/json", **request.headers}
    bodies = [json.dumps(json.dumps(body)) for body in request.variants or (request.body,)]
    lines = ["local bodies = {", *[f"  {body}," for body in bodies], "}", "local headers = {"]
    lines += [f'  ["{name}"] = "{value}",' for name, value in headers.items()]
    lines += [
        "}",
        "local keys = {}",
        f'for line in io.lines("{keys_file}") do keys[#keys + 1] = line end',
        "local n = 0",
        "request = function()",
        "  n = n + 1",
        '  headers["X-API-Key"] = keys[(n % #keys) + 1]',
        f'  return wrk.format("POST", "{request.path}", headers, bodies[(n % #bodies) + 1])',
        "end",
    ]
    script = workdir / f"wrk-{secrets.token_hex(4)}.lua"
    script.write_text("\n".join(lines) + "\n")
    return script


@dataclass
class Measured:
    rps: float
    p50_ms: float
    p99_ms: float
    non_2xx: int = 0


def _ms(text: str, label: str) -> float:
    value, unit = re.search(rf"{label}\s+([\d.]+)(us|ms|s)\b", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(port: int, script: Path, seconds: int, connections: int) -> Measured:
    command = pinned(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}"],
        1,
    )
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return Measured(
        float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        _ms(out, "50%"),
        _ms(out, "99%"),
        int(bad.group(1)) if bad else 0,
    )


class Process:
    def __init__(self, argv: list[str], port: int, log: Path, pin: bool = True) -> None:
        self.port = port
        self.log = log.open("w")
        command = pinned(argv, 0) if pin else argv
        self.proc = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, cwd=ROOT)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


def skywarden_argv(port: int, data_dir: Path, nws_url: str, loop: str, *extra: str) -> list[str]:
    return [
        PYTHON, "-m", "skywarden.server.cli", "serve", "--port", str(port), "--data-dir", str(data_dir),
        "--admin-token", ADMIN_TOKEN, "--secret", SECRET, "--rate-limit", HIGH_LIMIT,
        "--auth-failure-limit", HIGH_LIMIT, "--weather-base-url", nws_url, "--event-loop", loop,
        "--log-file", str(data_dir / "server.log"), *extra,
    ]  # fmt: skip


def create_keys(count: int, store_args: list[str], out: Path) -> None:
    """``count`` keys straight into the store (through the same operations the admin API uses)."""
    code = f"""
import asyncio, sys
sys.argv = ["x"]
from skywarden.server.auth.backends import open_store
from skywarden.server.auth.key_operations import KeyOperations, CLI_ACTOR
from skywarden.server.observability.logging_setup import configure_logging
from skywarden.server.settings import load_settings

async def main():
    configure_logging(log_file={str(out.with_suffix(".log"))!r})
    settings = load_settings(cli=dict(zip({store_args[0::2]!r}, {store_args[1::2]!r})), environ={{}})
    store = open_store(settings.resolved_database_url)
    await store.open()
    ops = KeyOperations(store, settings.secret.encode(), lambda: ["get_forecast", "get_alerts"], "live")
    with open({str(out)!r}, "w") as fh:
        for i in range({count}):
            _, key = await ops.create({{**{BENCH_KEY!r}, "name": f"bench-{{i}}"}}, CLI_ACTOR)
            fh.write(key + "\\n")
    await store.close()

asyncio.run(main())
"""
    subprocess.run([PYTHON, "-c", code], check=True, cwd=ROOT)


@dataclass
class Row:
    scenario: str
    server: str
    measured: Measured
    bare: float | None = None
    sdk: float | None = None


class Suite:
    def __init__(self, args: argparse.Namespace, workdir: Path) -> None:
        self.args = args
        self.workdir = workdir
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.nws_port = free_port()
        self.nws = Process([PYTHON, str(HERE / "fake_nws_server.py"), str(self.nws_port)], self.nws_port,
                           workdir / "nws.log")  # fmt: skip
        self.nws_url = f"http://127.0.0.1:{self.nws_port}"

    def wanted(self, scenario: str) -> bool:
        return not self.args.only or any(name in scenario for name in self.args.only)

    def measure(
        self, port: int, request: Request, keys_file: Path, warm_up: int = 2, connections: int | None = None
    ) -> Measured:
        script = wrk_script(self.workdir, request, keys_file)
        wrk(port, script, warm_up, connections or self.args.connections)
        return wrk(port, script, self.args.seconds, connections or self.args.connections)

    def keys_file(self, keys: list[str]) -> Path:
        path = self.workdir / f"keys-{secrets.token_hex(4)}.txt"
        path.write_text("\n".join(keys) + "\n")
        return path

    def skywarden(self, name: str, *extra: str, pin: bool = True) -> tuple[Process, Path]:
        data_dir = self.workdir / name
        data_dir.mkdir(exist_ok=True)
        port = free_port()
        argv = skywarden_argv(port, data_dir, self.nws_url, self.args.loop, *extra)
        process = Process(argv, port, data_dir / "stdout.log", pin=pin)
        wait_for(f"http://127.0.0.1:{port}/api/health")
        return process, data_dir

    def new_key(self, port: int, scopes: list[str] | None = None) -> str:
        req = urllib.request.Request(
            f"http://127.0.0.1:{port}/api/admin/keys",
            data=json.dumps({**BENCH_KEY, "scopes": scopes or BENCH_KEY["scopes"]}).encode(),
            headers={"Content-Type": "application/json", "Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())["key"]

    def run(self) -> None:
        wait_for(self.nws_url + "/points/39.7456,-97.0892")
        try:
            self.single_key_scenarios()
            if self.wanted("keys in rotation"):
                self.many_keys()
            if self.wanted("bogus keys"):
                self.bogus_keys()
            if self.wanted("start-up"):
                self.start_up()
            if self.wanted("gateway"):
                self.gateway()
            if not self.args.no_shared and self.wanted("shared"):
                self.shared_state()
        finally:
            self.nws.stop()

    def rounds(self, runs: dict[str, tuple[int, Request, Path]], connections: int | None = None) -> dict[str, Measured]:
        """Each named run ``--rounds`` times, interleaved (a noisy minute hits all alike); medians."""
        found: dict[str, list[Measured]] = {name: [] for name in runs}
        for _ in range(self.args.rounds):
            for name, (port, request, keys_file) in runs.items():
                found[name].append(self.measure(port, request, keys_file, connections=connections))
        return {name: _median(values) for name, values in found.items()}

    def single_key_scenarios(self) -> None:
        sky, _ = self.skywarden("single")
        bare = sdk = None
        try:
            key = self.new_key(sky.port)
            results = {
                "tools/list": json.loads(send(sky.port, TOOLS_LIST, key))["result"],
                "tools/call": json.loads(send(sky.port, TOOLS_CALL, key))["result"],
                "rest": json.loads(send(sky.port, REST_CALL, key)),
            }
            results_file = self.workdir / "results.json"
            results_file.write_text(json.dumps(results))
            keys_file = self.keys_file([key])
            bare_port, sdk_port = free_port(), free_port()
            bare = Process([PYTHON, str(HERE / "bare_server.py"), str(bare_port), key, str(results_file),
                            self.args.loop], bare_port, self.workdir / "bare.log")  # fmt: skip
            sdk = Process([PYTHON, str(HERE / "sdk_server.py"), str(sdk_port), key, self.nws_url, self.args.loop],
                          sdk_port, self.workdir / "sdk.log")  # fmt: skip
            for process in (bare, sdk):
                self._wait_port(process.port)
            scenarios = [("MCP tools/list", TOOLS_LIST), ("MCP tools/call get_forecast", TOOLS_CALL),
                         (f"MCP tools/call get_forecast, {DISTINCT_POINTS:,} distinct points", TOOLS_CALL_DISTINCT),
                         ("REST get_forecast", REST_CALL)]  # fmt: skip
            for scenario, request in scenarios:
                if not self.wanted(scenario):
                    continue
                runs = {"bare aiohttp": (bare_port, request, keys_file), "Skywarden": (sky.port, request, keys_file)}
                if request.path == "/mcp":
                    runs["official SDK"] = (sdk_port, request, keys_file)
                else:  # REST's bars (docs/performance.md): the MCP door's call on the same server, and the SDK's call
                    runs[SAME_SERVER_CALL] = (sky.port, TOOLS_CALL, keys_file)
                    runs[SDK_CALL] = (sdk_port, TOOLS_CALL, keys_file)
                found = self.rounds(runs)
                bare_m, sky_m, sdk_m = found["bare aiohttp"], found["Skywarden"], found.get("official SDK")
                mcp_call, sdk_call = found.get(SAME_SERVER_CALL), found.get(SDK_CALL)
                self.rows.append(Row(scenario, "bare aiohttp", bare_m))
                if sdk_m is not None:
                    self.rows.append(Row(scenario, "official SDK", sdk_m, bare=sdk_m.rps / bare_m.rps))
                vs_sdk = sky_m.rps / sdk_m.rps if sdk_m else None
                self.rows.append(Row(scenario, "Skywarden", sky_m, bare=sky_m.rps / bare_m.rps, sdk=vs_sdk))
                if mcp_call is not None:
                    self.notes.append(
                        f"{scenario}: {sky_m.rps / mcp_call.rps:.0%} of Skywarden's MCP tools/call get_forecast"
                        f" ({mcp_call.rps:,.0f} req/s) in the same interleaved rounds"
                    )
                if sdk_call is not None:
                    self.notes.append(
                        f"{scenario}: {sky_m.rps / sdk_call.rps:.1f}x the official SDK's tools/call get_forecast"
                        f" ({sdk_call.rps:,.0f} req/s) in the same interleaved rounds"
                    )
        finally:
            for process in (sky, bare, sdk):
                if process is not None:
                    process.stop()

    @staticmethod
    def _wait_port(port: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"nothing listens on {port}")

    def many_keys(self) -> None:
        data_dir = self.workdir / "many"
        data_dir.mkdir()
        keys_path = self.workdir / "many-keys.txt"
        create_keys(50_000, ["data_dir", str(data_dir), "secret", SECRET], keys_path)
        keys = keys_path.read_text().split()
        sky, _ = self.skywarden("many")
        try:
            before = rss_kb(sky.proc.pid)
            files = {count: self.keys_file(keys[:count]) for count in (1, 10_000, 50_000)}
            for count, path in files.items():  # every key verified once: what follows is the steady state
                wrk(sky.port, wrk_script(self.workdir, TOOLS_LIST, path), max(2, count // 1500), self.args.connections)
            grown = rss_kb(sky.proc.pid) - before
            found = self.rounds({str(count): (sky.port, TOOLS_LIST, path) for count, path in files.items()})
            hot = found["1"]
            for count in (10_000, 50_000):
                scenario = f"MCP tools/list, {count:,} keys in rotation"
                self.rows.append(Row(scenario, "Skywarden", found[str(count)]))
                self.notes.append(
                    f"{scenario}: {found[str(count)].rps / hot.rps:.0%} of one hot key on the same server"
                )
            self.notes.append(
                f"RSS with 50,000 keys verified and cached: +{grown / 1024:.1f} MB "
                f"({grown * 1024 / 50_000:.0f} bytes per active key: cache entry, rate-limit counters, allocator slack)"
            )
        finally:
            sky.stop()

    def bogus_keys(self) -> None:
        """RSS growth after 100,000 requests, each with a different well-formed key nobody issued."""
        from skywarden.server.keys import generate_key

        bogus = self.keys_file([generate_key("live") for _ in range(100_000)])
        sky, _ = self.skywarden("bogus")
        try:
            script = wrk_script(self.workdir, TOOLS_LIST, bogus)
            wrk(sky.port, script, 1, 4)  # warm-up: the first allocations are not growth
            before = rss_kb(sky.proc.pid)
            sent = 0
            while sent < 100_000:
                found = wrk(sky.port, script, 5, self.args.connections)
                sent += int(found.rps * 5)
            after = rss_kb(sky.proc.pid)
            self.notes.append(
                f"RSS after ~{sent:,} requests with distinct unknown keys: {before / 1024:.1f} -> "
                f"{after / 1024:.1f} MB (+{(after - before) / 1024:.1f} MB; budget < 10 MB)"
            )
        finally:
            sky.stop()

    def start_up(self) -> None:
        times = []
        for i in range(5):
            port = free_port()
            data_dir = self.workdir / f"start-{i}"
            data_dir.mkdir()
            started = time.monotonic()
            process = Process(skywarden_argv(port, data_dir, self.nws_url, self.args.loop), port, data_dir / "out.log")
            try:
                wait_for(f"http://127.0.0.1:{port}/api/health")
                times.append(time.monotonic() - started)
            finally:
                process.stop()
        self.notes.append(
            f"start-up, `skywarden serve` to the first 200 on /api/health: median {statistics.median(times):.2f} s "
            f"(of {', '.join(f'{t:.2f}' for t in times)})"
        )

    def gateway(self) -> None:
        """The official SDK server (sdk_server.py) as an upstream of Skywarden's gateway, over
        Streamable HTTP and over stdio: tools/call get_forecast straight to the SDK server, through
        Skywarden to each, and through a gateway built on the SDK (sdk_gateway.py) to each. Latency
        at one connection (what a gateway adds to a call), throughput at --connections. Every
        process but wrk on core 0; in the runs "upstream on core 1", the stdio upstream on wrk's
        core instead (as a host with more cores would run it: the gateway's CPU a call without
        the upstream's interpreter on its core). Last, both gateways in front of a fast stdio
        upstream (fast_upstream.py, answering with the SDK server's own result at once): what
        each gateway can pass, with the upstream's cost nearly gone."""
        upstream_key = secrets.token_urlsafe(24)
        port = free_port()
        upstream = Process([PYTHON, str(HERE / "sdk_server.py"), str(port), upstream_key, self.nws_url,
                            self.args.loop], port, self.workdir / "upstream.log")  # fmt: skip
        gateway_key = secrets.token_urlsafe(24)
        sdk_gateways: dict[str, Process] = {}
        sky = apart = fast = proxy = None
        try:
            self._wait_port(port)
            for name, where, *core in (
                ("http", f"http://127.0.0.1:{port}/mcp#{upstream_key}"),
                ("stdio", f"stdio:{self.nws_url}"),
                ("apart", f"stdio:{self.nws_url}", "1"),
            ):
                gateway_port = free_port()
                sdk_gateways[name] = Process([PYTHON, str(HERE / "sdk_gateway.py"), str(gateway_port), gateway_key,
                                              where, self.args.loop, *core], gateway_port,
                                             self.workdir / f"sdk-gateway-{name}.log")  # fmt: skip
                self._wait_port(gateway_port)
            proxy_port = free_port()
            proxy = Process([PYTHON, str(HERE / "bare_proxy.py"), str(proxy_port), gateway_key,
                             f"http://127.0.0.1:{port}/mcp", upstream_key, "sdk__", self.args.loop], proxy_port,
                            self.workdir / "bare-proxy.log")  # fmt: skip
            self._wait_port(proxy_port)
            upstreams = {
                "sdk": {"url": f"http://127.0.0.1:{port}/mcp", "allow_private": True,
                        "headers": {"X-API-Key": upstream_key}},
                "stdio": stdio_upstream(self.nws_url),
            }  # fmt: skip
            plain, _ = self.skywarden("gateway-none")
            idle_plain = rss_kb(plain.proc.pid)
            plain.stop()
            # one key and --connections calls at once: as many concurrency slots, so none is refused
            slots = str(self.args.connections * 2)
            sky, _ = self.skywarden("gateway", "--upstreams", json.dumps(upstreams), "--max-concurrent-calls", slots)
            idle_gateway = rss_kb(sky.proc.pid)
            guards = [int(p) for p in subprocess.run(["pgrep", "-P", str(sky.proc.pid)], capture_output=True,
                                                      text=True).stdout.split()]  # fmt: skip
            apart, _ = self.skywarden("gateway-apart", "--upstreams",
                                      json.dumps({"stdio": stdio_upstream(self.nws_url, core=1)}),
                                      "--max-concurrent-calls", slots)  # fmt: skip
            key = self.new_key(sky.port, scopes=["upstream:sdk", "upstream:stdio"])
            apart_key = self.new_key(apart.port, scopes=["upstream:stdio"])
            apart_keys = self.keys_file([apart_key])
            # the fast upstream answers with the result the SDK server gave through Skywarden
            relayed = json.loads(send(sky.port, gateway_call("stdio"), key))["result"]
            result_file = self.workdir / "fast-result.json"
            result_file.write_text(json.dumps(relayed))
            fast, _ = self.skywarden("gateway-fast", "--upstreams", json.dumps({"fast": fast_upstream(result_file)}),
                                     "--max-concurrent-calls", slots)  # fmt: skip
            fast_keys = self.keys_file([self.new_key(fast.port, scopes=["upstream:fast"])])
            fast_port = free_port()
            sdk_gateways["fast"] = Process([PYTHON, str(HERE / "sdk_gateway.py"), str(fast_port), gateway_key,
                                            f"fast:{result_file}", self.args.loop, "0"], fast_port,
                                           self.workdir / "sdk-gateway-fast.log")  # fmt: skip
            self._wait_port(fast_port)
            sky_keys, upstream_keys = self.keys_file([key]), self.keys_file([upstream_key])
            gateway_keys = self.keys_file([gateway_key])

            for port_of, name, its_key in ((sky.port, "sdk", key), (sky.port, "stdio", key),
                                           (apart.port, "stdio", apart_key)):  # fmt: skip
                answer = json.loads(send(port_of, gateway_call(name), its_key))
                assert answer["result"]["isError"] is False, answer
            for sdk_gateway in sdk_gateways.values():
                answer = json.loads(send(sdk_gateway.port, TOOLS_CALL, gateway_key))
                assert not answer["result"].get("isError"), answer
            answer = json.loads(send(proxy_port, gateway_call("sdk"), gateway_key))
            assert not answer["result"].get("isError"), answer
            runs = {
                "official SDK server, direct": (port, TOOLS_CALL, upstream_keys),
                BARE_PROXY: (proxy_port, gateway_call("sdk"), gateway_keys),
                "Skywarden -> SDK server over Streamable HTTP": (sky.port, gateway_call("sdk"), sky_keys),
                "SDK gateway -> SDK server over Streamable HTTP": (sdk_gateways["http"].port, TOOLS_CALL, gateway_keys),
                "Skywarden -> SDK server over stdio": (sky.port, gateway_call("stdio"), sky_keys),
                "SDK gateway -> SDK server over stdio": (sdk_gateways["stdio"].port, TOOLS_CALL, gateway_keys),
                f"Skywarden -> SDK server over {APART}": (apart.port, gateway_call("stdio"), apart_keys),
                f"SDK gateway -> SDK server over {APART}": (sdk_gateways["apart"].port, TOOLS_CALL, gateway_keys),
                f"Skywarden -> {FAST}": (fast.port, gateway_call("fast"), fast_keys),
                f"SDK gateway -> {FAST}": (sdk_gateways["fast"].port, TOOLS_CALL, gateway_keys),
            }
            for port_of, request, keys_file in list(runs.values())[-2:]:
                answer = json.loads(send(port_of, request, keys_file.read_text().split()[0]))
                assert not answer["result"].get("isError"), answer
            latency = self.rounds(runs, connections=1)
            gateways = {g.port: g.proc.pid for g in (sky, apart, fast, proxy, *sdk_gateways.values())}  # each run's own
            pids = {name: gateways[port] for name, (port, _, _) in runs.items() if port in gateways}
            load, cpu = self.rounds_with_cpu(runs, pids)
            direct = "official SDK server, direct"
            for name in runs:
                self.rows.append(Row("gateway tools/call get_forecast, 1 connection", name, latency[name]))
                self.rows.append(
                    Row(
                        f"gateway tools/call get_forecast, {self.args.connections} connections",
                        name,
                        load[name],
                        sdk=load[name].rps / load[direct].rps,
                    )
                )
            for name in list(runs)[1:-2]:  # the fast upstream's rows are not the SDK server's
                self.notes.append(
                    f"{name}: p50 {latency[name].p50_ms / latency[direct].p50_ms:.2f}x the SDK server's own at one "
                    f"connection ({latency[direct].p50_ms:.2f} ms), adding "
                    f"{(latency[name].p50_ms - latency[direct].p50_ms) / latency[direct].p50_ms:.2f}x it; "
                    f"{load[name].rps / load[direct].rps:.2f}x its req/s at {self.args.connections} connections"
                )
            for transport, behind in (
                *((f"over {t}", f"SDK server over {t}") for t in ("Streamable HTTP", "stdio", APART)),
                (f"to {FAST}", FAST),
            ):
                ours, theirs = f"Skywarden -> {behind}", f"SDK gateway -> {behind}"
                rps, p50 = load[ours].rps / load[theirs].rps, latency[ours].p50_ms / latency[theirs].p50_ms
                self.notes.append(
                    f"gateway {transport}: Skywarden {rps:.2f}x the SDK gateway's req/s at "
                    f"{self.args.connections} connections, p50 {p50:.2f}x its own at one connection; the gateway "
                    f"process's own CPU a call (the upstream's not counted): Skywarden {cpu[ours]:.0f} µs, the SDK "
                    f"gateway {cpu[theirs]:.0f} µs, so {cpu[theirs] / cpu[ours]:.2f}x the calls a core"
                )
            ours, floor = latency["Skywarden -> SDK server over Streamable HTTP"], latency[BARE_PROXY]
            self.notes.append(
                f"gateway over Streamable HTTP, one connection: the bare aiohttp proxy adds "
                f"{floor.p50_ms - latency[direct].p50_ms:.2f} ms to the SDK server's p50, Skywarden "
                f"{ours.p50_ms - latency[direct].p50_ms:.2f} ms; the proxy's own CPU a call {cpu[BARE_PROXY]:.0f} µs"
            )
            self.notes.append(
                f"gateway memory: Skywarden idle with both upstreams connected {idle_gateway / 1024:.1f} MB, without "
                f"upstreams {idle_plain / 1024:.1f} MB (+{(idle_gateway - idle_plain) / 1024:.1f} MB: the MCP SDK "
                f"and two connections); the stdio upstream's guard {sum(map(rss_kb, guards)) / 1024:.1f} MB"
            )
        finally:
            upstream.stop()
            for sdk_gateway in sdk_gateways.values():
                sdk_gateway.stop()
            for gateway in (sky, apart, fast, proxy):
                if gateway is not None:
                    gateway.stop()

    def rounds_with_cpu(
        self, runs: dict[str, tuple[int, Request, Path]], pids: dict[str, int]
    ) -> tuple[dict[str, Measured], dict[str, float]]:
        """``rounds`` at --connections, with the CPU a call costs the process of ``pids[name]``
        (µs, from its utime + stime over the measured seconds; its children not counted)."""
        found: dict[str, list[Measured]] = {name: [] for name in runs}
        spent: dict[str, list[float]] = {name: [] for name in pids}
        for _ in range(self.args.rounds):
            for name, (port, request, keys_file) in runs.items():
                script = wrk_script(self.workdir, request, keys_file)
                wrk(port, script, 2, self.args.connections)
                before = cpu_seconds(pids[name]) if name in pids else 0.0
                measured = wrk(port, script, self.args.seconds, self.args.connections)
                found[name].append(measured)
                if name in pids:
                    calls = measured.rps * self.args.seconds
                    spent[name].append((cpu_seconds(pids[name]) - before) / calls * 1e6)
        return (
            {name: _median(values) for name, values in found.items()},
            {name: statistics.median(values) for name, values in spent.items()},
        )

    def shared_state(self) -> None:
        """The single-key table's Skywarden rows (tools/list, the hot tools/call, REST) on four
        deployments: one process on SQLite beside PostgreSQL + Redis and --workers 2, interleaved.
        Workers are not pinned (they are two processes on a two-core machine, sharing it with wrk)."""
        database = "skywarden_bench_" + secrets.token_hex(4)
        prefix = "skywarden-bench-" + secrets.token_hex(4)
        asyncio.run(_database("create", database))
        servers: dict[str, Process] = {}
        try:
            url = f"postgresql://postgres@127.0.0.1:5432/{database}"
            shared = ["--database-url", url, "--redis-url", REDIS_URL, "--redis-key-prefix", prefix]
            deployments = {
                "one process, SQLite": [],
                "one process, PostgreSQL + Redis": shared,
                "--workers 2, SQLite": ["--workers", "2"],
                "--workers 2, PostgreSQL + Redis": [*shared, "--workers", "2"],
            }
            keys = {}
            for number, (label, extra) in enumerate(deployments.items()):
                servers[label], _ = self.skywarden(f"shared-{number}", *extra, pin="--workers" not in extra)
                keys[label] = self.keys_file([self.new_key(servers[label].port)])
            for scenario, request in SHARED_SCENARIOS:
                found = self.rounds({label: (servers[label].port, request, keys[label]) for label in deployments})
                base = found["one process, SQLite"]
                for label, measured in found.items():
                    self.rows.append(Row(f"{scenario}, {label}", "Skywarden", measured))
                    if label != "one process, SQLite":
                        self.notes.append(
                            f"{scenario}, {label}: {measured.rps / base.rps:.0%} of one process on SQLite"
                        )
        finally:
            for process in servers.values():
                process.stop()
            asyncio.run(_database("drop", database))
            asyncio.run(_forget_redis(prefix))

    def print(self) -> None:
        print(f"\nevent loop: {self.args.loop}; {self.args.connections} connections, {self.args.seconds} s per run")
        print("| scenario | server | req/s | p50 ms | p99 ms | vs bare | vs SDK |")
        print("|---|---|---|---|---|---|---|")
        bare_p99 = {r.scenario: r.measured.p99_ms for r in self.rows if r.server == "bare aiohttp"}
        for r in self.rows:
            m = r.measured
            vs_bare = f"{r.bare:.0%}" if r.bare is not None else ""
            if r.bare is not None and r.scenario in bare_p99:
                vs_bare += f" (p99 x{m.p99_ms / bare_p99[r.scenario]:.2f})"
            vs_sdk = f"{r.sdk:.2f}x" if r.sdk is not None else ""
            bad = f" ({m.non_2xx} non-2xx!)" if m.non_2xx else ""
            cells = [r.scenario, r.server + bad, f"{m.rps:,.0f}", f"{m.p50_ms:.2f}", f"{m.p99_ms:.2f}", vs_bare, vs_sdk]
            print("| " + " | ".join(cells) + " |")
        for note in self.notes:
            print(f"- {note}")


async def _database(action: str, name: str) -> None:
    import asyncpg

    admin = await asyncpg.connect(ADMIN_DSN)
    try:
        sql = f'CREATE DATABASE "{name}"' if action == "create" else f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        await admin.execute(sql)
    finally:
        await admin.close()


async def _forget_redis(prefix: str) -> None:
    import redis.asyncio as redis

    client = redis.from_url(REDIS_URL)
    keys = [k async for k in client.scan_iter(match=prefix + "*")]
    if keys:
        await client.delete(*keys)
    await client.aclose()


def _median(runs: list[Measured]) -> Measured:
    return Measured(
        statistics.median(m.rps for m in runs),
        statistics.median(m.p50_ms for m in runs),
        statistics.median(m.p99_ms for m in runs),
        sum(m.non_2xx for m in runs),
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs per server and scenario; medians")
    parser.add_argument("--only", nargs="*", help="run only scenarios whose name contains one of these")
    parser.add_argument("--no-shared", action="store_true", help="skip the PostgreSQL + Redis and --workers rows")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        suite = Suite(args, Path(tmp))
        suite.run()
        suite.print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
