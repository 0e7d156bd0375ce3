"""A real load balancer (HAProxy, then nginx, from Debian's packages) in front of Skywarden
instances sharing PostgreSQL and Redis, configured as docs/deployment.md tells an operator to:
the configuration written by ``examples/load-balancer/render.py`` from the values the docs
export, TLS ending at the balancer, and each instance run with the settings the docs' table
lists (read from the docs, so the two cannot drift apart)."""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import re
import shutil
import ssl
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
import trustme
from hypothesis import given
from hypothesis import strategies as st

from tests.support.admin import ADMIN_TOKEN
from tests.support.deployment import Deployment, shared_state_checks
from tests.support.mcp_helpers import rpc
from tests.support.server_process import ServerProcess, free_port, start_server, which_logged
from tests.support.services import REQUIRED, fresh_postgres_database, redis_prefix

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "load-balancer"
DOCS = ROOT / "docs" / "deployment.md"
KINDS = ("haproxy", "nginx")
SECRET = "balanced-server-secret-0123456789abcdefghij"
PUBLIC_HOST = "mcp.skywarden.test"  # the deployment's public name; only the test's own resolver knows it
READY = "/api/health/ready"


def _load_render():
    spec = importlib.util.spec_from_file_location("load_balancer_render", EXAMPLES / "render.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


render = _load_render()


# What docs/deployment.md says, read from it.


def _docs_section() -> str:
    text = DOCS.read_text()
    start = text.index("## Behind a load balancer\n")
    return text[start : text.index("\n## ", start + 1)]


def documented_instance_settings() -> list[str]:
    """The settings in the table of what each instance behind a balancer runs with."""
    table = _docs_section().split("| setting | value | why |", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^\| `([a-z_]+)` \|", table, flags=re.MULTILINE)


def documented_commands(kind: str) -> tuple[list[str], str]:
    """(the names the docs export for ``render.py <kind>``, the docs' render command line)."""
    for block in re.findall(r"```sh\n(.*?)```", _docs_section(), flags=re.DOTALL):
        lines = [line.strip() for line in block.splitlines()]
        command = next((line for line in lines if f"render.py {kind} " in line), None)
        if command is not None:
            exports = [line for line in lines if line.startswith("export ")]
            return [word.split("=", 1)[0] for line in exports for word in line.split()[1:]], command
    raise AssertionError(f"docs/deployment.md shows no render.py {kind} command")


def documented_start(kind: str) -> tuple[str, list[str]]:
    """(the file the docs render ``kind``'s configuration into, the commands that follow the render line)."""
    for block in re.findall(r"```sh\n(.*?)```", _docs_section(), flags=re.DOTALL):
        lines = [line.strip() for line in block.splitlines() if line.strip()]
        at = next((i for i, line in enumerate(lines) if f"render.py {kind} " in line), None)
        if at is not None:
            return lines[at].rsplit("> ", 1)[1].strip(), lines[at + 1 :]
    raise AssertionError(f"docs/deployment.md shows no render.py {kind} command")


def documented_check(kind: str, config: Path) -> list[str]:
    """The docs' command that checks ``kind``'s configuration, pointed at ``config``."""
    target, commands = documented_start(kind)
    check = next(c for c in commands if c.startswith(("nginx -t ", "haproxy -c ")))
    return [_binary(kind), *check.replace(target, str(config)).split()[1:]]


def test_the_documented_balancer_commands_are_complete():
    """Rendered into a file of its own, made ready (nginx's RUN_DIR), checked, then started, each
    command naming that file."""
    for kind, flag, check in (("haproxy", "-f", "-c"), ("nginx", "-c", "-t")):
        target, commands = documented_start(kind)
        distribution_own = ("/etc/nginx/nginx.conf", "/etc/haproxy/haproxy.cfg")
        assert target.startswith(f"/etc/{kind}/") and target not in distribution_own
        runs = [c for c in commands if c.startswith(f"{kind} ")]
        assert [c.split()[1] for c in runs] == [check, flag] and all(f"{flag} {target}" in c for c in runs), commands
        if kind == "nginx":
            assert commands[0] == 'mkdir -p "$RUN_DIR"'  # before nginx reads the pid file's place
    prose = _docs_section()
    assert "nginx -s reload -c /etc/nginx/skywarden.conf" in prose and "nginx -s quit -c" in prose


def instance_settings(name: str, public_url: str) -> dict[str, str]:
    """The value of each documented setting, for this test's deployment (balancer and instances on loopback)."""
    values = {
        "host": "127.0.0.1",
        "allowed_hosts": PUBLIC_HOST,
        "trusted_proxies": "127.0.0.1",
        "require_https": "true",
        "public_url": public_url,
        "instance_name": name,
    }
    return {f"SKYWARDEN_{setting.upper()}": values[setting] for setting in documented_instance_settings()}


def test_the_test_sets_exactly_the_documented_instance_settings():
    assert set(instance_settings("api-1", "https://x")) == {
        "SKYWARDEN_HOST", "SKYWARDEN_ALLOWED_HOSTS", "SKYWARDEN_TRUSTED_PROXIES", "SKYWARDEN_REQUIRE_HTTPS",
        "SKYWARDEN_PUBLIC_URL", "SKYWARDEN_INSTANCE_NAME",
    }  # fmt: skip
    for kind in KINDS:
        names, command = documented_commands(kind)
        assert command.startswith(f"python3 examples/load-balancer/render.py {kind} ")
        template = (EXAMPLES / render.TEMPLATES[kind]).read_text()
        needed = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)\}", template)) - {"INSTANCE", "INSTANCE_NUMBER"}
        assert set(names) == needed, f"the docs export {names} for {kind}; its template needs {sorted(needed)}"


