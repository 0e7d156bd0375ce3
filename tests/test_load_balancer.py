"""A real load balancer (HAProxy, then nginx, from Debian's packages) in front of three
Skywarden instances sharing PostgreSQL and Redis, configured with the example files in
examples/load-balancer/ exactly as docs/deployment.md tells an operator to: TLS ends at the
balancer, instances run with ``require_https``, ``trusted_proxies`` and ``public_url``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import string
from pathlib import Path

import aiohttp
import pytest
import trustme

from tests.conftest import ADMIN_TOKEN
from tests.deployment import Deployment, shared_state_checks
from tests.mcp_helpers import rpc
from tests.server_process import ServerProcess, free_port, start_server
from tests.services import REQUIRED, fresh_postgres_database, redis_prefix

pytestmark = pytest.mark.slow  # subprocesses: run by CI and ./scripts/test, not -m 'not slow'

EXAMPLES = Path(__file__).resolve().parent.parent / "examples" / "load-balancer"
SECRET = "balanced-server-secret-0123456789abcdefghij"
INSTANCES = ("instance-1", "instance-2", "instance-3")


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = f"{name} is not installed (apt-get install {'haproxy' if name == 'haproxy' else 'nginx-light'})"
        if REQUIRED:
            pytest.fail(message + "; SKYWARDEN_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    return found


def render(template: str, values: dict[str, str]) -> str:
    """What ``envsubst '${NAME} ...'`` does with the names given: the balancer's own $variables stay."""
    return string.Template(template).safe_substitute(values)


