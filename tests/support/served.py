"""An aiohttp app served on a free loopback port for the length of a ``with`` block."""

from __future__ import annotations

import contextlib
import ssl
from collections.abc import AsyncIterator

from aiohttp import web

from tests.support.server_process import free_port


@contextlib.asynccontextmanager
async def served(app: web.Application, ssl_context: ssl.SSLContext | None = None) -> AsyncIterator[int]:
    """The port ``app`` answers on at 127.0.0.1 (over TLS with ``ssl_context``)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port, ssl_context=ssl_context).start()
        yield port
    finally:
        await runner.cleanup()
