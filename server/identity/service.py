"""The identity part of the app: built from settings, its HTTP client opened on start-up.

Two uses of one verifier: admins signing in to the admin API with a token for
``admin_oidc_audience`` that satisfies ``admin_oidc_rule``, and (resource-server mode, when
``oauth_resource_url`` is set) MCP and REST callers with a token for that resource.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass

import structlog
from aiohttp import web

from skywarden.server.calls.pipeline import ToolForbidden, forbid_tool
from skywarden.server.errors import ApiError
from skywarden.server.identity.claims import ClaimRule, scopes_for_tool, tool_scopes
from skywarden.server.identity.jwks import IdentityHttp, IssuerKeys
from skywarden.server.identity.resource import challenge
from skywarden.server.identity.tokens import TokenVerifier, VerifiedToken
from skywarden.server.plugins.registry import RegisteredTool
from skywarden.server.principal import ALL_TOOLS, Principal, subject_id
from skywarden.server.settings import Settings

log = structlog.get_logger("skywarden.server")
ADMIN_KIND = "admin"
SUBJECT_KIND = "subject"


@dataclass
class Identity:
    verifier: TokenVerifier
    admin_audience: str
    admin_rule: ClaimRule
    resource_url: str
    scope_map: Mapping[str, tuple[str, ...]]
    subject_rate_limit: str | None
    grantable: Callable[[], frozenset[str]]  # what a scope may grant now: tools' names, scope names they declare
    http: IdentityHttp

    @property
    def tool_names(self) -> frozenset[str]:
        return self.grantable()

    @property
    def issuers(self) -> tuple[str, ...]:
        return tuple(self.verifier.issuers)

    @property
    def admin_sign_in(self) -> bool:
        return bool(self.admin_audience)

    @property
    def resource_server(self) -> bool:
        return bool(self.resource_url)

    async def admin_token(self, token: str) -> tuple[Principal, bool]:
        """The admin a token names, and whether it meets ``admin_oidc_rule``: the one check both
        the admin API and the console's sign-on make. Raises ``TokenRefused`` or
        ``IssuerUnavailable``."""
        verified = await self.verifier.verify(token, self.admin_audience)
        return self.admin(verified), self.admin_rule.matches(verified)

    def scope_refusal(self, tool: RegisteredTool, principal: Principal, shown: str) -> ApiError:
        """The 403 for a caller without the tool's scope. For an access token it carries an
        ``insufficient_scope`` challenge naming the scopes that would do (RFC 6750 section 3.1):
        those name the tool in full, whatever name the endpoint shows (``shown``)."""
        if principal.kind != SUBJECT_KIND:
            return forbid_tool(tool, principal, shown)
        scopes = " ".join(scopes_for_tool(tool.name, self.scope_map, tool.scopes))
        return ToolForbidden(
            shown,
            f"This access token may not use the tool {shown!r}: it needs one of the scopes {scopes}.",
            challenge(self.resource_url, "insufficient_scope", scope=scopes),
        )

    def admin(self, token: VerifiedToken) -> Principal:
        return _principal(ADMIN_KIND, token, frozenset(), None)

    def subject(self, token: VerifiedToken) -> Principal:
        scopes = tool_scopes(token.scopes, self.scope_map, self.tool_names)
        return _principal(SUBJECT_KIND, token, scopes, self.subject_rate_limit)


def _principal(kind: str, token: VerifiedToken, scopes: frozenset[str], rate_limit: str | None) -> Principal:
    return Principal(
        kind=kind,
        id=subject_id(token.issuer, token.subject),
        name=token.name,
        scopes=scopes,
        rate_limit=rate_limit,
        issuer=token.issuer,
        subject=token.subject,
        email=token.email,
    )


def build_identity(settings: Settings, grantable: Callable[[], frozenset[str]]) -> Identity | None:
    """None unless an issuer is configured: then nothing of this runs per request. ``grantable``:
    what a token scope may grant now (``ToolRegistry.grantable_names``: the tools' names and the
    scope names they declare; upstreams come and go)."""
    if not settings.oidc_issuers:
        return None
    http = IdentityHttp()
    return Identity(
        verifier=TokenVerifier(
            issuers={issuer: IssuerKeys(issuer, http, settings.oidc_jwks_cooldown) for issuer in settings.oidc_issuers},
            algorithms=frozenset(settings.oidc_algorithms),
            leeway=settings.oidc_leeway,
            max_bytes=settings.oidc_max_token_bytes,
        ),
        admin_audience=settings.admin_oidc_audience,
        admin_rule=ClaimRule.parse(settings.admin_oidc_rule),
        resource_url=settings.oauth_resource_url,
        scope_map=settings.oauth_scope_map,
        subject_rate_limit=settings.oauth_rate_limit or settings.rate_limit or None,
        grantable=grantable,
        http=http,
    )


def unknown_mapped_tools(scope_map: Mapping[str, tuple[str, ...]], tool_names: frozenset[str]) -> dict[str, list[str]]:
    """Each ``oauth_scope_map`` scope -> the names it lists that are no tool nor declared scope
    (they grant nothing)."""
    unknown = {  # ``in``, not a set difference: GrantableNames also holds every name under an upstream's prefix
        scope: sorted({t for t in tools if t != ALL_TOOLS and t not in tool_names})
        for scope, tools in scope_map.items()
    }
    return {scope: tools for scope, tools in unknown.items() if tools}


def identity_context(identity: Identity) -> Callable[[web.Application], AsyncIterator[None]]:
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        unknown = unknown_mapped_tools(identity.scope_map, identity.tool_names)
        if unknown:
            log.warning("oauth_scope_map names tools that do not exist; they grant nothing", unknown=unknown)
        await identity.http.open()
        try:
            yield
        finally:
            await identity.http.close()

    return ctx
