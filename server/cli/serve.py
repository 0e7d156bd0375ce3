"""Run the app: bind, announce the real address, shut down gracefully on SIGTERM/SIGINT.

Shutdown order (aiohttp's runner): stop accepting, run on_shutdown, let in-flight
requests finish within ``shutdown_timeout``, then clean up (upstream session, stores).
"""

from __future__ import annotations

import asyncio
import signal
import sys

import structlog
from aiohttp import web

from skywarden.server import __version__
from skywarden.server.app import create_app
from skywarden.server.auth.credentials import prepare_credentials
from skywarden.server.cli.tls import server_ssl_context
from skywarden.server.http.connections import GuardedAppRunner
from skywarden.server.observability.audit import audit_connection
from skywarden.server.observability.logging_setup import close_sinks, configure_logging
from skywarden.server.settings import Settings


class StartError(RuntimeError):
    """The server could not start (e.g. the port is taken); the message says what to change."""


async def _run(settings: Settings) -> None:
    log = structlog.get_logger("skywarden.server")
    credentials = prepare_credentials(settings)
    ssl_context = server_ssl_context(settings.tls_cert, settings.tls_key)
    app = create_app(settings, credentials=credentials)

    async def farewell(app: web.Application) -> None:
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
    await runner.setup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        site = web.TCPSite(runner, settings.host, settings.port, backlog=512, ssl_context=ssl_context)
        try:
            await site.start()
        except OSError as exc:
            raise StartError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}; choose another "
                "address (--host/--port, SKYWARDEN_HOST/SKYWARDEN_PORT) or stop what is using it"
            ) from None
        _announce_admin_token(credentials.keep_generated_admin_token())
        addresses = [s.getsockname() for s in site._server.sockets] if site._server else []
        port = addresses[0][1] if addresses else settings.port
        log.info("skywarden started", version=__version__, host=settings.host, port=port, url=site.name)
        await stop.wait()
    finally:
        await runner.cleanup()
    log.info("skywarden stopped")


def _announce_admin_token(token: str | None) -> None:
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


def serve(settings: Settings) -> int:
    configure_logging(
        settings.log_level,
        settings.log_format,
        log_file=settings.log_file,
        audit_log_file=settings.audit_log_file,
    )
    try:
        asyncio.run(_run(settings))
    finally:
        close_sinks()
    return 0
