"""Steps 4-9 of the request path in one middleware: may this request reach a handler, now?

- Edge checks (steps 4-6): plain functions that look only at the request line and headers
  (Host/Origin, the HTTPS policy, the announced body size), each in the module of its concern,
  listed in order by the app factory. Each raises an ``ApiError`` (or a redirect).
- Authentication (step 8, ``auth/authenticate.py``) sets the principal or refuses; a refused
  credential is counted against its address (step 7), which may turn the 401 into a 429.
- An admitted key is charged one unit of its own limit (step 9, ``calls/ratelimit.py``), and
  the answer carries its RateLimit fields.

One layer for all of them: each middleware layer costs every request an await.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from aiohttp import web

from skywarden.server.auth.authenticate import Authentication
from skywarden.server.calls.ratelimit import RateLimits, charge_request, count_refusal
from skywarden.server.errors import UNAUTHORIZED, ApiError
from skywarden.server.request_state import state_of

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

EdgeCheck = Callable[[web.Request], None]


def admission_middleware_for(
    edge_checks: Sequence[EdgeCheck], authenticate: Authentication, limits: RateLimits
) -> Middleware:
    checks = tuple(edge_checks)

    @web.middleware
    async def admission_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            for check in checks:
                check(request)
            principal = await authenticate(request)
        except ApiError as exc:
            await authenticate.note_refused_key(request, exc)
            if exc.kind is UNAUTHORIZED:
                await count_refusal(request, limits)
            raise
        charged = principal is not None and await charge_request(request, principal, limits)
        response = await handler(request)
        if charged and not response.prepared:
            fields = state_of(request).rate_limit_fields  # the handler may have charged more (a batch)
            if fields:
                response.headers.update(fields)
        return response

    return admission_middleware
