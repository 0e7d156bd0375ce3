"""What a plugin's HTTP calls raise: ``UpstreamError``, with an address that is safe to log."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from skywarden.tools.contract import ToolError


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
