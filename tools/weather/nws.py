"""What both NWS tools share: the API's base URL, its link rule and its codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from skywarden.tools.contract import ToolContext
from skywarden.tools.http import UpstreamError

SERVICE = "The National Weather Service API"
LABEL = "nws"  # the metric label
ACCEPT = "application/geo+json"

# USPS codes of the states, DC, the territories and freely associated states NWS issues alerts for.
STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI PW FM MH".split()
)


SETTINGS_GROUP = "nws"  # the server's nws_* settings reach these tools as context.settings


def base_url(context: ToolContext) -> str:
    return str(context.settings["base_url"]).rstrip("/")


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``; None when it has none to compare (a port out of range)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or "").lower(), port


def follow_link(context: ToolContext, url: Any, source: str | None = None) -> str:
    """Return ``url`` if it is safe to fetch: it must stay on the configured NWS origin.
    ``source`` is the address of the answer the link came from (logged when there is none)."""
    if not isinstance(url, str) or not url:
        raise UpstreamError(
            f"{SERVICE} answered without the expected link; try again later.", url=source, cause="no_link"
        )
    origin = _origin(url)
    if origin is None or origin != _origin(base_url(context)):
        raise UpstreamError(
            f"{SERVICE} answered with a link to another site, which is not followed.", url=url, cause="foreign_link"
        )
    return url


async def get(context: ToolContext, url: str, derive: Callable[[Any], Any] | None = None) -> Any:
    return await context.upstream.get_json(url, service=SERVICE, accept=ACCEPT, label=LABEL, derive=derive)


@functools.lru_cache(maxsize=4096)  # callers ask for the same places again and again; bounded
def format_coordinate(value: float) -> str:
    """NWS takes at most four decimals and answers a longer form with a redirect."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
