"""A key's own rate as its store holds it, for the limiter: the windows, or the key's refusal.

``rates.stored_rate`` says what a stored rate means. One that allows no request (an amount of
0) or cannot be a rate (``1/0second``) refuses every request with the key, with a 403 that says
so, rather than letting the key fall back to a looser rate; the problem is logged once per key
and shown as ``rate_limit_problem`` in the admin API's key view and by ``skywarden db status``.
"""

from __future__ import annotations

import structlog

from skywarden.server.calls.counters import Windows
from skywarden.server.errors import KEY_RATE_UNUSABLE, ApiError
from skywarden.server.principal import Principal
from skywarden.server.rates import stored_rate

log = structlog.get_logger("skywarden.server")
MAX_REPORTED = 10_000  # (key, rate) pairs already logged; forgotten all at once when exceeded
MAX_RATE_SHOWN = 100

_reported: set[tuple[str, str]] = set()


def key_windows(principal: Principal) -> Windows:
    """The windows of ``principal``'s own (non-empty) rate, or the ``ApiError`` refusing it."""
    text = principal.rate_limit or ""
    found = stored_rate(text)
    if found.problem is None:
        return found.windows
    if (principal.id, text) not in _reported:
        if len(_reported) >= MAX_REPORTED:
            _reported.clear()
        _reported.add((principal.id, text))
        log.warning(
            "stored rate limit unusable; every request with the key is refused until it is changed",
            key_id=principal.id,
            rate_limit=text[:MAX_RATE_SHOWN],
            problem=found.problem,
        )
    shown = repr(text[:MAX_RATE_SHOWN])
    if found.allows_nothing:
        detail = f"This key's rate limit {shown} allows no request at all; an administrator can change it."
    else:
        detail = (
            f"This key's stored rate limit {shown} cannot be used: {found.problem}. "
            "The key is refused until an administrator gives it a valid rate_limit."
        )
    raise ApiError(KEY_RATE_UNUSABLE, detail, audit={"limit": "key"})
