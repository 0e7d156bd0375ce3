"""Run the app: TLS or plain, graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import structlog
from aiohttp import web
from skywarden.server import __version__
from skywarden.server.app import create_app
from skywarden.server.logging_setup import configure_logging
from skywarden.server.settings import Settings


def serve(settings: Settings) -> int:
    configure_logging(settings.log_level, settings.log_format)
    log = structlog.get_logger("skywarden.server")
    app = create_app(settings)

    async def announce(app: web.Application) -> None:
        log.info("skywarden started", version=__version__, host=settings.host, port=settings.port)

    async def farewell(app: web.Application) -> None:
        log.info("skywarden stopping", grace_seconds=settings.shutdown_timeout)

    app.on_startup.append(announce)
    app.on_shutdown.append(farewell)
    web.run_app(
        app,
        host=settings.host,
        port=settings.port,
        shutdown_timeout=settings.shutdown_timeout,
        handler_cancellation=True,
        access_log=None,
        print=None,
    )
    log.info("skywarden stopped")
    return 0
