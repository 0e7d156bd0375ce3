"""Audit trail: one event per request (written when the answer is done) and per admin action.

Events go to the dedicated ``skywarden.audit`` logger. They name the key by id
and name, never by value; the path is logged without its query string.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from aiohttp import web

from skywarden.server.errors import ApiError
from skywarden.server.http.context import close_request_context, open_request_context
from skywarden.server.observability import logging_setup
from skywarden.server.observability.denials import RecentDenials, compact
from skywarden.server.request_state import RequestState, open_state, state_of

if TYPE_CHECKING:
    from aiohttp.typedefs import Handler, Middleware

    from skywarden.server.observability.metrics import Metrics

DENIED_STATUSES = frozenset({401, 403, 429})
CLIENT_CLOSED_REQUEST = 499  # nginx's convention for "the client closed the connection first"


def note(request: web.Request, **fields: Any) -> None:
    """Add fields (MCP method, tool, revision, denial reason, ...) to this request's audit event."""
    try:
        state = state_of(request)
    except KeyError:  # a request that never reached the audit middleware
        return
    state.audit.update(fields)


def note_refusal(request: web.Request, error: ApiError) -> None:
    """Record why a request was refused (the kind's audit reason and the error's own fields)."""
    if error.kind.audit_reason is not None:
        note(request, denied=error.kind.audit_reason)
    note(request, **error.audit)


def outcome_for(status: int) -> str:
    if status == CLIENT_CLOSED_REQUEST:
        return "cancelled"
    if status in DENIED_STATUSES:
        return "denied"
    if status >= 400:
        return "error"
    return "allowed"


def _principal_fields(state: RequestState) -> dict[str, Any]:
    principal = state.principal
    if principal is None:
        return {"principal": "anonymous"}
    if principal.kind != "key":
        return {"principal": principal.kind, **principal.identity_fields()}
    return {"principal": "key", "key_id": principal.id, "key_prefix": principal.prefix, "key_name": principal.name}


def _body_bytes(response: web.StreamResponse | None) -> int | None:
    if response is None:
        return None
    if response.prepared:
        return response.body_length
    body = getattr(response, "body", None)
    return len(body) if isinstance(body, bytes) else None


def _request_fields(
    request: web.Request,
    state: RequestState,
    status: int,
    response: web.StreamResponse | None,
    latency: float,
) -> dict[str, Any]:
    """The audit event of one answered request."""
    event = state.audit
    failure = state.auth_failure if status >= 400 else None  # a refused credential is never answered < 400
    reason = failure or event.pop("denied", None)
    if reason is None and status == 429:
        reason = "rate_limited"
    fields = {
        "request_id": state.request_id,
        "client_ip": request.remote,
        "method": request.method,
        "path": request.path,
        **_principal_fields(state),
        **event,
        "status": status,
        "outcome": outcome_for(status),
        "latency_ms": round(latency * 1_000_000) / 1000,  # to the microsecond; round() to an int is the quick one
        "bytes": _body_bytes(response),
    }
    if reason is not None:
        fields["reason"] = reason
    return fields


def audit_middleware_for(
    metrics: Metrics | None,
    denials: RecentDenials | None,
    state_for: Callable[[web.Request], RequestState] = open_state,
) -> Middleware:
    """Steps 1-2 in one layer: the request id (``http/context.py``, echoed in ``X-Request-ID``),
    then one audit event per request when its answer is done, the request metrics, and the
    recent denials; ``metrics`` and ``denials`` come from the app factory. ``state_for`` makes
    the request's state, or finds it when a middleware before this one made it."""

    @web.middleware
    async def audit_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        state = state_for(request)
        request_id, context = open_request_context(request)
        state.request_id = request_id
        started = time.perf_counter()
        event = state.audit
        status = 500
        response: web.StreamResponse | None = None
        try:
            response = await handler(request)
            status = response.status
            response.headers["X-Request-ID"] = request_id
            return response
        except web.HTTPException as exc:
            status = exc.status
            exc.headers["X-Request-ID"] = request_id
            raise
        except (asyncio.CancelledError, ConnectionResetError):
            status = CLIENT_CLOSED_REQUEST  # the client went away: not a server fault
            event["cancelled"] = True
            raise
        finally:
            try:
                latency = time.perf_counter() - started
                fields = _request_fields(request, state, status, response, latency)
                logging_setup.audit_logger().info("request", audit=True, **fields)
                if metrics is not None:
                    metrics.observe_request(request, status, latency, fields)
                if denials is not None and fields["outcome"] == "denied":
                    denials.add(compact({**fields, "time": logging_setup.utc_now_iso()}))  # never waits
            finally:
                close_request_context(context)

    return audit_middleware


def audit_admin_action(
    actor: str,
    request_id: str | None,
    action: str,
    key_id: str,
    *,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
    identity: dict[str, str] | None = None,
) -> None:
    """Record what an admin changed (API or CLI); key views never hold key material. ``identity``
    names an admin who signed in with an access token (subject, issuer, name, email). The key is
    named by id and by its display prefix (after the action: a rotation's new one)."""
    changed = sorted(k for k in (after or {}) if (before or {}).get(k) != (after or {}).get(k))
    logging_setup.audit_logger().info(
        "admin action",
        audit=True,
        action=action,
        key_id=key_id,
        key_prefix=(after or before or {}).get("prefix"),
        actor=actor,
        **{f"actor_{k}": v for k, v in (identity or {}).items()},
        request_id=request_id,
        changed=changed,
        before=before,
        after=after,
    )


def audit_operator_action(actor: str, action: str, **details: Any) -> None:
    """An admin action on something other than one key: the admin token, the store's schema, a
    copy between stores. ``details`` never hold a secret (a store is named without its password)."""
    logging_setup.audit_logger().info("admin action", audit=True, action=action, actor=actor, **details)


def audit_connection(reason: str, client_ip: str | None, status: int) -> None:
    """A connection refused or closed below the request path (parser refusal, idle timeout)."""
    logging_setup.audit_logger().info(
        "connection",
        audit=True,
        client_ip=client_ip,
        status=status,
        outcome=outcome_for(status),
        reason=reason,
    )