# render.py on its own: any number of instances, and a clear refusal of what would not work.

_ENVIRON = {
    "PUBLIC_HOST": "mcp.example.com",
    "LISTEN_ADDRESS": "0.0.0.0:443",
    "TLS_PEM": "/etc/haproxy/mcp.pem",
    "RUN_DIR": "/var/lib/skywarden-nginx",
    "TLS_CERT": "/etc/nginx/mcp.crt",
    "TLS_KEY": "/etc/nginx/mcp.key",
}
_label = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=8)
_addresses = st.lists(
    st.one_of(
        st.tuples(*[st.integers(0, 255)] * 4).map(lambda parts: ".".join(map(str, parts))),
        st.lists(_label, min_size=1, max_size=3).map(".".join),
        st.integers(1, 0xFFFF).map(lambda n: f"[fd00::{n:x}]"),
    ).flatmap(lambda host: st.integers(1, 65535).map(lambda port: f"{host}:{port}")),
    min_size=1,
    max_size=12,
    unique=True,
)


@pytest.mark.parametrize("kind", KINDS)
@given(addresses=_addresses)
def test_render_writes_one_server_line_per_instance_for_any_count(kind, addresses):
    template = (EXAMPLES / render.TEMPLATES[kind]).read_text()
    config = render.render(template, addresses, _ENVIRON)
    if kind == "haproxy":
        servers = re.findall(r"^    server (\S+) (\S+) check$", config, flags=re.MULTILINE)
        assert servers == [(f"instance{n}", a) for n, a in enumerate(addresses, start=1)]
    else:
        servers = re.findall(r"^        server (\S+) max_fails=1 fail_timeout=10s;$", config, flags=re.MULTILINE)
        assert servers == addresses
    assert "${" not in config
    others = [line for line in config.splitlines() if not re.match(r"\s+server \S+ ", line)]
    assert len(others) == len(template.splitlines()) - 1  # everything else is written once


