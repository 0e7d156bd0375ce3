"""The shared client plugins use for outside APIs, and each plugin's view of it (``context.http``).

One pool (``Upstream``: bounded connections, timeouts), a size cap on every answer, and a small
cache that honours ``Cache-Control``; each plugin gets a ``PluginHttp`` over it with its own
User-Agent, its own cache entries and the SSRF guard (``ssrf.py``). Failures become
``UpstreamError`` (a ``ToolError``), so a tool never turns an upstream fault into an HTTP 500.
"""

from __future__ import annotations

import contextvars
import functools
import json
import math
import re
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver
from multidict import CIMultiDict, CIMultiDictProxy
from yarl import URL

from skywarden.server.outbound import client_session
from skywarden.server.plugins.request_form import (
    checked_headers,
    checked_method,
    checked_params,
    checked_target,
    checked_timeout,
    encoded_body,
    headers_digest,
)
from skywarden.server.plugins.ssrf import (
    AddressPolicy,
    BlockedAddress,
    GuardedResolver,
    Origin,
    literal_address,
    origin_of,
    origins,
    parse_networks,
)
from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolError
from skywarden.tools.http import HttpResponse, UpstreamError
from skywarden.tools.settings import Secret

_MAX_AGE = re.compile(r"(?:^|,)\s*(?:s-maxage|max-age)\s*=\s*\"?(\d+)", re.IGNORECASE)
_NO_CACHE = re.compile(r"(?:^|,)\s*(?:no-store|no-cache|private)\b", re.IGNORECASE)


def cache_ttl(cache_control: str | None) -> float:
    """Seconds an answer may be reused, from its Cache-Control header (0 = not at all)."""
    if not cache_control or _NO_CACHE.search(cache_control):
        return 0.0
    match = _MAX_AGE.search(cache_control)
    return float(match.group(1)) if match else 0.0


@dataclass
class Freshness:
    """Until when a result made from upstream answers stays true: the earliest expiry of the
    answers it was made from. An answer that was not cached, or a request that failed, makes it
    stale at once; a result that consulted no upstream at all has no freshness to go by."""

    until: float = math.inf  # no answer seen yet

    @property
    def consulted(self) -> bool:
        return self.until != math.inf

    def saw(self, expires: float | None) -> None:
        self.until = min(self.until, -math.inf if expires is None else expires)


_freshness: contextvars.ContextVar[Freshness | None] = contextvars.ContextVar("upstream_freshness", default=None)


class FreshnessTracker:
    """``with FreshnessTracker() as freshness``: record the expiry of every upstream answer used
    inside the block (tasks it starts too). A class, not a generator-based context manager: it
    runs on every call of a ``cache_results`` tool that is not answered from a kept result."""

    __slots__ = ("_token",)

    def __enter__(self) -> Freshness:
        freshness = Freshness()
        self._token = _freshness.set(freshness)
        return freshness

    def __exit__(self, *exc_info: object) -> None:
        _freshness.reset(self._token)


_LABEL_CHARS = re.compile(r"[^a-z0-9]+")
MAX_LABEL_LENGTH = 40
CONNECT_TIMEOUT_SECONDS = 5.0
DNS_CACHE_SECONDS = 300
READ_CHUNK_BYTES = 64 * 1024
DEFAULT_SERVICE = "The upstream API"


@functools.lru_cache(maxsize=256)
def service_label(service: str) -> str:
    """A short metric label from a service's name ("The NWS API" -> "the_nws_api")."""
    return _LABEL_CHARS.sub("_", service.lower()).strip("_")[:MAX_LABEL_LENGTH] or "upstream"


@dataclass
class _Sessions:
    """Two pools: ``checked`` reaches only the addresses the policy allows (its resolver refuses
    the others, so every connection in it was checked when opened and any caller may reuse it);
    ``configured`` reaches the origins operators configured, and carries only the requests of a
    plugin whose operator configured that origin."""

    checked: aiohttp.ClientSession
    configured: aiohttp.ClientSession
    resolvers: tuple[AbstractResolver, ...]


