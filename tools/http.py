"""``context.http``: the client a plugin calls outside APIs with, what it answers and what it raises."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import urlsplit

from skywarden.tools.contract import ToolError
from skywarden.tools.settings import Secret


class UpstreamError(ToolError):
    """An upstream request failed; the message is safe to show. ``url`` (``loggable_url``: no
    query, no credentials), ``status`` and ``cause`` (an exception class or a short reason) say
    why, for the log line the pipeline writes."""

    def __init__(
        self,
        message: str,
        status: int | None = None,
        problem: dict[str, Any] | None = None,
        *,
        url: str | None = None,
        cause: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.problem = problem or {}
        self.url = loggable_url(url) if url else None
        self.cause = cause


MAX_LOGGED_PATH = 200


def loggable_url(url: str) -> str:
    """``scheme://host[:port]/path`` of ``url``: never its query (where APIs take keys), path
    parameters (``;jsessionid=...``), fragment or user info. An IPv6 host keeps its brackets and
    a port written in the URL is kept, so the address logged is the one that was asked."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "(not a URL)"
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    try:
        port = f":{parts.port}" if parts.port is not None else ""
    except ValueError:
        port = ":(not a port)"
    path = "/".join(segment.partition(";")[0] for segment in parts.path.split("/"))
    return f"{parts.scheme}://{host}{port}{path[:MAX_LOGGED_PATH]}"


@dataclass(frozen=True, slots=True)
class HttpResponse:
    """An upstream's answer to ``HttpClient.request``, read whole (within the size cap)."""

    status: int
    headers: Mapping[str, str]
    body: bytes
    url: str

    def json(self) -> Any:
        """The body as JSON; ``UpstreamError`` if it is not."""
        try:
            return json.loads(self.body)
        except (ValueError, UnicodeDecodeError):
            raise UpstreamError(
                "The upstream answered with something that is not valid JSON.",
                status=self.status,
                url=self.url,
                cause="not_json",
            ) from None

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class HttpClient(Protocol):
    """``context.http``: the plugin's client for outside APIs. Every call goes through the SSRF
    guard (http/https only; the destination's addresses must be public, or in the server's
    ``upstream_allowed_networks``, unless the origin is one of the plugin's URL settings), sends
    the plugin's User-Agent, and fails as ``UpstreamError`` (a ``ToolError``) with a message
    naming ``service`` (default: the plugin's title) and a ``cause``: ``invalid_request`` (a
    malformed method, URL, header, query or body), ``blocked_address``, ``too_large``,
    ``TimeoutError`` or the transport error's name; ``get_json`` also ``status`` and ``not_json``.
    ``Secret`` header (and query) values are sent as their value and never logged."""

    async def get_json(
        self,
        url: str,
        *,
        service: str | None = None,
        accept: str = "application/json",
        label: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
        derive: Callable[[Any], Any] | None = None,
    ) -> Any:
        """GET ``url`` and return its JSON (status 200 only), cached per ``Cache-Control`` apart
        for each plugin and each set of ``headers``. ``derive`` (a pure function of the document)
        makes a shape cached with the answer; never mutate what is returned."""
        ...

    async def request(
        self,
        method: str,
        url: str,
        *,
        service: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
        params: Mapping[str, str | Secret] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-request cap, passed to the client)
    ) -> HttpResponse:
        """Any method, headers, query ``params``, a JSON (``json``, not ``null``) or raw body
        (``data``; not both), a timeout (at most the server's). Answers of every status are
        returned, redirects too (never followed); never cached, and a result made with it is
        never kept. Only a malformed request, the guard, transport failures, timeouts and the
        size cap raise."""
        ...
