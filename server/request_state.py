"""What one request carries from step to step: one typed object per request.

The outermost middleware that needs it makes it (``open_state``): the trusted-proxy middleware
when there is one (a clone of the request shares it, so the security headers, which see the
original request, read the scheme the proxy vouched for), else the audit middleware; the app
factory tells the audit middleware which. Everything else reaches it through ``state_of``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from skywarden.server.principal import Principal


@dataclass(slots=True)
class Prepaid:
    """Units a request already paid at the door (the per-request charge); the first call uses them."""

    units: int = 0

    def take(self, wanted: int) -> int:
        used = min(self.units, wanted)
        self.units -= used
        return used


@dataclass(slots=True)
class RequestState:
    request_id: str = ""  # step 1, echoed in X-Request-ID and in every problem+json answer
    audit: dict[str, Any] = field(default_factory=dict)  # fields of the request's one audit event
    principal: Principal | None = None  # step 8, once authenticated
    auth_failure: str | None = None  # why a credential was refused (the audit reason; "missing" counts apart)
    prepaid: Prepaid | None = None  # step 9: the unit paid at the door, used by the first tool call
    rate_limit_fields: dict[str, str] | None = None  # RateLimit fields of the key's latest charge, sent on the answer
    rpc_id: str | int | None = (
        None  # the JSON-RPC message's id on /mcp once its body was read, echoed in every later error
    )
    forwarded_https: bool | None = None  # the scheme a trusted proxy vouched for, if it vouched for one

    @property
    def caller(self) -> Principal:
        """The principal, for a handler of a path that is not public (admission set it)."""
        if self.principal is None:
            raise KeyError("principal: this request was not authenticated")
        return self.principal


STATE: web.RequestKey[RequestState] = web.RequestKey("state")


def open_state(request: web.Request) -> RequestState:
    """Make the request's state; only the outermost middleware that needs it calls this."""
    state = request[STATE] = RequestState()
    return state


def state_of(request: web.Request) -> RequestState:
    """The request's state (made by the outermost middleware)."""
    return request[STATE]
