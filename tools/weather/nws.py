"""The ``weather`` plugin and what its two tools share: settings, the calls to the National
Weather Service API, the rule for following its links, and its state codes."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from importlib import metadata
from typing import Any, TypeVar
from urllib.parse import urlsplit

from skywarden.tools import Context, Plugin, UpstreamError, Url, setting

SERVICE = "The National Weather Service API"  # the plugin's title: what error texts call the service
LABEL = "nws"  # the metric label of its requests (skywarden_upstream_* metrics)
ACCEPT = "application/geo+json"
CACHE_TTL = 300  # seconds a result may answer identical arguments (never past NWS's own max-age)

# USPS codes of the states, DC, the territories and freely associated states NWS issues alerts for.
STATE_CODES = frozenset(
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY "
    "NC ND OH OK OR PA RI SC SD TN TX UT VT VA WA WV WI WY AS GU MP PR VI PW FM MH".split()
)


@dataclass(frozen=True)
class WeatherSettings:
    """``weather_base_url`` and ``weather_user_agent`` (formerly ``nws_base_url``, ``nws_user_agent``)."""

    base_url: Url = setting(
        "https://api.weather.gov", help="National Weather Service API base URL", alias="nws_base_url"
    )
    user_agent: str = setting(
        f"skywarden/{metadata.version('skywarden')} (+https://github.com/skywarden/skywarden)",
        help="User-Agent sent to the National Weather Service; NWS asks for contact details in it: "
        "a URL or an e-mail address",
        alias="nws_user_agent",
    )


weather = Plugin("weather", settings=WeatherSettings, title=SERVICE)

T = TypeVar("T")


async def get(ctx: Context[WeatherSettings], url: str, derive: Callable[[Any], T]) -> T:
    """GET an NWS document and ``derive`` what a tool needs from it, once per upstream answer
    (kept beside the answer while NWS says it is fresh)."""
    found: T = await ctx.http.get_json(url, accept=ACCEPT, label=LABEL, derive=derive)
    return found


@functools.lru_cache(maxsize=256)
def _origin(url: str) -> tuple[str, str, int | None] | None:
    """(scheme, host, port) of ``url``; None when it has none to compare (a port out of range)."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    return parts.scheme, (parts.hostname or "").lower(), port


def follow_link(ctx: Context[WeatherSettings], url: Any, source: str) -> str:
    """Return ``url`` if it is safe to fetch: NWS answers link to NWS, so a link must stay on
    the configured origin (``weather_base_url``). ``source``: the address the link came from."""
    if not isinstance(url, str) or not url:
        raise UpstreamError(
            f"{SERVICE} answered without the expected link; try again later.", url=source, cause="no_link"
        )
    origin = _origin(url)
    if origin is None or origin != _origin(ctx.settings.base_url):
        raise UpstreamError(
            f"{SERVICE} answered with a link to another site, which is not followed.", url=url, cause="foreign_link"
        )
    return url


@functools.lru_cache(maxsize=4096)  # callers ask for the same places again and again; bounded
def format_coordinate(value: float) -> str:
    """NWS takes at most four decimals and answers a longer form with a redirect."""
    text = f"{value:.4f}".rstrip("0").rstrip(".")
    return "0" if text in {"-0", ""} else text
