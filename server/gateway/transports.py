"""The official MCP SDK's client for one upstream: stdio (under the orphan guard, over Skywarden's
own pipes: stdio_pipes.py), Streamable HTTP (the SDK's transport) or HTTP+SSE (Skywarden's,
each event bounded: sse_transport.py), with the upstream's own headers and nothing of the caller's.

An HTTP upstream's address is checked before each connection: public addresses only, unless the
upstream has ``allow_private`` or the address is in ``upstream_allowed_networks``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import structlog

from skywarden.server import __version__
from skywarden.server.gateway.credentials import resolve_all
from skywarden.server.gateway.direct import DirectCalls, identity_value
from skywarden.server.gateway.http_calls import HttpCalls, MessageHandler
from skywarden.server.gateway.stdio_calls import StdioCalls
from skywarden.server.gateway.upstream_requests import bounded_requests
from skywarden.server.gateway.wrapped_stream import WrappedStream
from skywarden.server.jsonutil import loads_exact
from skywarden.server.outbound import no_cookie_jar
from skywarden.server.plugins.ssrf import AddressPolicy
from skywarden.server.upstreams import UpstreamConfig

log = structlog.get_logger("skywarden.gateway")

USER_AGENT = f"skywarden-gateway/{__version__}"
MIN_EVENT_BYTES = 4 * 1024 * 1024  # a tools/list page may be larger than any one result


class BlockedUpstream(Exception):
    """An HTTP upstream's host resolves to an address it may not reach."""


