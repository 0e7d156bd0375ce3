"""The parts of aiohttp below its public API that ``server/http/connections.py`` relies on.

aiohttp has no public hook for an idle connection that never completes a request head, for a
parser refusal or for a parser error inside a body, so the guarded connections subclass its
request handler and use some of its private names. ``setup.cfg`` pins aiohttp to the minor
release these were read from; this test names each of them, so that raising the pin fails here,
in CI, with the name that moved, never silently in production."""

from __future__ import annotations

import inspect

from aiohttp import web
from aiohttp.web_protocol import RequestHandler, _ErrInfo

from skywarden.server.http.connections import GuardedAppRunner, GuardedRequestHandler, GuardedServer

HANDLER_STATE = ("_messages", "_request_in_progress", "_force_close", "_lingering_time", "_request_count")


def _parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_the_request_handler_keeps_the_state_the_guard_reads():
    slots = {name for cls in RequestHandler.__mro__ for name in getattr(cls, "__slots__", ())}
    assert set(HANDLER_STATE) <= slots
    assert {"_loop", "transport"} <= slots | set(dir(RequestHandler))


def test_the_methods_the_guard_overrides_have_the_shape_it_was_written_for():
    assert _parameters(RequestHandler._handle_request) == ["self", "request", "start_time", "request_handler"]
    assert _parameters(RequestHandler.handle_error) == ["self", "request", "status", "exc", "message"]
    assert _parameters(RequestHandler.data_received) == ["self", "data"]
    assert _parameters(RequestHandler.connection_made) == ["self", "transport"]
    assert _parameters(RequestHandler.connection_lost) == ["self", "exc"]
    assert _parameters(web.AppRunner._make_server) == ["self"]
    assert _parameters(_ErrInfo) == ["status", "exc", "message"]  # what the parser queues for a refusal
    assert issubclass(GuardedRequestHandler, RequestHandler) and issubclass(GuardedServer, web.Server)


async def test_a_guarded_runner_makes_guarded_handlers_with_that_state():
    runner = GuardedAppRunner(web.Application(), idle_timeout=5, auditor=lambda *args: None)
    await runner.setup()
    try:
        server = runner.server
        assert isinstance(server, GuardedServer) and hasattr(server, "_kwargs") and hasattr(server, "_loop")
        handler = server()
        assert isinstance(handler, GuardedRequestHandler)
        for name in HANDLER_STATE:
            getattr(handler, name)  # set by aiohttp's __init__, read by the guard
    finally:
        await runner.cleanup()
