"""Who may call a route, and in which format it answers: declared where the route is added.

Every route is added with ``add_route`` and a ``Rule``; authentication (``auth/authenticate.py``)
reads the rule of the matched route, the security headers whether it is public, and ``door_of``
gives the format its errors are answered in. Adding a route is that one call: no other table
says who may call it, and ``tests/test_routes.py`` fails for a route added without a rule.

Two doors: ``/mcp`` answers in JSON-RPC, every other route (REST, admin, docs, metrics) in
problem+json.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from aiohttp import hdrs, web
from aiohttp.typedefs import Handler
from aiohttp.web_urldispatcher import AbstractResource

from skywarden.server.http.paths import (
    ADMIN_PREFIX,
    CONSOLE_PATH,
    DOCS_PATH,
    MCP_PATH,
    MCP_UPSTREAM_PREFIX,
    METRICS_PATH,
)


class Access(enum.Enum):
    PUBLIC = "public"  # no credential
    KEY = "key"  # an API key, or (resource-server mode) an access token
    ADMIN = "admin"  # the admin token, or an admin sign-in access token
    METRICS = "metrics"  # the metrics token, or the admin token


class Door(enum.Enum):
    PROBLEM = "problem+json"
    JSON_RPC = "json-rpc"


@dataclass(frozen=True, slots=True)
class Rule:
    access: Access
    door: Door = Door.PROBLEM


PUBLIC = Rule(Access.PUBLIC)
KEY = Rule(Access.KEY)
ADMIN = Rule(Access.ADMIN)
METRICS = Rule(Access.METRICS)
MCP = Rule(Access.KEY, Door.JSON_RPC)

# The attribute of an aiohttp resource that holds its rule: read per request as one attribute,
# no look-up table (an aiohttp whose resources took no attributes would fail at the first route).
_RULE = "skywarden_rule"


def add_route(
    app: web.Application, method: str, path: str, handler: Handler, *, rule: Rule, allow_head: bool = False
) -> None:
    """Add ``method path`` (and HEAD beside a GET with ``allow_head``), callable as ``rule`` says.

    OPTIONS and ``*`` are refused: an OPTIONS request is a CORS preflight, answered before
    authentication (``http/cors.py``), so a handler for it would run for anyone."""
    if method.upper() in {"OPTIONS", hdrs.METH_ANY}:
        raise ValueError(f"{method} {path}: OPTIONS is the CORS preflight's, answered without a credential")
    for earlier in app.router.resources():  # one path, one rule, however far apart its routes are added
        if earlier.canonical == path:
            declare(earlier, rule)
    resource = app.router.add_resource(path)  # the previous one when it has the same path, as add_route does
    declare(resource, rule)
    for each in ("HEAD", method) if allow_head else (method,):
        resource.add_route(each, handler)


def declare(resource: AbstractResource, rule: Rule) -> None:
    """Give ``rule`` to a resource (the routes of one path): what ``add_route`` does, and what a
    library's own resources need (the OpenAPI document's). One path has one rule."""
    held = rule_of_resource(resource)
    if held is not None and held != rule:
        raise ValueError(f"{resource}: already added with {held}, not {rule}")
    setattr(resource, _RULE, rule)


def rule_of_resource(resource: AbstractResource | None) -> Rule | None:
    return getattr(resource, _RULE, None)


def rule_of(request: web.Request) -> Rule:
    """The rule of the route ``request`` matched; a request that matched none is held to the rule
    of the resource at its path (405: a known path, a method it never takes), else to
    ``unmatched_rule``."""
    rule = rule_of_resource(request.match_info.route.resource)
    if rule is not None:
        return rule
    return _known_path_rule(request) or unmatched_rule(request.path)


def door_of(request: web.Request) -> Door:
    """The format every error of ``request`` is answered in."""
    return rule_of(request).door


def _known_path_rule(request: web.Request) -> Rule | None:
    if not isinstance(request.match_info.http_exception, web.HTTPMethodNotAllowed):
        return None
    path = request.rel_url.path_safe
    for resource in request.app.router.resources():
        info = resource.get_info()
        pattern = info.get("pattern")
        if info.get("path") == path or (pattern is not None and pattern.fullmatch(path)):
            return rule_of_resource(resource)
    return None


def _under(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


def area_rule(path: str) -> Rule | None:
    """The rule of the area ``path`` lies in, if it lies in one: what a request no route answers
    (a 404) is held to, so that an address the server does not have answers as its neighbours do
    (an admin address only to an admin, a console one to anyone, whether or not the console is
    on). ``tests/test_routes.py`` holds every route inside an area to the area's rule."""
    if path == MCP_PATH or _under(path, MCP_UPSTREAM_PREFIX):
        return MCP
    if path == METRICS_PATH:
        return METRICS
    if _under(path, ADMIN_PREFIX):
        return ADMIN
    if _under(path, CONSOLE_PATH) or path.startswith(DOCS_PATH):
        return PUBLIC
    return None


def unmatched_rule(path: str) -> Rule:
    """What a request that matches no route is held to: its area's rule; anywhere else a key is
    needed before even a 404 (deny by default)."""
    rule = area_rule(path)
    return rule if rule is not None else KEY
