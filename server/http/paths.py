"""Every route fact in one place: the paths, which are public, and which door answers them.

Two doors: /mcp answers in JSON-RPC, everything else (REST, admin, docs,
metrics) in problem+json. Middlewares and handlers ask here instead of
comparing strings of their own.
"""

from __future__ import annotations

MCP_PATH = "/mcp"
HEALTH_PATH = "/api/health"
READY_PATH = "/api/health/ready"
TOOLS_PATH = "/api/mcp/tools"
TOOL_CALL_PATH = "/api/mcp/tools/{toolName}"
ADMIN_PREFIX = "/api/admin"
ADMIN_KEYS_PATH = "/api/admin/keys"
ADMIN_USAGE_PATH = "/api/admin/usage"
ADMIN_DENIALS_PATH = "/api/admin/denials"
CONSOLE_PATH = "/admin"
METRICS_PATH = "/metrics"
DOCS_PATH = "/api/docs"
SPEC_PATH = "/api/docs/openapi.json"
DOCS_STATIC_PATH = "/api/docs/static"

# Addresses clients probe before they use a key: OAuth discovery (RFC 9728, RFC 8414, OpenID),
# dynamic client registration, and a browser's icon. Without OAuth configured they answer a
# public 404 problem: no credential asked, nothing counted, no challenge that would start a
# browser sign-in in MCP clients.
PROBE_PATHS = frozenset(
    {
        "/.well-known/oauth-protected-resource",
        "/.well-known/oauth-protected-resource" + MCP_PATH,
        "/.well-known/oauth-authorization-server",
        "/.well-known/oauth-authorization-server" + MCP_PATH,
        "/.well-known/openid-configuration",
        "/.well-known/openid-configuration" + MCP_PATH,
        MCP_PATH + "/.well-known/openid-configuration",
        "/register",
        "/authorize",
        "/token",
        "/favicon.ico",
    }
)
HEALTH_PATHS = frozenset({HEALTH_PATH, READY_PATH})  # also answered over plain HTTP (load-balancer probes)
PUBLIC_PATHS = HEALTH_PATHS | PROBE_PATHS | {CONSOLE_PATH}
PUBLIC_PREFIXES = (DOCS_PATH, CONSOLE_PATH + "/")


def is_public(path: str) -> bool:
    """Answered without any credential: health, readiness, the OpenAPI document and Swagger UI,
    the admin console's page and assets (it signs in against the admin API), and the probe
    addresses (404 while OAuth is not configured)."""
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def is_console(path: str) -> bool:
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")


def is_admin(path: str) -> bool:
    return path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/")


def is_mcp(path: str) -> bool:
    """The JSON-RPC door; every other path is the problem+json door."""
    return path == MCP_PATH
