"""Durability across ``kill -9`` and a bounded soak: the evidence the abuse-resistance work keeps in CI.

- Durability: a burst of key creates, rotations and revocations through the admin API, the
  server killed with SIGKILL in the middle of it, restarted on the same data: every key the
  client was told exists works, every revocation that answered success holds.
- Soak: concurrent mixed traffic (REST and MCP, valid and invalid keys, sessions opened and
  ended) for a bounded number of rounds: zero 5xx, and the server's memory and open file
  descriptors stay flat within a stated margin.
"""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest

from tests.support.admin import ADMIN_TOKEN
from tests.support.logs import SECRETS
from tests.support.mcp_helpers import ACCEPT_BOTH, modern_headers, modern_rpc
from tests.support.server_process import ServerProcess, start_server

pytestmark = pytest.mark.slow

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def _env(data_dir: Path, nws: str, port: int | None = None) -> dict[str, str]:
    env = {
        "SKYWARDEN_DATA_DIR": str(data_dir),
        "SKYWARDEN_ADMIN_TOKEN": ADMIN_TOKEN,
        "SKYWARDEN_WEATHER_BASE_URL": nws,
        "SKYWARDEN_RATE_LIMIT": "",
        "SKYWARDEN_AUTH_FAILURE_LIMIT": "",
        "SKYWARDEN_UNAUTHENTICATED_LIMIT": "",
    }
    if port is not None:
        env["SKYWARDEN_PORT"] = str(port)
    return env


@dataclass
class Known:
    """What the client was told about one key."""

    key: str
    revoked: bool = False
    in_doubt: bool = False  # an operation was sent and its answer never came


@dataclass
class Ledger:
    keys: dict[str, Known] = field(default_factory=dict)
    acknowledged: int = 0


async def _one_operation(http: aiohttp.ClientSession, url: str, ledger: Ledger, rng: random.Random) -> None:
    live = [kid for kid, k in ledger.keys.items() if not k.revoked and not k.in_doubt]
    action = rng.choice(["create", "create", "rotate", "revoke"]) if live else "create"
    if action == "create":
        async with http.post(url + "/api/admin/keys", json={"name": "burst"}, headers=ADMIN) as resp:
            body = await resp.json()
            assert resp.status == 201
            SECRETS.add(body["key"])
            ledger.keys[body["id"]] = Known(body["key"])
    else:
        key_id = rng.choice(live)
        ledger.keys[key_id].in_doubt = True
        if action == "rotate":
            path, method, payload = f"/api/admin/keys/{key_id}/rotate", "POST", {"grace_seconds": 0}
        else:
            path, method, payload = f"/api/admin/keys/{key_id}", "DELETE", {"reason": "burst"}
        async with http.request(method, url + path, json=payload, headers=ADMIN) as resp:
            assert resp.status in (200, 204), await resp.text()
            if action == "rotate":
                body = await resp.json()
                SECRETS.add(body["key"])
                ledger.keys[key_id].key = body["key"]
            else:
                ledger.keys[key_id].revoked = True
        ledger.keys[key_id].in_doubt = False
    ledger.acknowledged += 1


async def _burst(server: ServerProcess, ledger: Ledger, kill_after: int, rng: random.Random) -> None:
    """Four workers keep operations in flight; the server is killed right after the
    ``kill_after``-th acknowledged one, whatever else is still on the wire."""
    killed = asyncio.Event()

    async def worker(http: aiohttp.ClientSession) -> None:
        while not killed.is_set():
            try:
                await _one_operation(http, server.url, ledger, rng)
            except (TimeoutError, aiohttp.ClientError):
                return
            if ledger.acknowledged >= kill_after and not killed.is_set():
                server.proc.kill()  # SIGKILL: no shutdown, no flush
                killed.set()

    async with aiohttp.ClientSession() as http:
        await asyncio.gather(*(worker(http) for _ in range(4)))


