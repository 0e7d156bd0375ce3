"""Security headers on every answer (OWASP Secure Headers Project)."""

from __future__ import annotations

from aiohttp import hdrs, web
from multidict import istr

from skywarden.server.appkeys import FORWARDED_HTTPS
from skywarden.server.http.paths import DOCS_PATH, is_console, is_public

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


async def on_response_prepare(request: web.Request, response: web.StreamResponse) -> None:
    """Signal handler: runs for every answer, errors and streams included, just before headers go out."""
    headers = response.headers
    for name, value in _STATIC:
        headers.setdefault(name, value)
    path = request.path
    csp = DOCS_CSP if path == DOCS_PATH else CONSOLE_CSP if is_console(path) else API_CSP
    headers.setdefault(_CSP, csp)
    if not is_public(path):
        # no-store always; an event stream's no-transform (proxies must not buffer or compress it) stays
        transform = ", no-transform" if "no-transform" in headers.get(hdrs.CACHE_CONTROL, "") else ""
        headers[hdrs.CACHE_CONTROL] = "no-store" + transform
    if request.get(FORWARDED_HTTPS, request.secure):
        headers.setdefault(_HSTS, "max-age=63072000; includeSubDomains")
    headers[hdrs.SERVER] = "skywarden"  # no version banner
