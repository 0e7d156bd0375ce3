"""Who is calling: the result of authentication, read by authorization."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

ALL_TOOLS = "*"
METERED_KINDS = frozenset({"key", "subject"})  # charged to their own rate limit and concurrency


@dataclass(frozen=True, slots=True)
class Principal:
    kind: str  # "key", "subject" (an OAuth access token), "admin" or "metrics"
    id: str  # a key's id; for a token, an id made of its issuer and subject (``subject_id``)
    name: str
    scopes: frozenset[str] = field(default_factory=frozenset)
    rate_limit: str | None = None
    issuer: str | None = None  # set for a principal signed in with an access token
    subject: str | None = None  # the token's sub
    email: str | None = None
    prefix: str | None = None  # a key's display prefix, as presented (a rotated-out key keeps its own)

    @property
    def metered(self) -> bool:
        return self.kind in METERED_KINDS

    def identity_fields(self) -> dict[str, str]:
        """Who signed in with an access token, for audit events (nothing for keys and the admin token)."""
        if self.issuer is None:
            return {}
        found = {"subject": self.subject, "issuer": self.issuer, "subject_name": self.name, "email": self.email}
        return {k: v for k, v in found.items() if v}

    def allows(self, grants: frozenset[str]) -> bool:
        """Whether any of a tool's grants (``RegisteredTool.grants``: ``*``, its name and its
        declared scopes) is among this caller's scopes."""
        return not self.scopes.isdisjoint(grants)

    @property
    def is_admin(self) -> bool:
        return self.kind == "admin"


def subject_id(issuer: str, subject: str) -> str:
    """One short id per (issuer, sub): two issuers may use the same sub, and no key id looks like it."""
    return "sub_" + hashlib.sha256(f"{issuer}\n{subject}".encode()).hexdigest()[:24]
