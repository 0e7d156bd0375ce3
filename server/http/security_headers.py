"""Security headers on every answer (OWASP Secure Headers Project)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import hdrs, web
from multidict import istr

from skywarden.server.http.paths import DOCS_PATH, is_console
from skywarden.server.http.routes import Access, rule_of
from skywarden.server.request_state import state_of

API_CSP = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# Swagger UI's page needs its own scripts, styles, images and the spec (same origin only).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
    "form-action 'none'"
)

# The admin console: its own scripts, styles and API only; no inline code, never framed.
CONSOLE_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

# Names as multidict's case-insensitive strings: the headers map then skips folding them per answer.
_STATIC = (
    (istr("X-Content-Type-Options"), "nosniff"),
    (istr("X-Frame-Options"), "DENY"),
    (istr("Referrer-Policy"), "no-referrer"),
    (istr("Cross-Origin-Resource-Policy"), "same-origin"),
    (istr("X-XSS-Protection"), "0"),  # OWASP: the old filter is deprecated and exploitable; CSP does the job
)
_CSP = istr("Content-Security-Policy")
_HSTS = istr("Strict-Transport-Security")
_HSTS_VALUE = "max-age=63072000; includeSubDomains"
_OWN_NAMES = frozenset(name for name, _ in _STATIC) | {_CSP}
# The static headers and the CSP as one block per CSP, added in one call when the handler set none of them.
_BLOCKS = {csp: (*_STATIC, (_CSP, csp)) for csp in (API_CSP, DOCS_CSP, CONSOLE_CSP)}


def _csp_for(path: str) -> str:
    return DOCS_CSP if path == DOCS_PATH else CONSOLE_CSP if is_console(path) else API_CSP


def _forwarded_https(request: web.Request) -> bool:
    """The scheme the trusted proxy vouched for, else the connection's own. An answer aiohttp
    gives before any middleware (a request it could not parse) has no state."""
    try:
        vouched = state_of(request).forwarded_https
    except KeyError:
        return request.secure
    return request.secure if vouched is None else vouched


def security_headers_for(trust_forwarded: bool) -> Callable[[web.Request, web.StreamResponse], Awaitable[None]]:
    """The response signal handler: it runs for every answer, errors and streams included, just
    before headers go out. A handler's own value of a header wins (Cache-Control and Server
    excepted). ``trust_forwarded``: a trusted proxy may vouch for HTTPS (``http/proxy.py``)."""

    async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
        headers = response.headers
        csp = _csp_for(request.path)
        if headers.keys().isdisjoint(_OWN_NAMES):
            headers.extend(_BLOCKS[csp])
        else:
            for name, value in _BLOCKS[csp]:
                headers.setdefault(name, value)
        if rule_of(request).access is not Access.PUBLIC:
            # no-store always; an event stream's no-transform (proxies must not buffer or compress it) stays
            cache_control = headers.get(hdrs.CACHE_CONTROL)
            no_transform = cache_control is not None and "no-transform" in cache_control
            headers[hdrs.CACHE_CONTROL] = "no-store, no-transform" if no_transform else "no-store"
        if _forwarded_https(request) if trust_forwarded else request.secure:
            headers.setdefault(_HSTS, _HSTS_VALUE)
        headers[hdrs.SERVER] = "skywarden"  # no version banner

    return on_response_prepare
