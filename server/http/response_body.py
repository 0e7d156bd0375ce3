"""Reading the body of an answer Skywarden asked another server for, completely and bounded.

aiohttp's ``resp.content.read(n)`` returns what has arrived so far, not ``n`` bytes: a body
sent in more than one piece (chunked, streamed, or just split by the network) would be cut
short. Read answers from other servers only through ``read_response_body``.
"""

from __future__ import annotations

import aiohttp


class ResponseTooLarge(ValueError):
    """The answer is larger than the reader allows."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the answer is larger than {limit} bytes")
        self.limit = limit


async def read_response_body(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body of ``resp``, however many pieces it arrives in; ``ResponseTooLarge`` as soon
    as it is known to exceed ``limit`` bytes (an announced Content-Length before a byte is read).
    Timeouts are the request's own (its ``ClientTimeout`` covers reading the body)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise ResponseTooLarge(limit)
    body = bytearray()
    async for piece in resp.content.iter_any():
        body += piece
        if len(body) > limit:
            raise ResponseTooLarge(limit)
    return bytes(body)
