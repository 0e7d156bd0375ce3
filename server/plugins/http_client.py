"""The shared client tools use for outside APIs.

One aiohttp session (bounded pool, timeouts), a size cap on every answer, and
a small cache that honours ``Cache-Control``. Failures become ``UpstreamError``
(a ``ToolError``), so a tool never turns an upstream fault into an HTTP 500.
"""

from __future__ import annotations

import contextvars
import json
import math
import re
import time
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass
from typing import Any

import aiohttp

from skywarden.server.ttlcache import TTLCache
from skywarden.tools.contract import ToolError
from skywarden.tools.http import UpstreamError

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


def service_label(service: str) -> str:
    """A short metric label from a service's name ("The NWS API" -> "the_nws_api")."""
    return _LABEL_CHARS.sub("_", service.lower()).strip("_")[:MAX_LABEL_LENGTH] or "upstream"


@dataclass
class Upstream:
    """Complete when built; its connection pool opens with ``open()`` inside the event loop."""

    user_agent: str
    timeout: float
    max_bytes: int
    cache: TTLCache
    max_connections: int = 20
    observer: Callable[[str, float, bool], None] | None = None  # (service label, seconds, failed)
    _session: aiohttp.ClientSession | None = None

    async def open(self) -> None:
        connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=0, ttl_dns_cache=DNS_CACHE_SECONDS)
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(total=self.timeout, connect=min(CONNECT_TIMEOUT_SECONDS, self.timeout)),
            raise_for_status=False,
            trust_env=False,
        )

    def for_plugin(self, name: str, *, user_agent: str, service: str, trusted_origins: Iterable[str] = ()) -> Upstream:
        """The client a plugin's tools get (``context.http``): this pool, the plugin's User-Agent,
        ``service`` as the default name in error texts, and the origins its operator configured,
        which the SSRF guard lets through."""
        return self

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get_json(
        self,
        url: str,
        *,
        service: str,
        accept: str = "application/json",
        label: str | None = None,
        derive: Callable[[Any], Any] | None = None,
    ) -> Any:
        """GET ``url`` and return its JSON; ``service`` names the upstream in error texts, ``label``
        (a short identifier, derived from ``service`` when not given) in metrics.

        With ``derive`` (a pure function of the document, which may raise ``ToolError``) the answer
        is ``derive(document)``, cached beside the document until it expires: a tool that reshapes
        an upstream answer does that once per answer, not once per call. The shape is kept under the
        function itself, not its name: two functions never share a shape (closures made by one
        factory have one name). Never mutate the result."""
        key = f"{accept} {url}"
        kept_as: Hashable = key if derive is None else (key, derive)
        freshness = _freshness.get()
        if freshness is None:
            return await self._answer(key, kept_as, url, service, accept, label, derive)
        try:
            found = await self._answer(key, kept_as, url, service, accept, label, derive)
        except BaseException:
            freshness.saw(None)
            raise
        freshness.saw(self.cache.expires(kept_as))
        return found

    async def _answer(
        self,
        key: str,
        kept_as: Hashable,
        url: str,
        service: str,
        accept: str,
        label: str | None,
        derive: Callable[[Any], Any] | None,
    ) -> Any:
        """The answer for ``key``, or ``derive`` of it, kept under ``kept_as``."""
        if derive is None:
            cached = self.cache.get(key)
            return cached if cached is not None else await self._get(key, url, service, accept, label)
        derived = self.cache.get(kept_as, count=False)
        if derived is not None:
            self.cache.hits += 1
            return derived
        document = self.cache.get(key)
        if document is None:
            document = await self._get(key, url, service, accept, label)
        try:
            derived = derive(document)
        except UpstreamError:
            raise
        except ToolError as exc:  # the answer is not what the tool expects: name where it came from
            raise UpstreamError(str(exc), url=url, cause="unexpected_format") from exc
        expires = self.cache.expires(key)
        if expires is not None and derived is not None:
            self.cache.put_until(kept_as, derived, expires)
        return derived

    async def _get(self, key: str, url: str, service: str, accept: str, label: str | None) -> Any:
        started = time.perf_counter()
        try:
            data = await self._fetch(key, url, service, accept)
        except UpstreamError:
            self._observe(label or service_label(service), started, failed=True)
            raise
        self._observe(label or service_label(service), started, failed=False)
        return data

    def _observe(self, service: str, started: float, failed: bool) -> None:
        if self.observer is not None:
            self.observer(service, time.perf_counter() - started, failed)

    async def _fetch(self, key: str, url: str, service: str, accept: str) -> Any:
        if self._session is None:
            raise UpstreamError(
                f"{service} cannot be reached: the server is not started.", url=url, cause="not_started"
            )
        headers = {"User-Agent": self.user_agent, "Accept": accept}
        try:
            async with self._session.get(
                url,
                headers=headers,
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                allow_redirects=False,
            ) as resp:
                body = await self._read_capped(resp, service, url)
                status = resp.status
                cache_control = resp.headers.get("Cache-Control")
                content_type = resp.content_type
        except TimeoutError:
            raise UpstreamError(
                f"{service} did not answer within {self.timeout:g} seconds; try again later.",
                url=url,
                cause="TimeoutError",
            ) from None
        except aiohttp.ClientError as exc:
            raise UpstreamError(
                f"{service} could not be reached ({type(exc).__name__}); try again later.",
                url=url,
                cause=type(exc).__name__,
            ) from None

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
            raise UpstreamError(
                f"{service} answered HTTP {status}, expected 200.", status=status, url=url, cause="status"
            )
        if data is _INVALID or not content_type.endswith("json"):
            raise UpstreamError(
                f"{service} answered with something that is not valid JSON.", status=status, url=url, cause="not_json"
            )
        self.cache.put(key, data, cache_ttl(cache_control))
        return data

    async def _read_capped(self, resp: aiohttp.ClientResponse, service: str, url: str) -> bytes:
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


_INVALID = object()


def _parse_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return _INVALID