async def check_address(config: UpstreamConfig, policy: AddressPolicy) -> str | None:
    """Every address the URL's host has is one this upstream may reach; the one the connection
    is pinned to (IPv4 first), so a name that resolves elsewhere later (DNS rebinding) changes
    nothing until the next connection is checked. None with ``allow_private`` (nothing pinned)."""
    if config.allow_private:
        return None
    parts = urlsplit(config.url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise BlockedUpstream(f"{host} cannot be resolved: {exc.strerror or exc}") from None
    addresses = [str(info[4][0]) for info in infos]
    for address in addresses:
        if not policy.allows(address):
            where = address if address == host else f"{host} resolves to {address}, which"
            raise BlockedUpstream(
                f"{where} is not a public address: reached only by an upstream declared in settings with "
                "allow_private = true, or once its network is in upstream_allowed_networks (read at start)"
            )
    if not addresses:
        raise BlockedUpstream(f"{host} resolves to no address")
    return sorted(addresses, key=lambda a: ":" in a)[0]


@dataclass
class Transport:
    """An un-entered ``mcp.Client`` for an upstream, the httpx client to close after it (or None),
    and the direct path for its calls (None: every call goes through the SDK, as over HTTP+SSE)."""

    client: Any
    http: Any = None
    calls: DirectCalls | None = None


def client_for(
    config: UpstreamConfig,
    message_handler: MessageHandler,
    errlog: Any,
    ended: Callable[[str | None], None],
    pinned: str | None = None,
) -> Transport:
    """The SDK's client for this upstream, with its direct path. The SDK is imported here: only
    a server with upstreams needs it."""
    from mcp import Client
    from mcp.types import Implementation

    info = Implementation(name="skywarden-gateway", version=__version__)
    common: dict[str, Any] = {"mode": "auto", "message_handler": message_handler, "client_info": info, "cache": None}
    if config.transport == "stdio":
        from mcp.client.stdio import get_default_environment

        from skywarden.server.gateway.stdio_pipes import stdio_pipes

        calls = StdioCalls()
        pipes = stdio_pipes(
            sys.executable,
            # -I: the guard's Python ignores PYTHON* variables and the user's site (the env is the upstream's)
            ["-I", "-m", "skywarden.server.gateway.guard", str(os.getpid()), config.command, *config.args],
            get_default_environment() | resolve_all(config.env, config.name),
            config.cwd or None,
            errlog,
            calls,
            max(config.max_result_bytes * 2, MIN_EVENT_BYTES),
            ended,
        )
        return Transport(Client(bounded_requests(pipes), **common), calls=calls)
    import httpx2

    headers = {"User-Agent": USER_AGENT, **resolve_all(config.headers, config.name, headers=True)}
    timeout = httpx2.Timeout(config.connect_timeout, read=max(config.timeout, 300.0))
    request_hooks = [configured_headers(headers)]
    if config.identity:
        request_hooks.append(caller_header(config.identity_header))
    if pinned is not None:
        request_hooks.append(pin_address(urlsplit(config.url).hostname or "", pinned))
    hooks = {"request": request_hooks}
    from skywarden.server.gateway.bounded_bodies import BoundedBodies

    # every answer is bounded as it arrives: an event of a stream by the SDK, any other by
    # BoundedBodies (the SDK reads one whole first), a call's on the direct path by HttpCalls.
    # The transport given, no proxy is taken from the environment: a connection goes to the
    # address checked, as the direct path's does.
    events = max(config.max_result_bytes * 2, MIN_EVENT_BYTES)

    def http_client(**options: Any) -> httpx2.AsyncClient:
        bounded = BoundedBodies(httpx2.AsyncHTTPTransport(), events)
        return httpx2.AsyncClient(
            follow_redirects=False, event_hooks=hooks, transport=bounded, cookies=no_cookie_jar(), **options
        )

    if config.transport == "sse":
        from skywarden.server.gateway.sse_transport import sse_transport

        stream = sse_transport(config.url, http_client(headers=headers, timeout=timeout), events)
        return Transport(Client(watched(bounded_requests(stream), lambda: ended(None)), **{**common, "mode": "legacy"}))
    from mcp.client.streamable_http import streamable_http_client

    direct = HttpCalls(config, headers, pinned, events, message_handler)
    request_hooks.append(direct.observe)
    http = http_client(headers=headers, timeout=timeout)
    transport = streamable_http_client(config.url, http_client=http, max_sse_event_size=events)
    return Transport(Client(watched(bounded_requests(transport), lambda: ended(None)), **common), http, direct)


async def _checked_in_the_pipeline(name: str, result: Any) -> None:
    return None


def leave_result_checks_to_the_pipeline(client: Any) -> None:
    """Turn off the SDK's check of a call's structured result against the tool's output schema
    (on the calls that go through the SDK). It runs Python's ``jsonschema``, whose ``pattern``
    uses ``re`` without any bound: an upstream writing both the pattern and the result could hold
    the event loop. Skywarden checks every result against the same schema in the tool's call,
    where a check that may be slow goes to the schema worker (``schema_checks``)."""
    session = getattr(client, "session", None)
    if session is not None and hasattr(session, "validate_tool_result"):
        session.validate_tool_result = _checked_in_the_pipeline
    else:  # an SDK that checks results elsewhere: said, so a stall from it can be traced here
        log.warning("the SDK's own check of call results could not be turned off")


def configured_headers(headers: dict[str, str]) -> Any:
    """An httpx request hook: the upstream's configured headers on every request, a redirect's
    too (httpx drops ``Cookie`` when it follows one; the SDK follows them within the origin)."""

    async def hook(request: Any) -> None:
        for name, value in headers.items():
            if name not in request.headers:
                request.headers[name] = value

    return hook


def caller_header(name: str) -> Any:
    """An httpx request hook: the caller named in a request's ``_meta`` (``CALLER_META``) also as
    the header ``name`` (``kind:id``), and never a value for it from anywhere else."""
    import httpx2

    async def hook(request: Any) -> None:
        request.headers.pop(name, None)
        if request.method != "POST":
            return
        try:
            body = request.content
        except httpx2.RequestNotRead:  # a redirect's request, made of the first one's stream
            body = await request.aread()
        if not body:
            return
        try:
            value = identity_value(loads_exact(body)["params"].get("_meta"))
        except (ValueError, KeyError, TypeError, AttributeError):
            return
        if value is not None:
            request.headers[name] = value

    return hook


class _WatchedStream(WrappedStream):
    """A transport's read stream that says when it ends (``ended``), whatever else it does."""

    def __init__(self, inner: Any, ended: Callable[[], None]) -> None:
        super().__init__(inner)
        self._ended = ended

    def __aiter__(self) -> _WatchedStream:
        return self

    async def __anext__(self) -> Any:
        try:
            return await self._inner.__anext__()
        except (StopAsyncIteration, Exception):
            self._ended()
            raise

    async def receive(self) -> Any:
        try:
            return await self._inner.receive()
        except Exception:
            self._ended()
            raise


@contextlib.asynccontextmanager
async def watched(transport: Any, ended: Callable[[], None]) -> AsyncIterator[tuple[Any, Any]]:
    """``transport`` (an SDK transport) whose read stream calls ``ended`` when it ends."""
    async with transport as (read, write):
        yield _WatchedStream(read, ended), write


def pin_address(host: str, address: str) -> Any:
    """An httpx request hook: a request to ``host`` goes to ``address`` (checked when the connection
    was made), still naming ``host`` in its Host header and in TLS (SNI and the certificate)."""

    async def hook(request: Any) -> None:
        if request.url.raw_host.decode("ascii").lower() == host:  # not .host: it decodes xn-- names
            request.extensions = {**request.extensions, "sni_hostname": host}
            request.url = request.url.copy_with(host=address)

    return hook