@dataclass
class Upstream:
    """The pool every plugin's client shares. Complete when built; its connections open with
    ``open()`` inside the event loop. Plugins get a view each (``for_plugin``); the pool's own
    ``get_json`` and ``request`` are the server's (and tests'): they send ``user_agent`` and
    trust every origin, so they are never handed to a plugin."""

    user_agent: str  # also the User-Agent of a plugin that names none
    timeout: float
    max_bytes: int
    cache: TTLCache
    max_connections: int = 20  # per pool (see _Sessions)
    observer: Callable[[str, float, bool], None] | None = None  # (service label, seconds, failed)
    allowed_networks: tuple[str, ...] = ()  # upstream_allowed_networks: besides public addresses
    resolver: Callable[[], AbstractResolver] | None = None  # makes the resolver under the guard; default aiohttp's
    _sessions: _Sessions | None = None
    policy: AddressPolicy = field(init=False)
    trusting: PluginHttp = field(init=False)  # no plugin's: every origin trusted (the server's own calls, tests)

    def __post_init__(self) -> None:
        self.policy = AddressPolicy(parse_networks(self.allowed_networks))
        self.trusting = PluginHttp(self, None, self.user_agent, DEFAULT_SERVICE, None)

    async def open(self) -> None:
        inner = self._new_resolver()
        plain = self._new_resolver()
        self._sessions = _Sessions(
            checked=self._new_session(GuardedResolver(self.policy, inner)),
            configured=self._new_session(plain),
            resolvers=(inner, plain),
        )

    def _new_resolver(self) -> AbstractResolver:
        return self.resolver() if self.resolver is not None else aiohttp.DefaultResolver()

    def _new_session(self, resolver: AbstractResolver) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.max_connections, limit_per_host=0, ttl_dns_cache=DNS_CACHE_SECONDS, resolver=resolver
        )
        return client_session(connector=connector, timeout=self.client_timeout(self.timeout), raise_for_status=False)

    @staticmethod
    def client_timeout(seconds: float) -> aiohttp.ClientTimeout:
        return aiohttp.ClientTimeout(total=seconds, connect=min(CONNECT_TIMEOUT_SECONDS, seconds))

    def for_plugin(
        self, name: str, *, user_agent: str, service: str, trusted_origins: Iterable[object] = ()
    ) -> PluginHttp:
        """The client a plugin's tools get (``context.http``): this pool, the plugin's User-Agent
        (this pool's when empty), ``service`` as the default name in error texts and metrics,
        and the origins of ``trusted_origins`` (those values that are http(s) URLs: the plugin's
        URL settings, which its operator chose), which the SSRF guard lets through."""
        return PluginHttp(self, name, user_agent or self.user_agent, service or name, origins(trusted_origins))

    async def close(self) -> None:
        sessions, self._sessions = self._sessions, None
        if sessions is not None:
            await sessions.checked.close()
            await sessions.configured.close()
            for resolver in sessions.resolvers:
                await resolver.close()

    def _observe(self, label: str, started: float, failed: bool) -> None:
        if self.observer is not None:
            self.observer(label, time.perf_counter() - started, failed)

    async def exchange(
        self,
        caller: PluginHttp,
        method: str,
        url: str,
        target: URL,
        service: str,
        headers: CIMultiDict[str],
        body: bytes | None,
        seconds: float,
    ) -> tuple[int, CIMultiDictProxy[str], bytes, str]:
        """Send one request for ``caller`` and read its answer whole: (status, headers, body,
        content type). The SSRF guard decides which pool carries it, and refuses it there."""
        sessions = self._sessions
        if sessions is None:
            raise UpstreamError(
                f"{service} cannot be reached: the server is not started.", url=url, cause="not_started"
            )
        host = target.raw_host or ""
        try:
            if caller.trusts(target):
                session = sessions.configured
            else:
                session = sessions.checked
                if literal_address(host) and not self.policy.allows(host):  # aiohttp resolves no literal
                    raise BlockedAddress(host)
            async with session.request(
                method,
                target,
                headers=headers,
                data=body,
                timeout=self.client_timeout(seconds),
                allow_redirects=False,
            ) as resp:
                content = await self._read_capped(resp, service, url)
                return resp.status, resp.headers, content, resp.content_type
        except BlockedAddress:
            shown = f"[{host}]" if ":" in host else host
            raise UpstreamError(
                f"{service}: the address of {shown} is not allowed (private or local network); "
                "an operator may allow it with the setting upstream_allowed_networks.",
                url=url,
                cause="blocked_address",
            ) from None
        except TimeoutError:
            raise UpstreamError(
                f"{service} did not answer within {seconds:g} seconds; try again later.",
                url=url,
                cause="TimeoutError",
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{service} could not be reached ({type(exc).__name__}); try again later.",
                url=url,
                cause=type(exc).__name__,
            ) from None

    async def _read_capped(self, resp: aiohttp.ClientResponse, service: str, url: str) -> bytes:
        if resp.method == "HEAD":  # its Content-Length announces the GET's body, not one to read
            return b""
        too_large = f"{service} sent an answer larger than {self.max_bytes} bytes."
        if resp.content_length is not None and resp.content_length > self.max_bytes:
            raise UpstreamError(too_large, status=resp.status, url=url, cause="too_large")
        chunks = []
        size = 0
        async for chunk in resp.content.iter_chunked(READ_CHUNK_BYTES):
            size += len(chunk)
            if size > self.max_bytes:
                raise UpstreamError(too_large, status=resp.status, url=url, cause="too_large")
            chunks.append(chunk)
        return b"".join(chunks)


