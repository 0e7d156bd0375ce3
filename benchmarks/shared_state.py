"""Benchmark: authenticated MCP tools/list (2026-07-28) on the shared-state deployment
(PostgreSQL key store + Redis counters, sessions and broadcast) versus the embedded one
(SQLite, in-process state), one after the other in one run. Needs wrk, PostgreSQL on
127.0.0.1:5432 (trust) and Redis on 127.0.0.1:6379, as the test suite does.

Run from the repository root with the project installed:
    python benchmarks/shared_state.py [--seconds 10] [--connections 32]

The aim (issue "Scale-out"): PostgreSQL + Redis at >= 80% of the SQLite req/s. Verified keys
are cached on both, so the difference is the rate-limit charge: one Redis script call per
request against an in-process counter. Never run by the test suite.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from mcp_tools_list import free_port, pinned, wait_listening, wrk

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"
SECRET = "benchmark-server-secret-0123456789abcdefgh"


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


def _skywarden(*args: str) -> list[str]:
    return [sys.executable, "-m", "skywarden.server.cli", *args]


def measure(name: str, store: list[str], workdir: Path, seconds: int, connections: int) -> tuple[float, float]:
    created = subprocess.run(
        _skywarden("keys", "create", "--name", "bench", "--json", *store), capture_output=True, text=True, check=True
    )
    key = json.loads(created.stdout)["key"]
    port = free_port()
    serve = _skywarden(
        "serve", "--port", str(port), "--rate-limit", "1000000000/minute",
        "--log-file", str(workdir / f"{name}.log"), *store,
    )  # fmt: skip
    proc = subprocess.Popen(pinned(serve), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(port)
        wrk(port, key, 2, connections, workdir)  # warm-up
        return wrk(port, key, seconds, connections, workdir)
    finally:
        proc.terminate()
        proc.wait(30)


def _medians(runs: list[tuple[float, float]]) -> tuple[float, float]:
    return statistics.median(r for r, _ in runs), statistics.median(p for _, p in runs)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="each deployment this often, alternating; medians")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        print("wrk is needed: apt-get install wrk", file=sys.stderr)
        return 2
    database = "skywarden_bench_" + secrets.token_hex(4)
    prefix = "skywarden-bench-" + secrets.token_hex(4)
    asyncio.run(_database("create", database))
    try:
        with tempfile.TemporaryDirectory() as tmp:
            workdir = Path(tmp)
            (workdir / "secret").write_text(SECRET)
            (workdir / "admin").write_text("a" * 40)
            common = ["--secret-file", str(workdir / "secret"), "--admin-token-file", str(workdir / "admin")]
            deployments = {
                "SQLite, in-process": ["--data-dir", str(workdir / "sqlite"), *common],
                "PostgreSQL + Redis": [
                    "--data-dir", str(workdir / "shared"), *common,
                    "--database-url", f"postgresql://postgres@127.0.0.1:5432/{database}",
                    "--redis-url", REDIS_URL, "--redis-key-prefix", prefix,
                ],
            }  # fmt: skip
            runs: dict[str, list[tuple[float, float]]] = {name: [] for name in deployments}
            for round_ in range(args.rounds):  # alternate, so a noisy minute hurts both alike
                for name, store in deployments.items():
                    label = f"{name.split()[0].strip(',').lower()}-{round_}"
                    runs[name].append(measure(label, store, workdir, args.seconds, args.connections))
            results = {name: _medians(found) for name, found in runs.items()}
    finally:
        asyncio.run(_database("drop", database))
        asyncio.run(_forget_redis(prefix))
    for name, (rps, p99) in results.items():
        each = ", ".join(f"{r:.0f}" for r, _ in runs[name])
        print(f"{name:<20} {rps:>10.0f} req/s   p99 {p99:>7.2f} ms   (median of {each})")
    (sqlite_rps, sqlite_p99), (shared_rps, shared_p99) = results.values()
    share, p99_ratio = shared_rps / sqlite_rps, shared_p99 / sqlite_p99
    print(f"shared / embedded: {share:.0%} of the req/s (aim >= 80%), p99 x{p99_ratio:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
