"""The server's paths, named once. Who may call a route and which door answers it are declared
where the route is added (``http/routes.py``)."""

from __future__ import annotations

MCP_PATH = "/mcp"
MCP_UPSTREAM_PREFIX = MCP_PATH + "/u"
MCP_UPSTREAM_PATH = MCP_UPSTREAM_PREFIX + "/{upstream}"  # one upstream's tools alone (docs/gateway.md)
HEALTH_PATH = "/api/health"
READY_PATH = "/api/health/ready"
TOOLS_PATH = "/api/mcp/tools"
TOOL_CALL_PATH = "/api/mcp/tools/{toolName}"
ADMIN_PREFIX = "/api/admin"
ADMIN_KEYS_PATH = "/api/admin/keys"
ADMIN_USAGE_PATH = "/api/admin/usage"
ADMIN_DENIALS_PATH = "/api/admin/denials"
ADMIN_UPSTREAMS_PATH = "/api/admin/upstreams"
CONSOLE_PATH = "/admin"
METRICS_PATH = "/metrics"
DOCS_PATH = "/api/docs"
SPEC_PATH = "/api/docs/openapi.json"
DOCS_STATIC_PATH = "/api/docs/static"

# Addresses clients probe before they use a key: OAuth discovery (RFC 9728, RFC 8414, OpenID),
# dynamic client registration, and a browser's icon. Without OAuth configured they answer a
# public 404 problem (``api/discovery.py``): no credential asked, nothing counted, no challenge
# that would start a browser sign-in in MCP clients.
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


def is_console(path: str) -> bool:
    return path == CONSOLE_PATH or path.startswith(CONSOLE_PATH + "/")
