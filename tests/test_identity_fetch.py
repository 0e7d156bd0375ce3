"""Reading an issuer's documents without a provider: a body read whole however it is split
(``http/response_body.py``), and whatever goes wrong in a fetch a failed read (a 503 at the
doors), never an exception that escapes or an "unknown key" (``identity/jwks.py``)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from aiohttp.streams import StreamReader

from skywarden.server.http.response_body import ResponseTooLarge, read_response_body
from skywarden.server.identity.jwks import IdentityHttp, IssuerKeys, IssuerUnavailable
from tests.support.clock import Clock

ISSUER = "https://login.example.test/tenant"
DOCUMENT = b'{"keys": [{"kty": "EC", "kid": "k1"}], "padding": "' + b"x" * 200 + b'"}'


class _Connection:
    """What a StreamReader asks of the connection it reads from."""

    _reading_paused = False
    connected = True

    def pause_reading(self) -> None: ...

    def resume_reading(self, resume_parser: bool = True) -> None: ...


@dataclass
class _Answer:
    content: StreamReader
    content_length: int | None = None


def _arriving(pieces: list[bytes], content_length: int | None = None) -> _Answer:
    """An answer whose first piece is here and each further piece arrives once the reader has
    taken what came before (``call_soon`` runs after the reading task's first step)."""
    loop = asyncio.get_running_loop()
    reader = StreamReader(_Connection(), 2**16, loop=loop)
    reader.feed_data(pieces[0])

    def next_piece(rest: list[bytes]) -> None:
        if rest:
            reader.feed_data(rest[0])
            loop.call_soon(next_piece, rest[1:])
        else:
            reader.feed_eof()

    loop.call_soon(next_piece, pieces[1:])
    return _Answer(reader, content_length)


def _split(body: bytes, parts: int) -> list[bytes]:
    size = -(-len(body) // parts)
    return [body[i : i + size] for i in range(0, len(body), size)]


@pytest.mark.parametrize("parts", [1, 2, 3, 7, len(DOCUMENT)])
async def test_a_body_is_read_whole_however_many_pieces_it_arrives_in(parts):
    answer = _arriving(_split(DOCUMENT, parts))
    assert await read_response_body(answer, len(DOCUMENT)) == DOCUMENT  # exactly at the limit


@pytest.mark.parametrize("parts", [1, 2, 5])
async def test_a_body_over_the_limit_is_refused_whatever_its_pieces(parts):
    with pytest.raises(ResponseTooLarge):
        await read_response_body(_arriving(_split(DOCUMENT, parts)), len(DOCUMENT) - 1)


async def test_an_announced_length_over_the_limit_is_refused_before_a_byte_is_read():
    reader = StreamReader(_Connection(), 2**16, loop=asyncio.get_running_loop())  # nothing ever arrives
    with pytest.raises(ResponseTooLarge):
        await read_response_body(_Answer(reader, content_length=11), 10)


def _keys(read_keys) -> IssuerKeys:
    keys = IssuerKeys(ISSUER, IdentityHttp(), cooldown=30, clock=Clock())
    keys._read_keys = read_keys
    return keys


@pytest.mark.parametrize(
    "error",
    [RuntimeError("boom"), NotImplementedError(), KeyError("kid"), AttributeError("verify"), TypeError(), OSError()],
)
async def test_any_failure_while_reading_the_keys_is_a_failed_read_for_the_whole_cooldown(error):
    async def failing():
        raise error

    keys = _keys(failing)
    for _ in range(3):  # the fetch, then the cooldown: the same answer, never None (a 401 "unknown key")
        with pytest.raises(IssuerUnavailable) as unavailable:
            await keys.key("k1")
        assert unavailable.value.retry_after == 30
        assert type(error).__name__ in str(unavailable.value)
    with pytest.raises(IssuerUnavailable):
        await keys.configuration()


async def test_the_configuration_is_there_even_when_the_keys_that_follow_it_cannot_be_read():
    async def configuration_then_failure():
        keys._configuration = {"issuer": ISSUER, "token_endpoint": ISSUER + "/token"}
        raise IssuerUnavailable(f"{ISSUER}: its JWKS (jwks_uri) answered HTTP 500")

    keys = _keys(configuration_then_failure)
    assert (await keys.configuration())["token_endpoint"] == ISSUER + "/token"
    with pytest.raises(IssuerUnavailable):
        await keys.key("k1")