async def _works(http: aiohttp.ClientSession, url: str, key: str) -> int:
    async with http.get(url + "/api/mcp/tools", headers={"X-API-Key": key}) as resp:
        return resp.status


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_acknowledged_key_changes_survive_kill_9(tmp_path, fake_nws, seed):
    rng = random.Random(seed)
    ledger = Ledger()
    server = await start_server(_env(tmp_path, fake_nws.url))
    await _burst(server, ledger, kill_after=rng.randint(20, 60), rng=rng)
    await server.proc.wait()
    assert server.proc.returncode == -9

    server = await start_server(_env(tmp_path, fake_nws.url))
    try:
        async with aiohttp.ClientSession() as http:
            checked = 0
            for known in ledger.keys.values():
                if known.in_doubt:
                    continue
                status = await _works(http, server.url, known.key)
                assert status == (401 if known.revoked else 200), known
                checked += 1
        assert checked >= 10  # enough acknowledged keys to mean something
    finally:
        await server.stop()


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _fds(pid: int) -> int:
    return len(list(Path(f"/proc/{pid}/fd").iterdir()))


SOAK_ROUNDS = 12
SOAK_REQUESTS_PER_ROUND = 400
RSS_MARGIN_KB = 15 * 1024
FD_MARGIN = 12


async def test_soak_mixed_traffic_has_no_5xx_and_flat_memory_and_descriptors(tmp_path, fake_nws):
    server = await start_server(_env(tmp_path, fake_nws.url))
    statuses: dict[int, int] = {}
    try:
        key = await server.create_key(ADMIN_TOKEN, name="soak")
        SECRETS.add(key)
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=32)) as http:
            rng = random.Random(7)

            async def one(i: int) -> None:
                kind = i % 6
                if kind == 0:
                    body = {"state": rng.choice(["KS", "TX", "zz"])}
                    resp = await http.post(
                        server.url + "/api/mcp/tools/get_alerts", json=body, headers={"X-API-Key": key}
                    )
                elif kind == 1:
                    message = modern_rpc(
                        "tools/call",
                        {"name": "get_forecast", "arguments": {"latitude": 39.7456, "longitude": -97.0892}},
                    )
                    resp = await http.post(
                        server.url + "/mcp", json=message, headers={**modern_headers(message), "X-API-Key": key}
                    )
                elif kind == 2:
                    resp = await http.get(server.url + "/api/mcp/tools", headers={"X-API-Key": "skw_live_" + "B" * 50})
                elif kind == 3:
                    init = {
                        "jsonrpc": "2.0",
                        "id": 1,
                        "method": "initialize",
                        "params": {"protocolVersion": "2025-11-25", "capabilities": {"sampling": {}}},
                    }
                    resp = await http.post(
                        server.url + "/mcp", json=init, headers={"X-API-Key": key, "Accept": ACCEPT_BOTH}
                    )
                    session = resp.headers.get("Mcp-Session-Id")
                    statuses[resp.status] = statuses.get(resp.status, 0) + 1
                    resp.release()
                    resp = await http.delete(
                        server.url + "/mcp",
                        headers={
                            "X-API-Key": key,
                            "Mcp-Session-Id": session or "x",
                            "MCP-Protocol-Version": "2025-11-25",
                        },
                    )
                elif kind == 4:
                    resp = await http.post(
                        server.url + "/mcp",
                        data=b"{nope",
                        headers={"X-API-Key": key, "Content-Type": "application/json"},
                    )
                else:
                    resp = await http.get(server.url + "/api/health")
                statuses[resp.status] = statuses.get(resp.status, 0) + 1
                resp.release()

            async def round_(r: int) -> None:
                await asyncio.gather(*(one(r * SOAK_REQUESTS_PER_ROUND + i) for i in range(SOAK_REQUESTS_PER_ROUND)))

            await round_(0)  # warm-up: caches, pools and allocator arenas fill
            await round_(1)
            rss_start, fds_start = _rss_kb(server.proc.pid), _fds(server.proc.pid)
            for r in range(2, SOAK_ROUNDS):
                await round_(r)
            rss_end, fds_end = _rss_kb(server.proc.pid), _fds(server.proc.pid)
    finally:
        await server.stop()
    assert not [s for s in statuses if s >= 500], statuses
    assert sum(statuses.values()) >= SOAK_ROUNDS * SOAK_REQUESTS_PER_ROUND
    assert rss_end - rss_start < RSS_MARGIN_KB, (rss_start, rss_end)
    assert fds_end - fds_start < FD_MARGIN, (fds_start, fds_end)
