"""A structlog processor that keeps secrets out of every log line."""

from __future__ import annotations

import re
from typing import Any

from skywarden.server.auth.keys import KEY_REGEX

REDACTED = "[REDACTED]"
_SECRET_NAMES = re.compile(r"(authorization|api[_-]?key|token|secret|password|cookie)", re.IGNORECASE)
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]+")

extra_secrets: set[str] = set()


def register_secret(value: str) -> None:
    """Redact this exact string too (e.g. an admin token not in key format)."""
    if value and len(value) >= 8:
        extra_secrets.add(value)


def redact_text(text: str) -> str:
    text = KEY_REGEX.sub(REDACTED, text)
    text = _BEARER.sub(r"\1 " + REDACTED, text)
    for secret in extra_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    return text


def _redact(value: Any, depth: int = 0) -> Any:
    if isinstance(value, str):
        return redact_text(value)
    if depth > 8:
        return value
    if isinstance(value, dict):
        return {
            k: (REDACTED if isinstance(k, str) and _SECRET_NAMES.search(k) and v else _redact(v, depth + 1))
            for k, v in value.items()
        }
    if isinstance(value, (list, tuple)):
        return [_redact(v, depth + 1) for v in value]
    return value


def redact_processor(logger: Any, method_name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event_dict.items()):
        if _SECRET_NAMES.search(key) and value and key not in _SAFE_FIELDS:
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _redact(value)
    return event_dict


_SAFE_FIELDS = frozenset({"key_id", "key_name", "token_kind"})
