"""Run the app: bind, announce the real address, shut down gracefully on SIGTERM/SIGINT.

Start-up order: the app's cleanup contexts open (stores, shared state, the upstream pool, then
the plugins' start-up hooks), then the port is bound. Shutdown order (aiohttp's runner): stop
accepting, run on_shutdown, let in-flight requests finish within ``shutdown_timeout``, then
clean up (the plugins' shutdown hooks, the upstream session, stores).
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine, Iterable, Mapping
from pathlib import Path
from typing import Any

import structlog
from aiohttp import web

from skywarden.server import __version__
from skywarden.server.app import create_app
from skywarden.server.auth.credentials import prepare_credentials
from skywarden.server.auth.store_urls import SQLITE_SCHEME, display_url
from skywarden.server.cli.discovery import replay_logged
from skywarden.server.cli.tls import server_ssl_context
from skywarden.server.http.connections import GuardedAppRunner
from skywarden.server.observability.audit import audit_connection
from skywarden.server.observability.logging_setup import close_sinks, configure_logging
from skywarden.server.plugins.registry import ToolRegistry
from skywarden.server.settings import Settings


class StartError(RuntimeError):
    """The server could not start (e.g. the port is taken); the message says what to change."""


def mode(settings: Settings) -> dict[str, object]:
    """What the start-up line says about where state lives."""
    described: dict[str, object] = {
        "event_loop": event_loop_name(settings),
        "store": settings.resolved_database_url.split(":", 1)[0],
        "store_at": _store_at(settings.resolved_database_url),
        "shared_state": "redis" if settings.redis_url else "in-process",
        "workers": settings.workers,
    }
    if settings.workers > 1 and not settings.redis_url:
        described["per_worker"] = "rate limits and sessions; verified keys are not cached (set redis_url to share)"
    return described


def _store_at(database_url: str) -> str:
    """Where the keys are: a SQLite file's absolute path (``data_dir`` is relative to the folder
    the server starts in), a server database's URL without its password."""
    shown = display_url(database_url)
    return str(Path(shown).resolve()) if database_url.startswith(SQLITE_SCHEME) else shown


def cannot_listen(settings: Settings, exc: OSError) -> StartError:
    return StartError(
        f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; choose another "
        "address (--host/--port, SKYWARDEN_HOST/SKYWARDEN_PORT) or stop what is using it"
    )


async def run_server(
    settings: Settings,
    *,
    registry: ToolRegistry | None = None,
    reuse_port: bool = False,
    started: Callable[[int], None] | None = None,
) -> None:
    """Serve until SIGTERM/SIGINT. A worker (``started`` given) reports its port instead of
    announcing itself; its supervisor says what the whole server is. ``registry``: the plugins
    the command discovered (a worker discovers its own)."""
    log = structlog.get_logger("skywarden.server")
    credentials = prepare_credentials(settings)
    ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
    app = create_app(settings, registry=registry, credentials=credentials)
    listening = False

    async def farewell(app: web.Application) -> None:
        if listening:  # a server that never started does not say it is stopping
            log.info("skywarden stopping", grace_seconds=settings.shutdown_timeout)

    app.on_shutdown.append(farewell)
    runner = GuardedAppRunner(
        app,
        idle_timeout=settings.idle_timeout,
        auditor=audit_connection,
        handle_signals=False,
        access_log=None,
        handler_cancellation=True,
        shutdown_timeout=settings.shutdown_timeout,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await runner.setup()  # the cleanup contexts: a failure (a plugin's start-up hook) still closes the others
        site = web.TCPSite(
            runner, settings.host, settings.port, backlog=512, ssl_context=ssl_context, reuse_port=reuse_port or None
        )
        try:
            await site.start()
        except OSError as exc:
            raise cannot_listen(settings, exc) from None
        listening = True
        port = site.port  # the bound port (settings.port may be 0)
        if started is not None:
            log.info("worker started", port=port)
            started(port)
        else:
            announce_admin_token(credentials.keep_generated_admin_token())
            log.info(
                "skywarden started",
                version=__version__,
                host=settings.host,
                port=port,
                url=site.name,
                **mode(settings),
            )
        await stop.wait()
    finally:
        await runner.cleanup()
    log.info("skywarden stopped")


def announce_admin_token(token: str | None) -> None:
    """Shown once, after the server is listening: only then is its hash kept."""
    if token is None:
        return
    print(
        "\nGenerated an admin token (shown once; only its hash is kept):\n\n"
        f"    {token}\n\n"
        "Use it as 'Authorization: Bearer <token>' on /api/admin. Replace it with\n"
        "'skywarden admin-token rotate', or set SKYWARDEN_ADMIN_TOKEN_FILE.\n",
        file=sys.stderr,
        flush=True,
    )


def instance_name(settings: Settings) -> str:
    return settings.instance_name or f"{socket.gethostname()}:{os.getpid()}"


def event_loop_name(settings: Settings) -> str:
    if settings.event_loop == "asyncio":
        return "asyncio"
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def run_on_event_loop(settings: Settings, main: Coroutine[Any, Any, None]) -> None:
    """Run ``main`` on uvloop when the settings allow it and it is installed, else on asyncio's loop."""
    factory = None
    if event_loop_name(settings) == "uvloop":
        import uvloop

        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def configure_server_logging(settings: Settings, role: str = "") -> None:
    """Logging for a server process; ``role`` (a worker, the supervisor) follows its instance name.
    Its log and audit files are opened here, before anything binds: a server never runs with a
    log it cannot write (``SinkOpenError``, one line)."""
    configure_logging(
        settings.log_level,
        settings.log_format,
        log_file=settings.log_file,
        audit_log_file=settings.audit_log_file,
        instance=instance_name(settings) + (f"/{role}" if role else ""),
        open_files=True,
    )


def log_start_notices(settings: Settings, logged: Iterable[Mapping[str, Any]] = ()) -> None:
    """Once per server, once logging is configured: what discovery logged, and each old setting
    name in use (with the name that replaces it)."""
    replay_logged(logged)
    log = structlog.get_logger("skywarden.server")
    for old in settings.deprecations:
        log.warning(
            "deprecated setting",
            setting=old.old,
            replacement=old.new,
            source=old.source,
            ignored=bool(old.overridden_by),
            detail=str(old),
        )


def serve(settings: Settings, registry: ToolRegistry | None = None, logged: Iterable[Mapping[str, Any]] = ()) -> int:
    configure_server_logging(settings)
    try:
        log_start_notices(settings, logged)
        run_on_event_loop(settings, run_server(settings, registry=registry))
    finally:
        close_sinks()
    return 0
