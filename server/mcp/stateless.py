"""The stateless revision 2026-07-28: no initialize, no session, every POST self-contained.

The checks run in the official SDK's order: envelope shape, duplicated routing
headers, ``params._meta``, routing headers against the body, then the version.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from skywarden.server.errors import METHOD_NOT_ALLOWED, NOT_ACCEPTABLE, ApiError
from skywarden.server.http.body import BodyReader
from skywarden.server.jsonutil import dumps
from skywarden.server.mcp import protocol as p
from skywarden.server.mcp.dispatch import run_request
from skywarden.server.mcp.methods import McpMethods, discover_result
from skywarden.server.mcp.streams import ChangeStreams, notification
from skywarden.server.mcp.wire import accepts, decode_header_value, error_answer, read_message
from skywarden.server.observability.audit import note
from skywarden.server.request_state import state_of

LISTEN = "subscriptions/listen"
ACKNOWLEDGED = "notifications/subscriptions/acknowledged"
SUBSCRIPTION_ID = "io.modelcontextprotocol/subscriptionId"  # in every listen frame's _meta
NAME_PARAM = {"tools/call": "name", "prompts/get": "name", "resources/read": "uri"}
HANDLERS = {"server/discover": lambda params: discover_result()}


def _status(error: p.RpcError) -> int:
    return p.MODERN_ERROR_STATUS.get(error.code, 200)


def _unsupported(requested: Any, status: int | None = None) -> p.RpcError:
    return p.RpcError(
        p.UNSUPPORTED_VERSION,
        "Unsupported protocol version",
        data={"supported": list(p.MODERN_VERSIONS), "requested": requested},
        status=status,
    )


def check_envelope(request: web.Request, message: dict[str, Any]) -> None:
    """Raise the first RpcError the request's envelope and routing headers earn."""
    for name in p.ROUTING_HEADERS:
        if len(request.headers.getall(name, ())) > 1:
            raise p.RpcError(p.HEADER_MISMATCH, f"{name} header appears more than once")
    params = message.get("params")
    if not isinstance(params, dict):
        params = {}
    meta = params.get("_meta")
    if not isinstance(meta, dict):
        raise p.RpcError(
            p.INVALID_PARAMS,
            f"params._meta must be an object carrying {p.META_PROTOCOL_VERSION!r} and {p.META_CLIENT_CAPABILITIES!r}",
        )
    missing = [k for k in (p.META_PROTOCOL_VERSION, p.META_CLIENT_CAPABILITIES) if k not in meta]
    if missing:
        raise p.RpcError(p.INVALID_PARAMS, f"params._meta is missing {', '.join(missing)}")
    version = meta[p.META_PROTOCOL_VERSION]
    if request.headers.get(p.VERSION_HEADER) != version:
        raise p.RpcError(p.HEADER_MISMATCH, "MCP-Protocol-Version header does not match params._meta")
    method = message["method"]
    if decode_header_value(request.headers.get(p.METHOD_HEADER)) != method:
        raise p.RpcError(p.HEADER_MISMATCH, "Mcp-Method header does not match the method")
    name_key = NAME_PARAM.get(method)
    if name_key is not None and params.get(name_key) is not None:
        if decode_header_value(request.headers.get(p.NAME_HEADER)) != params[name_key]:
            raise p.RpcError(p.HEADER_MISMATCH, f"Mcp-Name header does not match params.{name_key}")
    if not isinstance(version, str):
        raise p.RpcError(p.INVALID_PARAMS, "the protocol version in params._meta must be a string")
    if version not in p.MODERN_VERSIONS:
        raise _unsupported(version)


class StatelessEra:
    def __init__(self, methods: McpMethods, body_reader: BodyReader, streams: ChangeStreams) -> None:
        self.methods = methods
        self.body_reader = body_reader
        self.streams = streams

    async def _listen(self, request: web.Request, message: dict[str, Any], methods: McpMethods) -> web.StreamResponse:
        """``subscriptions/listen``: acknowledged with the part of the filter this server honours
        (``toolsListChanged``: it offers no prompts or resources), then a
        ``notifications/tools/list_changed`` at each change, every frame stamped with the request's
        id; the final result is the graceful close."""
        wanted = message["params"].get("notifications")
        if not isinstance(wanted, dict):
            raise p.RpcError(p.INVALID_PARAMS, "params.notifications must be an object (the subscription filter)")
        tools = wanted.get("toolsListChanged")
        if tools is not None and not isinstance(tools, bool):
            raise p.RpcError(p.INVALID_PARAMS, "params.notifications.toolsListChanged must be true or false")
        meta = {SUBSCRIPTION_ID: message["id"]}
        honored = {"toolsListChanged": True} if tools else {}
        note(request, mcp_method=LISTEN)
        stream = self.streams.add(state_of(request).caller, view=methods.view)
        if not honored:
            stream.ended.set()  # nothing this server could ever send: acknowledged, then closed
        return await self.streams.serve(
            request,
            stream,
            change=notification("notifications/tools/list_changed", {"_meta": meta}),
            first=notification(ACKNOWLEDGED, {"notifications": honored, "_meta": meta}),
            last=dumps(p.result_message(message["id"], {"_meta": meta, "resultType": "complete"})),
        )

    async def handle(
        self, request: web.Request, version_header: str, methods: McpMethods | None = None
    ) -> web.StreamResponse:
        """``methods``: the endpoint's view of the tools (``/mcp/u/<name>``), else every tool."""
        methods = methods if methods is not None else self.methods
        note(request, protocol_version=version_header[:40])
        if request.method != "POST":
            raise ApiError(METHOD_NOT_ALLOWED, f"{version_header} takes POST only.", headers={"Allow": "POST"})
        message = await read_message(request, self.body_reader)
        if isinstance(message, dict) and "id" not in message:
            if not p.is_notification(message):
                raise p.RpcError(p.INVALID_REQUEST, "Not a valid JSON-RPC notification", status=400)
            note(request, mcp_method=message["method"])
            if version_header not in p.MODERN_VERSIONS:
                raise _unsupported(version_header[:40], status=400)
            return web.Response(status=202)
        if not p.is_request(message):
            reason = "Batches are not supported" if isinstance(message, list) else "Not a valid JSON-RPC request"
            raise p.RpcError(p.INVALID_REQUEST, reason, status=400)
        if message["method"] == LISTEN and not accepts(request)[1]:
            raise ApiError(NOT_ACCEPTABLE, "Accept must include text/event-stream: a listen answer is a stream")
        try:
            check_envelope(request, message)
            if message["method"] == LISTEN:
                return await self._listen(request, message, methods)
        except p.RpcError as error:
            note(request, mcp_method=message["method"], rpc_error=error.code)
            return error_answer(message["id"], error, _status(error))
        capabilities = message["params"]["_meta"][p.META_CLIENT_CAPABILITIES]
        capabilities = capabilities if isinstance(capabilities, dict) else {}
        return await run_request(request, methods, message, version_header, HANDLERS, _status, capabilities)
