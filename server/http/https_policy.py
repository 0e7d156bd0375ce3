"""``require_https``: refuse plain HTTP; redirect GET/HEAD only to a host we vouch for.

The redirect goes to ``public_url`` when it is set, else to the request's own Host only if
that host is named in ``allowed_hosts`` (a wildcard does not count) or is a loopback name. A
Host that was merely let through is never echoed into a Location: everything else gets 403.
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web

from skywarden.server.errors import HTTPS_REQUIRED, ApiError
from skywarden.server.hosts import hostname_of
from skywarden.server.http.paths import HEALTH_PATHS
from skywarden.server.loopback import is_loopback
from skywarden.server.settings import Settings

REFUSAL = "This server only accepts HTTPS; send the request to the https:// URL."


def redirect_target(request: web.Request, settings: Settings) -> str | None:
    if settings.public_url:
        return settings.public_url + request.rel_url.path_qs
    host = hostname_of(request.headers.get("Host"))
    if host and (host in settings.allowed_hosts or is_loopback(host)):
        return str(request.url.with_scheme("https"))
    return None


def https_check(settings: Settings) -> Callable[[web.Request], None]:
    """An edge check (``auth/admission.py``), for ``require_https``. Health and readiness stay
    on plain HTTP: a load balancer probes each instance directly, and they carry no credential
    or data."""

    def check_https(request: web.Request) -> None:
        if request.secure or request.path in HEALTH_PATHS:
            return
        if request.method in ("GET", "HEAD"):
            target = redirect_target(request, settings)
            if target is not None:
                raise web.HTTPPermanentRedirect(target)
        raise ApiError(HTTPS_REQUIRED, REFUSAL)

    return check_https
