"""Audit events: a dedicated ``skywarden.audit`` logger, one event per request and per admin action."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web
from skywarden.server.appkeys import AUDIT, PRINCIPAL

audit_log = structlog.get_logger("skywarden.audit")


def audit_admin_action(
    request: web.Request, action: str, key_id: str, *, before: dict[str, Any] | None, after: dict[str, Any] | None
) -> None:
    """Record what an admin changed; views never hold key material."""
    principal = request.get(PRINCIPAL)
    changed = sorted(k for k in (after or {}) if (before or {}).get(k) != (after or {}).get(k))
    audit_log.info(
        "admin action",
        audit=True,
        action=action,
        key_id=key_id,
        actor=principal.name if principal else "cli",
        changed=changed,
        before=before,
        after=after,
    )


def audit_cli_action(action: str, key_id: str, *, before: dict[str, Any] | None, after: dict[str, Any] | None) -> None:
    changed = sorted(k for k in (after or {}) if (before or {}).get(k) != (after or {}).get(k))
    audit_log.info(
        "admin action",
        audit=True,
        action=action,
        key_id=key_id,
        actor="cli",
        changed=changed,
        before=before,
        after=after,
    )


def note(request: web.Request, **fields: Any) -> None:
    """Add fields (MCP method, tool, revision, ...) to this request's audit event."""
    event = request.get(AUDIT)
    if event is not None:
        event.update(fields)