@pytest.mark.parametrize(
    ("addresses", "environ", "says"),
    [
        ([], {}, "at least one instance"),
        (["10.0.0.11"], {}, "is not host:port"),
        (["10.0.0.11:0"], {}, "is not host:port"),
        (["10.0.0.11:65536"], {}, "is not host:port"),
        (["10.0.0.11:8080 check backup"], {}, "is not host:port"),
        (["10.0.0.11:8080;"], {}, "is not host:port"),
        (["10.0.0.11:8080\n    server evil 10.6.6.6:80"], {}, "is not host:port"),
        (["fd00::11:8080"], {}, "is not host:port"),
        (["max_fails=1"], {}, "is not host:port"),
        (["10.0.0.11:8080", "10.0.0.11:8080"], {}, "named more than once: 10.0.0.11:8080"),
        (["10.0.0.11:8080"], {"LISTEN_ADDRESS": ""}, "set LISTEN_ADDRESS"),
        (["10.0.0.11:8080"], {"TLS_PEM": "/etc/my certs/mcp.pem"}, "TLS_PEM must be one word"),
        (["10.0.0.11:8080"], {"PUBLIC_HOST": 'mcp.example.com"'}, "PUBLIC_HOST must be one word"),
        (["10.0.0.11:8080"], {"TLS_KEY": "/k;include /etc/passwd"}, "TLS_KEY must be one word"),
        (["10.0.0.11:8080"], {"RUN_DIR": "${TLS_KEY}"}, "RUN_DIR must be one word"),
    ],
)
def test_render_refuses_what_would_not_make_a_working_configuration(addresses, environ, says):
    checked = 0
    for kind in KINDS:
        template = (EXAMPLES / render.TEMPLATES[kind]).read_text()
        if not set(environ) <= set(re.findall(r"\$\{([A-Z_]+)\}", template)):
            continue  # a value this balancer's template does not use
        with pytest.raises(render.RenderError, match=re.escape(says)):
            render.render(template, addresses, {**_ENVIRON, **environ})
        checked += 1
    assert checked


def test_render_answers_a_refusal_in_one_line_and_writes_nothing():
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "render.py"), "haproxy", "10.0.0.11:8080"],
        env={"PATH": "/usr/bin:/bin"}, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    says = "render.py: set LISTEN_ADDRESS, PUBLIC_HOST, TLS_PEM in the environment (see docs/deployment.md)\n"
    assert done.stderr == says


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
def test_the_balancer_accepts_what_render_writes_for_any_count(kind, tmp_path):
    """The balancer's own configuration check, for counts and address forms the process tests do not start."""
    ca = trustme.CA()
    cert = ca.issue_cert(PUBLIC_HOST)
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "server.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    values = {**_ENVIRON, "RUN_DIR": str(tmp_path), "TLS_PEM": str(tmp_path / "server.pem"),
              "TLS_CERT": str(tmp_path / "cert.pem"), "TLS_KEY": str(tmp_path / "key.pem")}  # fmt: skip
    forms = ["10.0.0.{n}:8080", "[fd00::{n}]:8080", "localhost:{port}"]
    for count in (1, 2, 4, 12):
        addresses = [forms[n % 3].format(n=n + 1, port=9000 + n) for n in range(count)]
        config = tmp_path / f"{count}.conf"
        config.write_text(_render_as_documented(kind, values, addresses))
        if kind == "haproxy":
            argv = [_binary("haproxy"), "-c", "-f", str(config)]
        else:
            argv = [_binary("nginx"), "-t", "-c", str(config)]
        checked = subprocess.run(argv, capture_output=True, text=True, check=False)
        assert checked.returncode == 0, f"{kind} refused {count} instances:\n{checked.stdout}{checked.stderr}"


# Health probes with the documented settings (in process: every Host a prober may send).


@pytest.mark.parametrize(
    ("allowed_hosts", "probe_host", "status"),
    [
        ("mcp.example.com", "mcp.example.com", 200),  # HAProxy's check, the documented curl probe
        ("mcp.example.com", "mcp.example.com:8080", 200),
        ("mcp.example.com", "MCP.Example.Com", 200),
        ("mcp.example.com", "localhost", 403),  # the check the example shipped with before
        ("mcp.example.com", "10.0.0.11:8080", 403),  # a prober that names the instance's address ...
        ("mcp.example.com,10.0.0.11", "10.0.0.11:8080", 200),  # ... passes once the docs' alternative lists it
        ("mcp.example.com,10.0.0.11", "10.0.0.12:8080", 403),
        ("mcp.example.com,10.0.0.11", "mcp.example.com.evil.example", 403),
    ],
)
async def test_health_probes_pass_with_the_documented_allowed_hosts(make_settings, make_server, allowed_hosts,
                                                                    probe_host, status):  # fmt: skip
    settings = make_settings(allowed_hosts=allowed_hosts, trusted_proxies="127.0.0.1", require_https="true",
                             public_url="https://mcp.example.com", instance_name="api-1")  # fmt: skip
    server = await make_server(settings)
    async with aiohttp.ClientSession() as http:
        for path in ("/api/health", READY):
            async with http.get(f"http://127.0.0.1:{server.port}{path}", headers={"Host": probe_host}) as resp:
                assert resp.status == status, (path, await resp.text())


