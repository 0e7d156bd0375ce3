"""Steps 7-9 of the request path in one middleware: who is asking, and may they come in now.

Authentication (``auth/authenticate.py``) sets the principal or refuses; a refused credential
is counted against its address, which may turn the 401 into a 429 (``calls/ratelimit.py``);
an admitted key is charged one unit of its own limit, and the answer carries its RateLimit
fields. Three steps, one layer: a request pays one await for all of them.
"""

from __future__ import annotations

from aiohttp import web

from skywarden.server.appkeys import RATE_LIMIT_FIELDS
from skywarden.server.auth.authenticate import authenticate
from skywarden.server.calls.ratelimit import charge_request, count_refusal
from skywarden.server.errors import UNAUTHORIZED, ApiError


@web.middleware
async def admission_middleware(request: web.Request, handler):
    try:
        await authenticate(request)
    except ApiError as exc:
        if exc.kind is UNAUTHORIZED:
            await count_refusal(request)
        raise
    charged = await charge_request(request)
    response = await handler(request)
    if charged and not response.prepared:
        response.headers.update(request[RATE_LIMIT_FIELDS])  # the handler may have charged more (a batch)
    return response