class PluginHttp:
    """One plugin's client (``context.http``, the ``HttpClient`` protocol) over the shared pool:
    its User-Agent on every request, its own cache entries, and the SSRF guard, which lets
    through only public addresses, those in ``upstream_allowed_networks``, and the origins
    its operator configured (``trusted``; ``None``: every origin, for the pool's own calls)."""

    __slots__ = ("_cache", "_label", "_name", "_pool", "_service", "_trusted", "user_agent")

    def __init__(
        self, pool: Upstream, name: str | None, user_agent: str, service: str, trusted: frozenset[Origin] | None
    ) -> None:
        self._pool = pool
        self._cache = pool.cache
        self._name = name
        self.user_agent = user_agent
        self._service = service
        self._label = service_label(service)
        self._trusted = trusted

    def __repr__(self) -> str:
        return f"PluginHttp({self._name!r})"

    def trusts(self, target: URL) -> bool:
        return self._trusted is None or origin_of(target) in self._trusted

    async def get_json(
        self,
        url: str,
        *,
        service: str | None = None,
        accept: str = "application/json",
        label: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
        derive: Callable[[Any], Any] | None = None,
    ) -> Any:
        """GET ``url`` and return its JSON (status 200 only); ``service`` names the upstream in
        error texts (default: the plugin's), ``label`` (a short identifier, derived from
        ``service`` when not given) in metrics. Answers are cached per ``Cache-Control``, apart
        for each plugin and for each set of request headers.

        With ``derive`` (a pure function of the document, which may raise ``ToolError``) the answer
        is ``derive(document)``, cached beside the document until it expires: a tool that reshapes
        an upstream answer does that once per answer, not once per call. The shape is kept under the
        function itself, not its name: two functions never share a shape (closures made by one
        factory have one name). Never mutate the result."""
        sent = checked_headers(headers, service or self._service, url) if headers else None
        key: Hashable
        if sent is None and self._name is None:
            key = f"{accept} {url}"  # the pool's own answers keep plugin API 1's keys
        else:
            key = (self._name, accept, url, headers_digest(sent) if sent else None)
        kept_as: Hashable = key if derive is None else (key, derive)
        freshness = _freshness.get()
        if freshness is None:
            return await self._answer(key, kept_as, url, service, accept, label, sent, derive)
        try:
            found = await self._answer(key, kept_as, url, service, accept, label, sent, derive)
        except BaseException:
            freshness.saw(None)
            raise
        freshness.saw(self._cache.expires(kept_as))
        return found

    async def _answer(
        self,
        key: Hashable,
        kept_as: Hashable,
        url: str,
        service: str | None,
        accept: str,
        label: str | None,
        sent: dict[str, str] | None,
        derive: Callable[[Any], Any] | None,
    ) -> Any:
        """The answer for ``key``, or ``derive`` of it, kept under ``kept_as``."""
        cache = self._cache
        if derive is None:
            cached = cache.get(key)
            return cached if cached is not None else await self._get(key, url, service, accept, label, sent)
        derived = cache.get(kept_as, count=False)
        if derived is not None:
            cache.hits += 1
            return derived
        document = cache.get(key)
        if document is None:
            document = await self._get(key, url, service, accept, label, sent)
        try:
            derived = derive(document)
        except UpstreamError:
            raise
        except ToolError as exc:  # the answer is not what the tool expects: name where it came from
            raise UpstreamError(str(exc), url=url, cause="unexpected_format") from exc
        expires = cache.expires(key)
        if expires is not None and derived is not None:
            cache.put_until(kept_as, derived, expires)
        return derived

    async def _get(
        self, key: Hashable, url: str, service: str | None, accept: str, label: str | None, sent: dict[str, str] | None
    ) -> Any:
        name = service or self._service
        target = checked_target(url, name)
        headers = CIMultiDict({"User-Agent": self.user_agent, "Accept": accept})
        if sent:
            headers.update(sent)
        shown = label or (self._label if name is self._service else service_label(name))
        started = time.perf_counter()
        try:
            status, answer_headers, body, content_type = await self._pool.exchange(
                self, "GET", url, target, name, headers, None, self._pool.timeout
            )
            data = _document(status, answer_headers, body, content_type, name, url)
        except UpstreamError:
            self._pool._observe(shown, started, failed=True)
            raise
        self._pool._observe(shown, started, failed=False)
        self._cache.put(key, data, cache_ttl(answer_headers.get("Cache-Control")))
        return data

    async def request(
        self,
        method: str,
        url: str,
        *,
        service: str | None = None,
        label: str | None = None,
        headers: Mapping[str, str | Secret] | None = None,
        params: Mapping[str, str | Secret] | None = None,
        json: Any = None,
        data: bytes | str | None = None,
        timeout: float | None = None,  # noqa: ASYNC109 (a per-request cap, passed to the client)
    ) -> HttpResponse:
        """Send ``method`` to ``url`` and return the answer whatever its status (redirects are
        returned, not followed). ``json`` (any JSON value but ``null``) or ``data`` (bytes, or
        text sent as UTF-8) is the body, with a Content-Type unless ``headers`` gives one;
        ``params`` are added to the URL's query; ``timeout`` may shorten the server's
        ``upstream_timeout``, never lengthen it. Never cached: a result made with it is never
        kept either. Raises ``UpstreamError`` for a malformed request (cause ``invalid_request``),
        a refused address (``blocked_address``), a transport failure or timeout, and an answer
        over the size cap (``too_large``)."""
        freshness = _freshness.get()
        if freshness is not None:
            freshness.saw(None)
        name = service or self._service
        verb = checked_method(method, name, url)
        target = checked_target(url, name)
        if params:
            target = target.extend_query(checked_params(params, name, url))
        body, content_type = encoded_body(json, data, name, url)
        seconds = checked_timeout(timeout, self._pool.timeout, name, url)
        sent = CIMultiDict({"User-Agent": self.user_agent})
        if content_type is not None:
            sent["Content-Type"] = content_type
        if headers:
            sent.update(checked_headers(headers, name, url))
        shown = label or (self._label if name is self._service else service_label(name))
        started = time.perf_counter()
        try:
            status, answer_headers, content, _ = await self._pool.exchange(
                self, verb, url, target, name, sent, body, seconds
            )
        except UpstreamError:
            self._pool._observe(shown, started, failed=True)
            raise
        self._pool._observe(shown, started, failed=status >= 500)
        return HttpResponse(status=status, headers=answer_headers, body=content, url=url)


def _document(status: int, headers: Mapping[str, str], body: bytes, content_type: str, service: str, url: str) -> Any:
    """The JSON document of a GET's answer: only a 200 with a JSON body is one."""
    data = _parse_json(body)
    if status >= 400:
        problem = data if isinstance(data, dict) else {}
        detail = problem.get("detail") or problem.get("title") or ""
        detail_text = f": {str(detail)[:300]}" if detail else ""
        raise UpstreamError(
            f"{service} answered HTTP {status}{detail_text}",
            status=status,
            problem=problem,
            url=url,
            cause="status",
        )
    if status != 200:
        raise UpstreamError(f"{service} answered HTTP {status}, expected 200.", status=status, url=url, cause="status")
    if data is _INVALID or not content_type.endswith("json"):
        raise UpstreamError(
            f"{service} answered with something that is not valid JSON.", status=status, url=url, cause="not_json"
        )
    return data


_INVALID = object()


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _INVALID
