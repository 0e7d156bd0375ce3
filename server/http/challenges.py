"""``WWW-Authenticate: Bearer`` challenges (RFC 6750 section 3, RFC 9728 section 5.1), built in
one place: every refusal that asks for a credential says it the same way."""

from __future__ import annotations

REALM = "skywarden"


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def bearer_challenge(
    *,
    realm: str | None = None,
    resource_metadata: str | None = None,
    error: str | None = None,
    description: str | None = None,
    scope: str | None = None,
) -> str:
    """The parameters given, in this order, each a quoted string."""
    params = (
        ("realm", realm),
        ("resource_metadata", resource_metadata),
        ("error", error),
        ("error_description", description),
        ("scope", scope),
    )
    return "Bearer " + ", ".join(f"{name}={_quoted(value)}" for name, value in params if value)