# Balancers and instances as processes.


def _binary(name: str) -> str:
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/local/sbin")
    if found is None:
        message = f"{name} is not installed (apt-get install {'haproxy' if name == 'haproxy' else 'nginx-light'})"
        if REQUIRED:
            pytest.fail(message + "; SKYWARDEN_REQUIRE_SERVICES=1 makes this a failure")
        pytest.skip(message)
    return found


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


def _render_as_documented(kind: str, values: dict[str, str], instances: list[str]) -> str:
    names, _ = documented_commands(kind)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "render.py"), kind, *instances],
        env={"PATH": "/usr/bin:/bin", **{name: values[name] for name in names}},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout


async def _start_balancer(
    kind: str, run_dir: Path, cert: trustme.LeafCert, port: int, instances: list[int]
) -> Balancer:
    run_dir.mkdir()
    pem = run_dir / "server.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
    cert.cert_chain_pems[0].write_to_path(str(run_dir / "cert.pem"))
    cert.private_key_pem.write_to_path(str(run_dir / "key.pem"))
    values = {
        "PUBLIC_HOST": PUBLIC_HOST,
        "LISTEN_ADDRESS": f"127.0.0.1:{port}",
        "TLS_PEM": str(pem),
        "TLS_CERT": str(run_dir / "cert.pem"),
        "TLS_KEY": str(run_dir / "key.pem"),
        "RUN_DIR": str(run_dir),
    }
    config = run_dir / render.TEMPLATES[kind]
    config.write_text(_render_as_documented(kind, values, [f"127.0.0.1:{p}" for p in instances]))
    checked = subprocess.run(documented_check(kind, config), capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    if kind == "haproxy":
        argv = [_binary("haproxy"), "-db", "-f", str(config)]
    else:  # in the foreground, so the test owns the process
        argv = [_binary("nginx"), "-c", str(config), "-g", "daemon off;"]
    proc = await asyncio.create_subprocess_exec(
        *argv, env={"PATH": "/usr/sbin:/usr/bin:/bin"}, stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    balancer = Balancer(kind, proc, port)
    try:
        await _until_it_answers(balancer)
    except BaseException:
        await balancer.stop()
        raise
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


@dataclass
class Setup:
    kind: str
    deployment: Deployment
    names: list[str]
    envs: list[dict[str, str]]
    servers: list[ServerProcess]  # the process now running as each instance
    every_process: list[ServerProcess]  # every process ever started, restarts included
    balancer: Balancer
    attributed: dict[str, str]  # request id -> the instance that logged it

    async def answered_by(self, request_id: str) -> int:
        """Which instance logged this request: the one that printed its id, checked by the name in its line."""
        index, event = await which_logged(self.servers, request_id)
        assert event["instance"] == self.names[index], event
        self.attributed[request_id] = self.names[index]
        return index

    async def restart(self, index: int) -> None:
        self.servers[index] = await start_server(self.envs[index])
        self.every_process.append(self.servers[index])


@contextlib.asynccontextmanager
async def behind_a_balancer(kind: str, count: int, tmp_path: Path) -> AsyncIterator[Setup]:
    """``count`` instances on a fresh PostgreSQL database and Redis prefix, with ``kind`` in front."""
    _binary(kind)
    ca = trustme.CA()
    cert = ca.issue_cert(PUBLIC_HOST)
    client_ssl = ssl.create_default_context()
    ca.configure_trust(client_ssl)
    (tmp_path / "secret").write_text(SECRET)
    (tmp_path / "admin").write_text(ADMIN_TOKEN)
    balancer_port = free_port()
    public_url = f"https://{PUBLIC_HOST}:{balancer_port}"
    names = [f"api-{n}" for n in range(1, count + 1)]
    async with fresh_postgres_database() as database_url, redis_prefix() as (redis_url, prefix):
        envs = [
            {
                # the shared settings of "Several instances: PostgreSQL + Redis"
                "SKYWARDEN_DATABASE_URL": database_url,
                "SKYWARDEN_REDIS_URL": redis_url,
                "SKYWARDEN_REDIS_KEY_PREFIX": prefix,
                "SKYWARDEN_SECRET_FILE": str(tmp_path / "secret"),
                "SKYWARDEN_ADMIN_TOKEN_FILE": str(tmp_path / "admin"),
                # where each instance listens and keeps its files in this test
                "SKYWARDEN_PORT": str(free_port()),
                "SKYWARDEN_DATA_DIR": str(tmp_path / name),
                **instance_settings(name, public_url),
            }
            for name in names
        ]
        started = await asyncio.gather(*(start_server(env) for env in envs), return_exceptions=True)
        servers = [s for s in started if isinstance(s, ServerProcess)]
        setup = None
        try:
            for outcome in started:
                if isinstance(outcome, BaseException):
                    raise outcome
            balancer = await _start_balancer(kind, tmp_path / kind, cert, balancer_port, [s.port for s in servers])
            deployment = Deployment(public_url, client_ssl, address="127.0.0.1")
            setup = Setup(kind, deployment, names, envs, servers, list(servers), balancer, {})
            yield setup
        finally:
            if setup is not None:
                await setup.balancer.stop()
            for server in setup.every_process if setup is not None else servers:
                await server.stop()


def _requests(server: ServerProcess) -> list[dict]:
    return [e for e in server.lines if e.get("event") == "request" and e.get("path") != READY]


async def _probes_pass(setup: Setup) -> None:
    """HAProxy's health checks reach every instance, and every one of them is answered 200."""
    if setup.kind != "haproxy":
        return  # nginx (open source) has no active checks
    for server in setup.servers:
        probe = await server.wait_for(lambda e: e.get("event") == "request" and e.get("path") == READY, timeout=15)
        assert probe["status"] == 200, probe


def _each_request_logged_once(setup: Setup) -> None:
    """After every process stopped (all lines written): each request id the test attributed was
    logged by exactly one process, of the instance it was attributed to."""
    logged: Counter[tuple[str, str]] = Counter()
    for server in setup.every_process:
        ours = [e for e in _requests(server) if e["request_id"] in setup.attributed]
        logged.update((e["request_id"], e["instance"]) for e in ours)
    assert logged == Counter(setup.attributed.items())


# Any number of instances: each starts and takes its turn.


@pytest.mark.slow
@pytest.mark.parametrize("count", [1, 3])
@pytest.mark.parametrize("kind", KINDS)
async def test_any_number_of_instances_start_behind_the_balancer_and_take_turns(kind, count, tmp_path):
    async with behind_a_balancer(kind, count, tmp_path) as setup:
        await _probes_pass(setup)
        key = (await setup.deployment.create_key())["key"]
        answered = []
        for turn in range(count):  # round robin: one turn each
            request_id = f"turn-{turn}"
            status, _, body = await setup.deployment.request(
                "GET", "/api/mcp/tools", {"X-API-Key": key, "X-Request-ID": request_id}
            )
            assert status == 200, body
            answered.append(await setup.answered_by(request_id))
        assert sorted(answered) == list(range(count))
    _each_request_logged_once(setup)


# Two instances: everything docs/deployment.md says a deployment does.


@pytest.mark.slow
@pytest.mark.parametrize("kind", KINDS)
async def test_two_instances_behind_a_real_load_balancer_behave_as_one(kind, tmp_path):
    async with behind_a_balancer(kind, 2, tmp_path) as setup:
        await _probes_pass(setup)
        await shared_state_checks(setup.deployment)
        for name, server in zip(setup.names, setup.servers, strict=True):
            # each took its share, and names itself in its audit log (lines are written in batches: wait)
            await server.wait_for(lambda e: e.get("event") == "request" and e.get("path") != READY, timeout=15)
            assert {e["instance"] for e in _requests(server)} == {name}

        await _headers_and_client_addresses(setup)
        await _probes_with_and_without_the_public_host(setup)
        await _progress_streams_through(setup.deployment)
        await _session_survives_a_restart(setup)
    _each_request_logged_once(setup)


async def _headers_and_client_addresses(setup: Setup) -> None:
    forged = {"X-Forwarded-For": "203.0.113.9", "Forwarded": "for=203.0.113.9", "X-Request-ID": "forged-xff-1"}
    status, headers, _ = await setup.deployment.request("GET", "/api/health", forged)
    assert status == 200
    assert headers["Strict-Transport-Security"].startswith("max-age=")  # the balancer vouched for HTTPS
    assert headers["Server"] == "skywarden"  # no balancer version banner
    instance = await setup.answered_by("forged-xff-1")
    assert (await setup.servers[instance].wait_for_request("forged-xff-1"))["client_ip"] == "127.0.0.1"


async def _probes_with_and_without_the_public_host(setup: Setup) -> None:
    """Straight to an instance over plain HTTP, as the docs' curl probe: with the public host the
    probe gets its 200 and anything else goes to public_url; any other Host is refused."""
    direct = setup.servers[0].url
    public = {"Host": PUBLIC_HOST}
    async with aiohttp.ClientSession() as http:
        async with http.get(direct + READY, headers=public) as resp:
            assert resp.status == 200
        async with http.get(direct + "/api/mcp/tools", headers=public, allow_redirects=False) as resp:
            assert resp.status == 308 and resp.headers["Location"] == setup.deployment.url + "/api/mcp/tools"
        for host in ("localhost", f"127.0.0.1:{setup.servers[0].port}"):
            async with http.get(direct + READY, headers={"Host": host, "X-Request-ID": "not-public"}) as resp:
                assert resp.status == 403


async def _progress_streams_through(deployment: Deployment) -> None:
    key = (await deployment.create_key())["key"]
    session = await deployment.open_session(key)
    message = rpc("tools/call", {"name": "test_tool_with_progress", "_meta": {"progressToken": "p"}}, id=7)
    headers = {"X-API-Key": key, "Accept": "application/json, text/event-stream", "Mcp-Session-Id": session,
               "MCP-Protocol-Version": "2025-11-25"}  # fmt: skip
    async with aiohttp.ClientSession(connector=deployment.connector()) as http:
        async with http.post(deployment.url + "/mcp", json=message, headers=headers) as resp:
            assert resp.content_type == "text/event-stream"
            assert "no-transform" in resp.headers["Cache-Control"]
            events = [line for line in (await resp.text()).splitlines() if line.startswith("data: ")]
    assert len(events) == 4 and '"id":7' in events[-1]


async def _session_survives_a_restart(setup: Setup) -> None:
    deployment, balancer = setup.deployment, setup.balancer
    key = (await deployment.create_key())["key"]
    session = await deployment.open_session(key, request_id="open-then-restart")
    opener = await setup.answered_by("open-then-restart")
    server_name = f"instances/instance{opener + 1} "

    mark = len(balancer.lines)
    await setup.servers[opener].stop()
    if balancer.kind == "haproxy":  # its health check notices; requests meanwhile go elsewhere
        await balancer.wait_for_line(server_name + "is DOWN", after=mark)
    for turn in range(len(setup.servers)):
        request_id = f"while-down-{turn}"
        status, _, body = await deployment.mcp(key, rpc("tools/list"), session, request_id=request_id)
        assert status == 200 and "tools" in body["result"], body
        assert await setup.answered_by(request_id) != opener  # the session went on elsewhere

    mark = len(balancer.lines)
    await setup.restart(opener)
    if balancer.kind == "haproxy":
        await balancer.wait_for_line(server_name + "is UP", after=mark)
    answered = []
    for turn in range(2 * len(setup.servers)):
        request_id = f"after-restart-{turn}"
        status, _, body = await deployment.mcp(key, rpc("tools/list"), session, request_id=request_id)
        assert status == 200 and "tools" in body["result"], body
        answered.append(await setup.answered_by(request_id))
    if balancer.kind == "haproxy":  # round robin: the restarted instance takes its turn again
        assert opener in answered, answered
