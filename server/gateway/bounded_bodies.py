"""An httpx transport for the SDK's client of a remote upstream whose answers, other than event
streams, are given up past a bound as they arrive, and that takes no answer in a content coding
(it asks for ``identity``: a bound on compressed bytes bounds nothing).

The SDK reads an answer sent as one JSON body whole before it looks at it (a listing, say), so
without this an upstream could make Skywarden hold any amount. An event stream is left alone:
it lasts as long as the connection, and the SDK bounds each of its events.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx2

from skywarden.server.gateway.http_calls import content_coding


class BoundedBodies(httpx2.AsyncBaseTransport):
    def __init__(self, inner: httpx2.AsyncBaseTransport, limit: int) -> None:
        self.inner = inner
        self.limit = limit

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        request.headers["Accept-Encoding"] = "identity"
        response = await self.inner.handle_async_request(request)
        coding = content_coding(response.headers.get("content-encoding"))
        if coding is not None:
            await response.aclose()
            raise httpx2.ReadError(f"the upstream answered in the content coding {coding!r}", request=request)
        if response.headers.get("content-type", "").lower().startswith("text/event-stream"):
            return response
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.limit:
            await response.aclose()
            raise _too_large(self.limit, request)
        response.stream = _BoundedStream(response.stream, self.limit, request)
        return response

    async def aclose(self) -> None:
        await self.inner.aclose()


class _BoundedStream(httpx2.AsyncByteStream):
    def __init__(self, inner: Any, limit: int, request: httpx2.Request) -> None:
        self.inner = inner
        self.limit = limit
        self.request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        async for chunk in self.inner:
            seen += len(chunk)
            if seen > self.limit:
                raise _too_large(self.limit, self.request)
            yield chunk

    async def aclose(self) -> None:
        await self.inner.aclose()


def _too_large(limit: int, request: httpx2.Request) -> httpx2.ReadError:
    return httpx2.ReadError(f"the upstream answered with more than {limit} bytes", request=request)