class Balancer:
    def __init__(self, kind: str, proc: asyncio.subprocess.Process, port: int) -> None:
        self.kind = kind
        self.proc = proc
        self.port = port
        self.lines: list[str] = []
        self._changed = asyncio.Condition()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for line in self.proc.stdout:
            async with self._changed:
                self.lines.append(line.decode(errors="replace").rstrip())
                self._changed.notify_all()

    async def wait_for_line(self, fragment: str, after: int = 0, timeout: float = 30) -> None:
        async def seen() -> None:
            async with self._changed:
                await self._changed.wait_for(lambda: any(fragment in line for line in self.lines[after:]))

        await asyncio.wait_for(seen(), timeout)

    async def stop(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.terminate()
        await self.proc.wait()
        await self._reader


async def _start_balancer(
    kind: str, tmp_path: Path, cert: trustme.LeafCert, port: int, instances: list[int]
) -> Balancer:
    run_dir = tmp_path / kind
    run_dir.mkdir()
    pem = run_dir / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    cert.cert_chain_pems[0].write_to_path(str(run_dir / "cert.pem"))
    cert.private_key_pem.write_to_path(str(run_dir / "key.pem"))
    values = {
        "LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "TLS_PEM": str(pem),
        "TLS_CERT": str(run_dir / "cert.pem"),
        "TLS_KEY": str(run_dir / "key.pem"),
        "RUN_DIR": str(run_dir),
        **{f"INSTANCE_{i + 1}": f"127.0.0.1:{p}" for i, p in enumerate(instances)},
    }
    if kind == "haproxy":
        config = run_dir / "haproxy.cfg"
        shutil.copy(EXAMPLES / "haproxy.cfg", config)  # HAProxy reads ${...} from its environment itself
        argv = [_binary("haproxy"), "-db", "-f", str(config)]
        env = values
    else:
        config = run_dir / "nginx.conf"
        config.write_text(render((EXAMPLES / "nginx.conf").read_text(), values))
        argv = [_binary("nginx"), "-p", str(run_dir), "-c", str(config), "-g", "daemon off;"]
        env = {}
    proc = await asyncio.create_subprocess_exec(
        *argv, env={"PATH": "/usr/sbin:/usr/bin:/bin", **env}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    balancer = Balancer(kind, proc, port)
    await _until_it_answers(balancer)
    return balancer


async def _until_it_answers(balancer: Balancer, timeout: float = 15) -> None:
    """A balancer prints nothing when it is ready: wait until its port takes a connection."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        if balancer.proc.returncode is not None:
            raise AssertionError(f"{balancer.kind} exited:\n" + "\n".join(balancer.lines[-20:]))
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", balancer.port)
        except OSError:
            if loop.time() > deadline:
                raise AssertionError(f"{balancer.kind} did not listen:\n" + "\n".join(balancer.lines[-20:])) from None
            await asyncio.sleep(0.05)
            continue
        writer.close()
        await writer.wait_closed()
        return


def _instance_env(name: str, port: int, balancer_port: int, database_url: str, redis_url: str, prefix: str, tmp):
    return {
        "SKYWARDEN_PORT": str(port),
        "SKYWARDEN_INSTANCE_NAME": name,
        "SKYWARDEN_DATA_DIR": str(tmp / name),
        "SKYWARDEN_DATABASE_URL": database_url,
        "SKYWARDEN_REDIS_URL": redis_url,
        "SKYWARDEN_REDIS_KEY_PREFIX": prefix,
        "SKYWARDEN_SECRET_FILE": str(tmp / "secret"),
        "SKYWARDEN_ADMIN_TOKEN_FILE": str(tmp / "admin"),
        "SKYWARDEN_TRUSTED_PROXIES": "127.0.0.1",
        "SKYWARDEN_REQUIRE_HTTPS": "true",
        "SKYWARDEN_PUBLIC_URL": f"https://127.0.0.1:{balancer_port}",
        "SKYWARDEN_RATE_LIMIT": "",
    }


async def _answered_something(server: ServerProcess) -> None:
    while not _requests(server):
        await server.wait_for_next_event("request")


def _requests(server: ServerProcess) -> list[dict]:
    return [e for e in server.lines if e.get("event") == "request" and e.get("path") != "/api/health/ready"]


@pytest.mark.parametrize("kind", ["haproxy", "nginx"])
async def test_instances_behind_a_real_load_balancer_behave_as_one(kind, tmp_path):
    _binary(kind)
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "admin").write_text(ADMIN_TOKEN)
    ports = [free_port() for _ in INSTANCES]
    balancer_port = free_port()
    async with fresh_postgres_database() as database_url, redis_prefix() as (redis_url, prefix):
        envs = [
            _instance_env(name, port, balancer_port, database_url, redis_url, prefix, tmp_path)
            for name, port in zip(INSTANCES, ports, strict=True)
        ]
        servers = [await start_server(env) for env in envs]
        balancer = None
        try:
            balancer = await _start_balancer(kind, tmp_path, cert, balancer_port, ports)
            deployment = Deployment(f"https://127.0.0.1:{balancer_port}", client_ssl)

            await shared_state_checks(deployment)
            for server in servers:  # every instance took its share (lines are written in batches: wait)
                await asyncio.wait_for(_answered_something(server), 15)
            for name, server in zip(INSTANCES, servers, strict=True):  # each names itself in its audit log
                assert {e["instance"] for e in _requests(server)} == {name}

            await _headers_and_client_addresses(deployment, servers)
            await _progress_streams_through(deployment)
            await _session_survives_a_restart(deployment, servers, envs, balancer)
        finally:
            if balancer is not None:
                await balancer.stop()
            for server in servers:
                await server.stop()


async def _headers_and_client_addresses(deployment: Deployment, servers: list[ServerProcess]) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9", "X-Request-ID": "forged-xff-1"}
    status, headers, _ = await deployment.request("GET", "/api/health", forged)
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")  # the balancer vouched for HTTPS
    assert headers["Server"] == "skywarden"  # no balancer version banner
    instance = await _answered_by(servers, "forged-xff-1")
    assert (await servers[instance].wait_for_request("forged-xff-1"))["client_ip"] == "127.0.0.1"
    # Straight to an instance over plain HTTP: the probe gets its 200, anything else goes to public_url.
    async with aiohttp.ClientSession() as http:
        direct = f"http://127.0.0.1:{servers[0].port}"
        async with http.get(direct + "/api/health/ready") as resp:
            assert resp.status == 200
        async with http.get(direct + "/api/mcp/tools", allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == deployment.url + "/api/mcp/tools"


async def _progress_streams_through(deployment: Deployment) -> None:
    key = (await deployment.create_key())["key"]
    session = await deployment.open_session(key)
    message = rpc("tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": "p"}}, id=7)
    headers = {"X-API-Key": key, "Accept": "application/json, text/event-stream", "Mcp-Session-Id": session,
               "MCP-Protocol-Version": "2025-11-25"}  # fmt: skip
    connector = aiohttp.TCPConnector(force_close=True, ssl=deployment.ssl)
    async with aiohttp.ClientSession(connector=connector) as http:
        async with http.post(deployment.url + "/mcp", json=message, headers=headers) as resp:
            assert resp.content_type == "text/event-stream"
            assert "no-transform" in resp.headers["Cache-Control"]
            events = [line for line in (await resp.text()).splitlines() if line.startswith("data: ")]
    assert len(events) == 4 and '"id":7' in events[-1]


async def _session_survives_a_restart(
    deployment: Deployment, servers: list[ServerProcess], envs: list[dict], balancer: Balancer
) -> None:
    key = (await deployment.create_key())["key"]
    session = await deployment.open_session(key, request_id="open-then-restart")
    opener = await _answered_by(servers, "open-then-restart")
    mark = len(balancer.lines)
    await servers[opener].stop()
    if balancer.kind == "haproxy":  # its health check notices; requests meanwhile go elsewhere
        await balancer.wait_for_line(f"instance{opener + 1} is DOWN", after=mark)
    for _ in range(3):
        status, _, body = await deployment.mcp(key, rpc("tools/list"), session)
        assert status == 200 and "tools" in body["result"], body
    mark = len(balancer.lines)
    servers[opener] = await start_server(envs[opener])
    if balancer.kind == "haproxy":
        await balancer.wait_for_line(f"instance{opener + 1} is UP", after=mark)
    answered: list[int] = []
    # Every request goes through; with HAProxy, the restarted instance takes its turn within a
    # few rounds (a turn may first go elsewhere while the balancer drops connections it held
    # to the old process).
    while len(answered) < 6 or (balancer.kind == "haproxy" and opener not in answered and len(answered) < 15):
        request_id = f"after-restart-{len(answered)}"
        status, _, body = await deployment.mcp(key, rpc("tools/list"), session, request_id=request_id)
        assert status == 200 and "tools" in body["result"], body
        answered.append(await _answered_by(servers, request_id))
    if balancer.kind == "haproxy":
        assert opener in answered


async def _answered_by(servers: list[ServerProcess], request_id: str) -> int:
    """Which instance answered the request with this id (the one whose audit log has it)."""
    waits = {asyncio.ensure_future(s.wait_for_request(request_id)): i for i, s in enumerate(servers)}
    done, pending = await asyncio.wait(waits, timeout=10, return_when=asyncio.FIRST_COMPLETED)
    for task in pending:
        task.cancel()
    assert done, f"no instance logged request {request_id}"
    return waits[done.pop()]
