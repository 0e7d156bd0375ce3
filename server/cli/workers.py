"""``skywarden serve --workers N``: N server processes on one port, kept running by a supervisor.

Each worker binds the port with SO_REUSEPORT, so the kernel spreads connections across
them. Before any worker starts, the supervisor does what must happen once: checks the
settings and credentials (a generated server secret is written once, a generated admin
token's hash kept once), brings the key store's schema up to date, and reserves the port
(resolving port 0 to a real one). It then says which mode the server is in:

- ``shared_state=redis``: rate limits, sessions and key changes are shared by every worker
  (and every other instance on the same Redis);
- ``shared_state=in-process``: each worker keeps its own rate-limit counters and sessions
  (a client may be sent to another worker and must open a new session), and no worker
  caches verified keys, so a revocation through any worker is in force in all at once.

A worker that dies is replaced; one that cannot start stops the whole server with its reason.
SIGTERM/SIGINT stop every worker gracefully (each gets ``shutdown_timeout``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import queue
import signal
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from multiprocessing.connection import wait
from typing import Any

import structlog

from skywarden.server import __version__
from skywarden.server.auth.backends import open_checked, open_store
from skywarden.server.auth.credentials import prepare_credentials
from skywarden.server.cli.serve import (
    StartError,
    announce_admin_token,
    cannot_listen,
    configure_server_logging,
    log_start_notices,
    mode,
    run_on_event_loop,
    run_server,
)
from skywarden.server.cli.tls import server_ssl_context
from skywarden.server.observability.logging_setup import close_sinks
from skywarden.server.settings import Settings

START_TIMEOUT_SECONDS = 60.0
MAX_RESTARTS = 5  # within RESTART_WINDOW_SECONDS; more and the server stops
RESTART_WINDOW_SECONDS = 60.0
STOP_GRACE_EXTRA_SECONDS = 5.0


def _worker(settings: Settings, index: int, reports: Any) -> None:
    """One worker process (spawned: a fresh interpreter, nothing inherited but the arguments)."""
    try:
        configure_server_logging(settings, f"w{index}")
        run_on_event_loop(
            settings, run_server(settings, reuse_port=True, started=lambda port: reports.put(("started", index, port)))
        )
    except Exception as exc:  # one line for the supervisor, which stops the server with it
        reports.put(("failed", index, str(exc) or type(exc).__name__))
        raise SystemExit(1) from None
    finally:
        close_sinks()


async def _bring_schema_up_to_date(settings: Settings) -> None:
    store = open_store(settings.resolved_database_url)
    await open_checked(store, migrate=True)
    await store.close()


def _reserve_port(settings: Settings) -> socket.socket:
    """Bound (not listening) with SO_REUSEPORT: the port is ours and known before workers bind it."""
    family = socket.AF_INET6 if ":" in settings.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((settings.host, settings.port))
    except OSError as exc:
        sock.close()
        raise cannot_listen(settings, exc) from None
    return sock


class _Supervisor:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.log = structlog.get_logger("skywarden.server")
        self.context = multiprocessing.get_context("spawn")
        self.reports = self.context.Queue()
        self.workers: dict[int, Any] = {}
        self.stopping = threading.Event()
        self.restarts: list[float] = []

    def start(self, index: int) -> None:
        process = self.context.Process(
            target=_worker, args=(self.settings, index, self.reports), name=f"skywarden-worker-{index}"
        )
        process.start()
        self.workers[index] = process

    def wait_until_listening(self) -> None:
        pending = set(self.workers)
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while pending:
            try:
                kind, index, detail = self.reports.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise StartError(
                    f"workers {sorted(pending)} did not start within {START_TIMEOUT_SECONDS:.0f}s"
                ) from None
            if kind == "failed":
                raise StartError(str(detail))
            pending.discard(index)

    def watch(self) -> int:
        """Until asked to stop: replace a worker that died, unless they keep dying."""
        while not self.stopping.is_set():
            sentinels = {p.sentinel: i for i, p in self.workers.items()}
            for sentinel in wait(list(sentinels), timeout=0.5):
                index = sentinels[sentinel]
                self.workers[index].join()  # its sentinel fired: it has exited, collect the code
                code = self.workers[index].exitcode
                if self.stopping.is_set():
                    break
                now = time.monotonic()
                self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS] + [now]
                if len(self.restarts) > MAX_RESTARTS:
                    self.log.error("workers keep dying; stopping", worker=index, exit_code=code)
                    return 1
                self.log.error("worker died; starting a new one", worker=index, exit_code=code)
                self.start(index)
        return 0

    def stop(self) -> None:
        for process in self.workers.values():
            if process.is_alive():
                process.terminate()  # SIGTERM: the worker stops gracefully
        deadline = time.monotonic() + self.settings.shutdown_timeout + STOP_GRACE_EXTRA_SECONDS
        for process in self.workers.values():
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()


def supervise(settings: Settings, logged: Iterable[Mapping[str, Any]] = ()) -> int:
    try:
        return _supervise(settings, logged)
    finally:
        close_sinks()


def _supervise(settings: Settings, logged: Iterable[Mapping[str, Any]]) -> int:
    configure_server_logging(settings, "supervisor")
    log_start_notices(settings, logged)
    log = structlog.get_logger("skywarden.server")
    credentials = prepare_credentials(settings)
    server_ssl_context(settings.tls_cert, settings.tls_key)  # a bad certificate stops us here, not in N workers
    asyncio.run(_bring_schema_up_to_date(settings))
    reserved = _reserve_port(settings)
    port = reserved.getsockname()[1]
    settings = dataclasses.replace(settings, port=port)
    supervisor = _Supervisor(settings)
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: supervisor.stopping.set())
    try:
        token = credentials.keep_generated_admin_token()  # before the workers read it
        for index in range(settings.workers):
            supervisor.start(index)
        try:
            supervisor.wait_until_listening()
        except StartError:
            credentials.discard_generated_admin_token()
            raise
        reserved.close()
        announce_admin_token(token)
        scheme = "https" if settings.tls_cert else "http"
        log.info(
            "skywarden started", version=__version__, host=settings.host, port=port,
            url=f"{scheme}://{settings.host}:{port}", **mode(settings),
        )  # fmt: skip
        code = supervisor.watch()
    finally:
        reserved.close()
        supervisor.stop()
    log.info("skywarden stopped")
    return code
