"""One aiohttp ClientSession, timeouts, TLS, and bounded retries with backoff and jitter.

Retried: a connection that could not be made (the request never left), and for
idempotent operations also dropped connections, timeouts and 5xx; for every
operation 429 and 503 honouring ``Retry-After``. Never retried: 401, 403, 422.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import aiohttp
from multidict import CIMultiDictProxy

from skywarden.clients.errors import TransportError

T = TypeVar("T")
RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Timeouts:
    connect: float = 5.0
    read: float = 30.0
    total: float = 120.0


@dataclass(frozen=True)
class RetryPolicy:
    max_retries: int = 3
    backoff_base: float = 0.2
    backoff_max: float = 5.0
    max_retry_after: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Full jitter: a random wait up to the exponential step."""
        return random.uniform(0, min(self.backoff_max, self.backoff_base * 2**attempt))


@dataclass
class Answer:
    status: int
    headers: CIMultiDictProxy[str]
    body: bytes
    content_type: str

    @property
    def request_id(self) -> str | None:
        return self.headers.get("X-Request-ID")

    def retry_after(self) -> float | None:
        value = self.headers.get("Retry-After")
        try:
            return max(0.0, float(value)) if value is not None else None
        except ValueError:
            return None


def ssl_context(verify: bool, ca_file: str | None) -> ssl.SSLContext | bool:
    if not verify:
        return False
    context = ssl.create_default_context(cafile=ca_file)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context


class HttpCore:
    def __init__(
        self,
        base_url: str,
        headers: dict[str, str],
        *,
        session: aiohttp.ClientSession | None = None,
        timeouts: Timeouts = Timeouts(),
        retry: RetryPolicy = RetryPolicy(),
        verify_tls: bool = True,
        ca_file: str | None = None,
        max_connections: int = 20,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._headers = headers
        self._owns_session = session is None
        self._session = session
        self._timeout = aiohttp.ClientTimeout(total=timeouts.total, connect=timeouts.connect, sock_read=timeouts.read)
        self._ssl = ssl_context(verify_tls, ca_file)
        self._max_connections = max_connections
        self.retry = retry
        self._sleep = sleep

    @property
    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=self._max_connections, ssl=self._ssl, keepalive_timeout=30)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self._timeout)
            self._owns_session = True
        return self._session

    async def close(self) -> None:
        if self._owns_session and self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        headers: dict[str, str] | None = None,
        idempotent: bool,
        read: Callable[[aiohttp.ClientResponse], Awaitable[bytes]] | None = None,
    ) -> Answer:
        url = self.base_url + path
        all_headers = {**self._headers, **(headers or {})}
        attempt = 0
        while True:
            try:
                kwargs: dict[str, Any] = {"headers": all_headers, "timeout": self._timeout}
                if json is not None:
                    kwargs["json"] = json
                if not self._owns_session:
                    kwargs["ssl"] = self._ssl
                async with self.session.request(method, url, **kwargs) as resp:
                    body = await (read(resp) if read is not None else resp.read())
                    answer = Answer(resp.status, resp.headers, body, resp.content_type)
            except aiohttp.ClientConnectorError as exc:  # never reached the server: always safe to retry
                if attempt >= self.retry.max_retries:
                    raise TransportError(f"cannot connect to {self.base_url}: {exc.os_error}") from None
            except (TimeoutError, aiohttp.ClientError) as exc:
                if not idempotent or attempt >= self.retry.max_retries:
                    what = "timed out" if isinstance(exc, asyncio.TimeoutError) else type(exc).__name__
                    raise TransportError(f"{method} {path} failed: {what}") from None
            else:
                retry_after = answer.retry_after()
                if answer.status in RETRY_STATUSES and attempt < self.retry.max_retries:
                    if retry_after is None or retry_after <= self.retry.max_retry_after:
                        await self._sleep(retry_after if retry_after is not None else self.retry.backoff(attempt))
                        attempt += 1
                        continue
                if answer.status >= 500 and idempotent and answer.status not in RETRY_STATUSES:
                    if attempt < self.retry.max_retries:
                        await self._sleep(self.retry.backoff(attempt))
                        attempt += 1
                        continue
                return answer
            await self._sleep(self.retry.backoff(attempt))
            attempt += 1
