"""Console single sign-on over real HTTP on loopback, against a small OpenID provider in this
process: the sign-in belongs to the browser that started it (callback, handle, replay), the
cookie that binds it, and the bounded store of pending sign-ins (no caller evicts another's).
The browser flow against npm oidc-provider is in test_console.py."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import math
import secrets
import time
from dataclasses import dataclass, field
from http.cookies import SimpleCookie
from urllib.parse import parse_qs, parse_qsl, urlencode, urlsplit

import jwt
import pytest
from aiohttp import web
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from jwt.algorithms import RSAAlgorithm

from skywarden.server.console.binding import PLAIN_NAME, SECURE_NAME
from skywarden.server.console.pending import Full, OnceStore
from skywarden.server.console.sso import (
    FRAGMENT_ERRORS,
    PENDING_SECONDS,
    SIGN_IN_ERRORS,
    START_PATH,
    ConsoleSignIn,
)
from skywarden.server.http.client_address import client_of
from tests.support.admin import ADMIN_TOKEN
from tests.support.clock import Clock
from tests.support.logs import SECRETS, drain_logs
from tests.support.oidc_provider import ADMIN_AUDIENCE, ADMIN_ROLE, SigningKey

REDEEM = "/admin/oidc/redeem"


def _challenge(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


@dataclass
class FakeProvider:
    """Discovery, JWKS and a token endpoint that redeems each code once, and only with the PKCE
    verifier whose challenge the authorization request carried. The test plays the user at the
    authorization endpoint (``authorize``)."""

    key: SigningKey = field(default_factory=SigningKey.new)
    issuer: str = ""
    codes: dict[str, tuple[str, dict]] = field(default_factory=dict)  # code -> (PKCE challenge, claims)
    exchanged: int = 0
    reuse_codes: bool = False  # a provider that (wrongly) redeems a code more than once
    hold: asyncio.Event | None = None  # when set up, each code exchange waits for it (``asked`` says one arrived)
    asked: asyncio.Event = field(default_factory=asyncio.Event)
    in_pieces: bool = False  # the token answer is sent in several writes (as a large answer over TLS may come)
    token_moved_to: str = ""  # when set, the token endpoint answers 307 to this URL

    def app(self) -> web.Application:
        async def discovery(request: web.Request) -> web.Response:
            endpoints = {name: f"{self.issuer}/{name}" for name in ("authorize", "token", "jwks")}
            return web.json_response(
                {
                    "issuer": self.issuer,
                    "authorization_endpoint": endpoints["authorize"],
                    "token_endpoint": endpoints["token"],
                    "jwks_uri": endpoints["jwks"],
                }
            )

        async def keys(request: web.Request) -> web.Response:
            public = json.loads(RSAAlgorithm.to_jwk(self.key.private.public_key()))
            return web.json_response({"keys": [{**public, "kid": self.key.kid, "use": "sig", "alg": "RS256"}]})

        async def token(request: web.Request) -> web.Response:
            if self.token_moved_to:
                raise web.HTTPTemporaryRedirect(self.token_moved_to)
            form = await request.post()
            self.asked.set()
            if self.hold is not None:
                await self.hold.wait()
            code = str(form.get("code", ""))
            found = self.codes.get(code) if self.reuse_codes else self.codes.pop(code, None)
            if found is None or _challenge(str(form.get("code_verifier", ""))) != found[0]:
                return web.json_response({"error": "invalid_grant", "error_description": "<b>no</b>"}, status=400)
            self.exchanged += 1
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": ADMIN_AUDIENCE, "iat": now, "exp": now + 300, **found[1]}
            access = jwt.encode(claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid})
            SECRETS.add(access)
            answer = json.dumps({"access_token": access, "token_type": "Bearer"}).encode()
            if not self.in_pieces:
                return web.Response(body=answer, content_type="application/json")
            stream = web.StreamResponse(headers={"Content-Type": "application/json"})
            stream.enable_chunked_encoding()
            await stream.prepare(request)
            for piece in (answer[:7], answer[7:60], answer[60:]):
                await stream.write(piece)
                await asyncio.sleep(0.02)  # so that the reader sees a piece before the next (nothing is timed)
            await stream.write_eof()
            return stream

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", keys)
        app.router.add_post("/token", token)
        return app

    def authorize(
        self, location: str, subject: str = "alice", roles: tuple[str, ...] = (ADMIN_ROLE,), name: str = ""
    ) -> str:
        """The user signs in at the provider: the callback path (and query) the browser is sent to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert location.startswith(self.issuer + "/authorize?") and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = (query["code_challenge"], {"sub": subject, "roles": list(roles), "name": name or subject})
        return local(query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]}))


def audit_of(resp) -> dict:
    """The audit event of the request ``resp`` answered."""
    request_id = resp.headers["X-Request-ID"]
    (event,) = [e for e in drain_logs() if e.get("audit") and e.get("request_id") == request_id]
    return event


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + ("?" + parts.query if parts.query else "")


def fragment(resp) -> dict[str, str]:
    """Where the server sent the browser back to in the console: its fragment's fields."""
    assert resp.status == 302
    location = resp.headers["Location"]
    assert location.startswith("/admin#")
    return dict(parse_qsl(location.split("#", 1)[1]))


@pytest.fixture
async def provider(aiohttp_server) -> FakeProvider:
    fake = FakeProvider()
    server = await aiohttp_server(fake.app())
    fake.issuer = str(server.make_url("")).rstrip("/")
    return fake


@pytest.fixture
def sso_app(make_server, make_settings, provider):
    async def make(**overrides):
        settings = make_settings(
            oidc_issuers=provider.issuer,
            admin_oidc_audience=ADMIN_AUDIENCE,
            console_oidc_client_id="console",
            **overrides,
        )
        return await make_server(settings)

    return make


def sign_in_of(server) -> ConsoleSignIn:
    """The app's console sign-in (its stores are swapped for small ones with a hand-moved clock)."""
    route = next(r for r in server.app.router.routes() if r.resource.canonical == START_PATH)
    return route.handler.__self__


async def start(client, **headers) -> str:
    """Start a sign-in as ``client`` (its cookie jar keeps the sign-in cookie); the provider URL."""
    resp = await client.get(START_PATH, headers=headers, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp.headers["Location"]


def jar_value(client, name: str = PLAIN_NAME) -> str:
    return client.session.cookie_jar.filter_cookies(client.make_url("/admin/oidc/x"))[name].value


async def test_a_sign_in_belongs_to_the_browser_that_started_it(sso_app, provider, aiohttp_client):
    server = await sso_app()
    browser, other, third = [await aiohttp_client(server) for _ in range(3)]
    callback = provider.authorize(await start(browser))
    await start(third)  # the third client holds a sign-in cookie too: its own, not the browser's

    for client in (other, third):  # the callback URL carried to another client
        resp = await client.get(callback, allow_redirects=False)
        assert fragment(resp) == {"error": "other_browser"} and "Set-Cookie" not in resp.headers
        assert audit_of(resp)["console_sign_in"] == "other_browser"
    assert provider.exchanged == 0  # their requests never reached the provider

    resp = await browser.get(callback, allow_redirects=False)
    handle = fragment(resp)["signin"]
    assert provider.exchanged == 1
    cookie = jar_value(browser)

    for site in ("cross-site", "same-site", "none"):  # another page, even of the same site, or a typed URL
        resp = await browser.post(REDEEM, json={"handle": handle}, headers={"Sec-Fetch-Site": site})
        assert resp.status == 403 and (await resp.json())["code"] == "cross_site" and "Set-Cookie" not in resp.headers
    for client in (other, third):  # the handle carried to another client
        resp = await client.post(REDEEM, json={"handle": handle})
        body = await resp.json()
        assert resp.status == 400 and body["code"] == "other_browser" and "access_token" not in body
        assert "Set-Cookie" not in resp.headers

    resp = await browser.post(REDEEM, json={"handle": handle}, headers={"Sec-Fetch-Site": "same-origin"})
    body = await resp.json()
    assert resp.status == 200 and body["name"] == "alice" and resp.headers["Cache-Control"] == "no-store"
    used = SimpleCookie(resp.headers["Set-Cookie"])[PLAIN_NAME]
    assert used.value == "" and used["max-age"] == "0"  # the cookie is cleared once used
    admin = await aiohttp_client(server, headers={"Authorization": f"Bearer {body['access_token']}"})
    assert (await admin.get("/api/admin/keys")).status == 200

    replay = await aiohttp_client(server, headers={"Cookie": f"{PLAIN_NAME}={cookie}"})  # even with the cookie
    resp = await replay.post(REDEEM, json={"handle": handle})
    assert resp.status == 400 and (await resp.json())["code"] == "expired"
    assert fragment(await replay.get(callback, allow_redirects=False)) == {"error": "expired"}
    assert provider.exchanged == 1


async def test_a_token_answer_that_arrives_in_pieces_is_read_whole(sso_app, provider, aiohttp_client):
    provider.in_pieces = True
    browser = await aiohttp_client(await sso_app())
    handle = fragment(await browser.get(provider.authorize(await start(browser)), allow_redirects=False))["signin"]
    resp = await browser.post(REDEEM, json={"handle": handle}, headers={"Sec-Fetch-Site": "same-origin"})
    assert resp.status == 200 and (await resp.json())["name"] == "alice"


async def test_a_token_endpoint_that_redirects_gets_nothing_sent_on(sso_app, provider, aiohttp_client, aiohttp_server):
    """A 307 would send the code and its PKCE verifier (all a public client needs to redeem it)
    to wherever the provider points: the exchange follows no redirect, and fails clearly."""
    arrived = []

    async def elsewhere(request: web.Request) -> web.Response:
        arrived.append(await request.read())
        return web.json_response({"access_token": "x"})

    app = web.Application()
    app.router.add_route("*", "/token", elsewhere)
    other = await aiohttp_server(app)
    provider.token_moved_to = str(other.make_url("/token"))
    browser = await aiohttp_client(await sso_app())
    handle = fragment(await browser.get(provider.authorize(await start(browser)), allow_redirects=False))["signin"]
    resp = await browser.post(REDEEM, json={"handle": handle}, headers={"Sec-Fetch-Site": "same-origin"})
    assert (await resp.json())["code"] == "unavailable"
    assert arrived == []
    said = [e for e in drain_logs() if "redirect" in str(e.get("event"))]
    assert [(e["level"], e["status"]) for e in said] == [("warning", 307)]


async def test_every_outcome_after_the_provider_is_told_only_to_its_browser(sso_app, provider, aiohttp_client):
    """A refusal (not an admin, a refused code, the provider's error) travels as a handle too:
    another client learns nothing from it, and the browser hears it from the server."""
    server = await sso_app()
    browser, other = await aiohttp_client(server), await aiohttp_client(server)
    not_admin = provider.authorize(await start(browser), subject="bob", roles=())
    handle = fragment(await browser.get(not_admin, allow_redirects=False))["signin"]
    assert (await (await other.post(REDEEM, json={"handle": handle})).json())["code"] == "other_browser"
    resp = await browser.post(REDEEM, json={"handle": handle})
    body = await resp.json()
    assert resp.status == 403 and body["code"] == "not_admin" and "bob" in body["detail"]
    assert "roles=Skywarden.Admin" in body["detail"]

    for name in ("\U0001f600" * 300, "\u00e9" * 300, "x" * 300):  # a refusal's text fits in a cookie
        resp = await browser.get(provider.authorize(await start(browser), "bob", (), name), allow_redirects=False)
        assert len(resp.headers["Set-Cookie"]) < 4000
        body = await (await browser.post(REDEEM, json={"handle": fragment(resp)["signin"]})).json()
        assert body["code"] == "not_admin" and name[:100] in body["detail"]

    location = await start(browser)
    state = parse_qs(urlsplit(location).query)["state"][0]
    cases = [
        ({"state": state, "error": "access_denied", "error_description": "<img src=x>"}, 400, "cancelled"),
        ({"state": "", "error": "invalid_scope"}, None, "other_browser"),  # no sign-in of this browser
    ]
    for query, status, code in cases:
        resp = await browser.get("/admin/oidc/callback?" + urlencode(query), allow_redirects=False)
        if status is None:
            assert fragment(resp) == {"error": code}
            continue
        resp = await browser.post(REDEEM, json={"handle": fragment(resp)["signin"]})
        body = await resp.json()
        assert resp.status == status and body["code"] == code and "<img" not in json.dumps(body)

    location = await start(browser)
    state = parse_qs(urlsplit(location).query)["state"][0]
    query = {"state": state, "error": "temporarily_unavailable", "error_description": "call +1 555 0100"}
    resp = await browser.get("/admin/oidc/callback?" + urlencode(query), allow_redirects=False)
    body = await (await browser.post(REDEEM, json={"handle": fragment(resp)["signin"]})).json()
    assert body["code"] == "provider_error" and "(temporarily_unavailable)" in body["detail"]
    assert "555" not in body["detail"]  # a known error code is repeated, the provider's free text never

    forged = provider.authorize(await start(browser))
    forged = forged.replace("code=", "code=x")  # a code the provider never issued
    handle = fragment(await browser.get(forged, allow_redirects=False))["signin"]
    body = await (await browser.post(REDEEM, json={"handle": handle})).json()
    assert body["code"] == "code_refused" and "(invalid_grant)" in body["detail"] and "<b>" not in body["detail"]


async def test_the_cookie_is_host_only_secure_over_https_and_plain_over_http(sso_app, provider, aiohttp_client):
    server = await sso_app(trusted_proxies="127.0.0.1")
    client = await aiohttp_client(server)
    resp = await client.get(START_PATH, allow_redirects=False)
    plain = SimpleCookie(resp.headers["Set-Cookie"])[PLAIN_NAME]
    assert plain["httponly"] and plain["samesite"] == "Lax" and plain["path"] == "/admin/oidc"
    assert plain["max-age"] == str(PENDING_SECONDS) and not plain["secure"] and not plain["domain"]

    https = {"X-Forwarded-Proto": "https"}
    resp = await client.get(START_PATH, headers=https, allow_redirects=False)
    host = SimpleCookie(resp.headers["Set-Cookie"])[SECURE_NAME]
    assert host["secure"] and host["httponly"] and host["samesite"] == "Lax" and host["path"] == "/"
    assert not host["domain"]
    callback = provider.authorize(resp.headers["Location"])
    assert "redirect_uri=https" in resp.headers["Location"]

    # Over HTTPS only the __Host- cookie counts: the same secret under the plain name (which a
    # plain-HTTP page or another host could have set) is refused, and leaves the sign-in in place.
    tossed = await client.get(
        callback, headers={**https, "Cookie": f"{PLAIN_NAME}={host.value}"}, allow_redirects=False
    )
    assert fragment(tossed) == {"error": "other_browser"}
    resp = await client.get(callback, headers={**https, "Cookie": f"{SECURE_NAME}={host.value}"}, allow_redirects=False)
    handle = fragment(resp)["signin"]
    finished = set_cookie_value(resp, SECURE_NAME)
    for name, value in ((PLAIN_NAME, finished), (SECURE_NAME, host.value)):  # not the plain name; not the start's
        resp = await client.post(REDEEM, json={"handle": handle}, headers={**https, "Cookie": f"{name}={value}"})
        assert resp.status == 400 and (await resp.json())["code"] == "other_browser"
    resp = await client.post(REDEEM, json={"handle": handle}, headers={**https, "Cookie": f"{SECURE_NAME}={finished}"})
    assert resp.status == 200
    SECRETS.add((await resp.json())["access_token"])
    assert SimpleCookie(resp.headers["Set-Cookie"])[SECURE_NAME]["max-age"] == "0"


@pytest.fixture
async def binding_target(sso_app, provider, aiohttp_client):
    """(provider, the browser, a stranger that never gets a cookie of its own) on one server."""
    server = await sso_app()
    return provider, await aiohttp_client(server), await aiohttp_client(server)


COOKIE_TEXT = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';,"\\')
FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture], database=None
)


@FUZZ
@given(cookie=st.one_of(st.text(COOKIE_TEXT, max_size=80), st.text(COOKIE_TEXT, min_size=43, max_size=43)))
async def test_no_other_cookie_value_finishes_a_sign_in(binding_target, cookie):
    provider, browser, stranger = binding_target
    callback = provider.authorize(await start(browser))
    assume(cookie != jar_value(browser))
    cookie = {"Cookie": f"{PLAIN_NAME}={cookie}"}
    resp = await stranger.get(callback, headers=cookie, allow_redirects=False)
    assert fragment(resp) == {"error": "other_browser"}
    handle = fragment(await browser.get(callback, allow_redirects=False))["signin"]
    resp = await stranger.post(REDEEM, json={"handle": handle}, headers=cookie)
    assert resp.status == 400 and (await resp.json())["code"] == "other_browser"
    resp = await browser.post(REDEEM, json={"handle": handle})
    assert resp.status == 200
    SECRETS.add((await resp.json())["access_token"])


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


async def raw_request(port: int, head: bytes, body: bytes = b"") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + b"Content-Length: %d\r\n\r\n" % len(body) + body
    )
    await writer.drain()
    answer = await reader.read()
    writer.close()
    return answer


@pytest.mark.parametrize(
    "value",
    [b"\xe9", b"\x80" * 43, bytes(range(0x80, 0x100)), b"\x01\x02\x7f", b"a" * 8000, b"\xff=\xff; " * 20],
    ids=["latin1", "high-bytes", "every-high-byte", "controls", "very-long", "pairs"],
)
async def test_raw_cookie_bytes_get_a_refusal_never_a_500(sso_app, provider, aiohttp_client, value):
    server = await sso_app()
    browser = await aiohttp_client(server)
    callback = provider.authorize(await start(browser))
    handles = [
        b'{"handle": "' + value.hex().encode()[:40] + b'"}',
        b'{"handle": "\\ud800"}',
        b'{"handle": "' + value + b'"}',
    ]
    for cookie in (PLAIN_NAME.encode() + b"=" + value, value):
        answer = await raw_request(server.port, b"GET " + callback.encode() + b" HTTP/1.1\r\nCookie: " + cookie)
        # aiohttp's parser refuses control bytes itself (400); everything else reaches the check
        assert b"#error=other_browser" in answer if status_of(answer) == 302 else status_of(answer) == 400, answer
        for body in handles:
            answer = await raw_request(
                server.port,
                b"POST " + REDEEM.encode() + b" HTTP/1.1\r\nContent-Type: application/json\r\nCookie: " + cookie,
                body,
            )
            assert status_of(answer) == 400 and b"access_token" not in answer, answer[:300]
    assert "signin" in fragment(await browser.get(callback, allow_redirects=False))


@pytest.mark.parametrize("path", ["/admin/oidc/callback?state=%E9%FF", "/admin/oidc/callback?state=\xe9&code=\xff"])
async def test_raw_query_bytes_get_a_refusal_never_a_500(sso_app, provider, path):
    server = await sso_app()
    answer = await raw_request(server.port, b"GET " + path.encode("latin-1") + b" HTTP/1.1")
    assert status_of(answer) in (302, 400) and b"signin" not in answer, answer[:300]


async def test_a_pending_sign_in_and_a_handle_expire(sso_app, provider, aiohttp_client):
    """The expiry sealed in the cookie counts, whatever the browser keeps."""
    from skywarden.server.console.sso import HANDLE_SECONDS

    server = await sso_app()
    sign_in, clock = sign_in_of(server), Clock()
    sign_in.clock = sign_in.handles.clock = sign_in.spent.clock = clock
    browser = await aiohttp_client(server)
    late = provider.authorize(await start(browser))
    clock.now += PENDING_SECONDS
    assert fragment(await browser.get(late, allow_redirects=False)) == {"error": "expired"}
    assert provider.exchanged == 0

    just_in_time = provider.authorize(await start(browser))
    clock.now += PENDING_SECONDS - 1
    handle = fragment(await browser.get(just_in_time, allow_redirects=False))["signin"]
    clock.now += HANDLE_SECONDS - 1
    await redeemed(browser, handle)

    handle = fragment(await browser.get(provider.authorize(await start(browser)), allow_redirects=False))["signin"]
    clock.now += HANDLE_SECONDS
    resp = await browser.post(REDEEM, json={"handle": handle})
    assert resp.status == 400 and (await resp.json())["code"] == "expired"


@st.composite
def operations(draw):
    return draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("put"), st.integers(0, 5)),
                st.tuples(st.just("take"), st.integers(0, 40)),
                st.tuples(st.just("replace"), st.integers(0, 40)),
                st.tuples(st.just("wait"), st.floats(0, 40)),
            ),
            max_size=120,
        )
    )


@settings(max_examples=300, deadline=None)
@given(ops=operations(), per_client=st.integers(1, 4), total=st.integers(1, 12))
def test_a_once_store_never_evicts_and_refuses_only_when_full(ops, per_client, total):
    clock = Clock()
    store: OnceStore[int] = OnceStore(100, per_client, total, clock)
    live: dict[str, tuple[float, str, int]] = {}  # the model: key -> (expiry, client, value)
    made = 0

    def expire_model() -> None:
        for key in [k for k, (expires, _, _) in live.items() if expires <= clock.now]:
            del live[key]

    for op, arg in ops:
        expire_model()
        if op == "put":
            client, key = f"c{arg}", f"k{made}"
            mine = sorted(e for e, c, _ in live.values() if c == client)
            try:
                store.put(key, made, client)
            except Full as full:
                if len(mine) >= per_client:
                    assert not full.whole_store and full.retry_after == max(1, math.ceil(mine[0] - clock.now))
                else:
                    assert len(live) >= total and full.whole_store
            else:
                assert len(mine) < per_client and len(live) < total
                live[key] = (clock.now + 100, client, made)
            made += 1
        elif op == "take":
            key = f"k{arg}"
            assert store.take(key) == (live.pop(key)[2] if key in live else None)
        elif op == "replace":  # a new value and lifetime, in the room it holds
            key = f"k{arg}"
            assert store.replace(key, -arg) == (key in live)
            if key in live:
                live[key] = (clock.now + 100, live.pop(key)[1], -arg)
        else:
            clock.now += arg
        expire_model()
        for key, (_, _, value) in live.items():  # nothing live was lost to anyone else's put
            assert store.peek(key) == value and key in store
        assert len(store) == len(live)


def test_clients_are_addresses_and_ipv6_slash_64s():
    assert client_of("203.0.113.7") == "203.0.113.7"
    assert client_of("2001:db8::1") == client_of("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_of("2001:db8:0:1::1") != client_of("2001:db8::1")
    assert client_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_of(None) == "unknown" and client_of("not an address") == "not an address"


def test_the_page_knows_every_code_the_server_can_send():
    """app.js's SIGN_IN_ERRORS has exactly the server's codes and sentences; the fragment only ever
    carries some."""
    import re
    from pathlib import Path

    import skywarden.server.console as console

    source = (Path(console.__file__).parent / "static" / "app.js").read_text()
    table = source[
        source.index("const SIGN_IN_ERRORS = new Map([") : source.index("]);", source.index("SIGN_IN_ERRORS"))
    ]
    assert dict(re.findall(r'^\s*\["(\w+)", "([^"]*)"\],', table, re.M)) == SIGN_IN_ERRORS
    assert FRAGMENT_ERRORS <= set(SIGN_IN_ERRORS)


def test_the_page_reads_nothing_else_from_outside():
    """Where a page can take text from outside: the address, the referrer, other windows, names,
    storage. app.js reads the address's fragment (for a handle or a code) and its path only, and
    never writes HTML."""
    import re
    from pathlib import Path

    import skywarden.server.console as console

    source = (Path(console.__file__).parent / "static" / "app.js").read_text()
    reads = sorted(set(re.findall(r"\blocation\.\w+", source)))
    assert reads == ["location.hash", "location.pathname", "location.search"]
    assert source.count("location.search") == 1 and "(location.hash || location.search)" in source  # only to clear it
    assert not re.search(r"""addEventListener\(\s*["'`]message|onmessage|postMessage""", source)
    for sink in (
        "document.referrer",
        "window.name",
        "opener",
        "innerHTML",
        "outerHTML",
        "insertAdjacentHTML",
        "document.write",
        "eval(",
        "Function(",
        "localStorage",
        "sessionStorage",
        "document.cookie",
        "document.URL",
        "documentURI",
        "baseURI",
    ):
        assert sink not in source, sink


async def test_the_admin_token_still_signs_in_while_single_sign_on_is_on(sso_app, aiohttp_client):
    server = await sso_app()
    admin = await aiohttp_client(server, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert (await admin.get("/api/admin/keys")).status == 200


# --- round 3 review: look-alike cookies, a crowd of starts, the code kept until a handle fits ---

HTTPS = {"X-Forwarded-Proto": "https"}
LOOK_ALIKE_CHARACTERS = "\u2000\u00a0\u3000\ufeff\u200b\u0085\u1680\u205f\u2028\u180e\t \x0b\x0c"


def set_cookie_value(resp, name: str) -> str:
    return SimpleCookie(resp.headers["Set-Cookie"])[name].value


async def start_as(client, https: bool, **headers) -> tuple[str, str]:
    """A sign-in started by ``client``: (the provider URL, the sign-in cookie's value)."""
    headers = {"X-Forwarded-For": f"198.18.{secrets.randbelow(256)}.{secrets.randbelow(256)}", **headers}
    resp = await client.get(START_PATH, headers={**(HTTPS if https else {}), **headers}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return resp.headers["Location"], set_cookie_value(resp, SECURE_NAME if https else PLAIN_NAME)


async def callback_with(port: int, callback: str, cookies: list[bytes], https: bool) -> bytes:
    """The callback as a browser with exactly these ``Cookie`` header lines (raw bytes) sends it."""
    head = b"GET " + callback.encode() + b" HTTP/1.1"
    if https:
        head += b"\r\nX-Forwarded-Proto: https"
    for line in cookies:
        head += b"\r\nCookie: " + line
    return await raw_request(port, head)


def look_alikes(name: str) -> list[str]:
    """Names a browser keeps apart from ``name`` (another site may set them) that are not it.
    (ASCII spaces and tabs around a pair are only the header's whitespace.)"""
    found = [c + name for c in LOOK_ALIKE_CHARACTERS] + [name + c for c in LOOK_ALIKE_CHARACTERS]
    found += [name[:7] + c + name[7:] for c in LOOK_ALIKE_CHARACTERS]
    found += [name.lower(), name.upper(), name.replace("s", "S", 1), name.replace("-", "%2D"), "%5F" + name[1:]]
    found += [f'"{name}"', name.replace("-", "\u2010"), name.replace("i", "\u0131")]
    return [n for n in found if n.strip(" \t") != name]


@pytest.fixture
async def crossed(sso_app, provider, aiohttp_client):
    """Mallory's own sign-in, ready to be planted in a victim's browser (login CSRF)."""
    server = await sso_app(trusted_proxies="127.0.0.1", unauthenticated_limit="")
    return server, provider, await aiohttp_client(server)


@pytest.mark.parametrize("https", [True, False], ids=["https", "http"])
async def test_a_cookie_that_only_looks_like_the_sign_in_cookie_never_counts(crossed, https):
    server, provider, mallory = crossed
    name = SECURE_NAME if https else PLAIN_NAME
    for alike in look_alikes(name):
        location, value = await start_as(mallory, https)
        callback = provider.authorize(location, subject="mallory")
        for encoding in ("utf-8", "latin-1"):
            try:
                line = alike.encode(encoding) + b"=" + value.encode()
            except UnicodeEncodeError:
                continue
            answer = await callback_with(server.port, callback, [line], https)
            assert status_of(answer) == 400 or b"#error=other_browser" in answer, (alike, answer[:300])
        assert provider.exchanged == 0, alike  # the provider was never asked
    answer = await callback_with(server.port, callback, [name.encode() + b"=" + value.encode()], https)
    assert b"#signin=" in answer  # the exact name, with the value, is what finishes it


NAME_TWISTS = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, len(SECURE_NAME)), st.sampled_from(LOOK_ALIKE_CHARACTERS)),
    st.tuples(st.just("insert"), st.integers(0, len(SECURE_NAME)), st.characters(categories=["Zs", "Cf", "Cc"])),
    st.tuples(st.just("case"), st.integers(0, len(SECURE_NAME) - 1), st.just("")),
    st.tuples(st.just("percent"), st.integers(0, len(SECURE_NAME) - 1), st.just("")),
)


def twisted(name: str, twists: list[tuple[str, int, str]]) -> str:
    for how, at, char in twists:
        at = min(at, len(name) - (how != "insert"))
        if how == "insert":
            name = name[:at] + char + name[at:]
        elif how == "case":
            name = name[:at] + name[at].swapcase() + name[at + 1 :]
        else:
            name = name[:at] + f"%{ord(name[at]):02X}" + name[at + 1 :]
    return name


@FUZZ
@given(twists=st.lists(NAME_TWISTS, min_size=1, max_size=3))
async def test_no_twist_of_the_cookie_name_finishes_a_sign_in(crossed, twists):
    server, provider, mallory = crossed
    alike = twisted(SECURE_NAME, twists)
    assume(alike.strip(" \t") != SECURE_NAME and ";" not in alike and "=" not in alike)
    assume(not any(c in alike for c in "\r\n\x00"))
    location, value = await start_as(mallory, True)
    callback = provider.authorize(location, subject="mallory")
    answer = await callback_with(server.port, callback, [alike.encode() + b"=" + value.encode()], True)
    assert status_of(answer) == 400 or b"#error=other_browser" in answer, (alike, answer[:300])
    assert provider.exchanged == 0


@pytest.mark.parametrize("https", [True, False], ids=["https", "http"])
@pytest.mark.parametrize(
    "order",
    [
        ("tossed", "real"),
        ("real", "tossed"),
        ("junk", "real", "tossed"),
        ("tossed", "junk", "real"),
        ("real", "junk"),
        ("tossed", "|", "real"),  # "|": the copies come in separate Cookie header lines
        ("real", "|", "tossed", "junk"),
    ],
)
async def test_a_tossed_copy_of_the_cookie_never_hides_the_real_one(crossed, https, order):
    """Two cookies of one name: a browser sends both (one planted by a sibling or an older
    browser), in either order. The real one still finishes its own sign-in."""
    server, provider, mallory = crossed
    name = (SECURE_NAME if https else PLAIN_NAME).encode()
    _, tossed = await start_as(mallory, https)
    location, real = await start_as(mallory, https)  # the victim's own start (its value, not the jar, is used)
    callback = provider.authorize(location)
    values = {"tossed": tossed, "real": real, "junk": "x" * 43}
    lines, pairs = [], []
    for part in order:
        if part == "|":
            lines.append(b"; ".join(pairs))
            pairs = []
        else:
            pairs.append(name + b"=" + values[part].encode())
    lines.append(b"; ".join(pairs))
    answer = await callback_with(server.port, callback, lines, https)
    assert b"#signin=" in answer, answer[:300]
    assert provider.exchanged == 1


@pytest.mark.parametrize(
    "addresses",
    [
        [f"2001:db8:4:{n:x}::{m}" for n in range(16) for m in range(1, 11)],  # 10 from each of 16 /64s in one /48
        [f"198.51.100.{n}" for n in range(160)],
        ["203.0.113.5"] * 160,
    ],
    ids=["ipv6-48", "ipv4-24", "one-address"],
)
async def test_no_crowd_of_starts_refuses_anyone_else_a_sign_in(
    sso_app, provider, aiohttp_client, monkeypatch, addresses
):
    """Starting a sign-in keeps nothing on the server, so no set of callers can fill anything:
    however many start (request floods are unauthenticated_limit's), an admin elsewhere starts
    and finishes, and so do they. (The stores' bound is made small so that filling it is cheap.)"""
    from skywarden.server.console import sso

    monkeypatch.setattr(sso, "MAX_TOTAL", 100)
    server = await sso_app(trusted_proxies="127.0.0.1", unauthenticated_limit="")
    admin, crowd = await aiohttp_client(server), await aiohttp_client(server)
    callback = provider.authorize(await start(admin, **{"X-Forwarded-For": "192.0.2.10"}))
    for address in addresses:
        resp = await crowd.get(START_PATH, headers={"X-Forwarded-For": address}, allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"].startswith(provider.issuer), address
    handle = fragment(await admin.get(callback, allow_redirects=False))["signin"]  # started before them all
    resp = await admin.post(REDEEM, json={"handle": handle})
    assert resp.status == 200
    SECRETS.add((await resp.json())["access_token"])
    late = provider.authorize(await start(admin, **{"X-Forwarded-For": addresses[0]}))  # and one of them, again
    assert "signin" in fragment(await admin.get(late, allow_redirects=False))


async def redeemed(client, handle: str, **headers) -> dict:
    resp = await client.post(REDEEM, json={"handle": handle}, headers=headers)
    body = await resp.json()
    assert resp.status == 200, body
    SECRETS.add(body["access_token"])
    return body


async def test_refusals_hold_no_room_that_an_admin_on_the_same_address_needs(sso_app, provider, aiohttp_client):
    """A colleague behind the same address ends many sign-ins badly (cancelled at the provider, a
    refused code, not an admin, a provider error): none of it takes room from the admin's own."""
    from skywarden.server.console.sso import MAX_PER_CLIENT

    server = await sso_app(unauthenticated_limit="")
    admin, colleague = await aiohttp_client(server), await aiohttp_client(server)
    callback = provider.authorize(await start(admin))
    for n in range(MAX_PER_CLIENT * 2):
        location = await start(colleague)
        state = parse_qs(urlsplit(location).query)["state"][0]
        ending = [
            "/admin/oidc/callback?" + urlencode({"state": state, "error": "access_denied"}),
            "/admin/oidc/callback?" + urlencode({"state": state, "error": "server_error"}),
            "/admin/oidc/callback?" + urlencode({"state": state, "code": "never-issued"}),
            provider.authorize(location, subject=f"bob{n}", roles=()),
        ][n % 4]
        assert "signin" in fragment(await colleague.get(ending, allow_redirects=False))  # never redeemed
    handle = fragment(await admin.get(callback, allow_redirects=False))["signin"]
    assert (await redeemed(admin, handle))["name"] == "alice"


async def test_a_code_is_never_spent_while_its_handle_could_not_be_kept(sso_app, provider, aiohttp_client):
    """Admins behind one address finish more sign-ins than its handles hold at once: the one
    without room is sent back as busy before its code goes to the provider, and the same return
    finishes once there is room."""
    from skywarden.server.console.sso import HANDLE_SECONDS, MAX_PER_CLIENT

    server = await sso_app(unauthenticated_limit="")
    admins = [await aiohttp_client(server) for _ in range(MAX_PER_CLIENT + 1)]
    callbacks = [provider.authorize(await start(admin)) for admin in admins]
    handles = [
        fragment(await a.get(c, allow_redirects=False))["signin"]
        for a, c in zip(admins[:-1], callbacks[:-1], strict=True)
    ]
    last, its_callback = admins[-1], callbacks[-1]
    resp = await last.get(its_callback, allow_redirects=False)
    assert fragment(resp) == {"error": "busy"} and 1 <= int(resp.headers["Retry-After"]) <= HANDLE_SECONDS
    assert provider.exchanged == MAX_PER_CLIENT and len(provider.codes) == 1  # its code was not sent
    assert (await redeemed(admins[0], handles[0]))["name"] == "alice"
    handle = fragment(await last.get(its_callback, allow_redirects=False))["signin"]
    assert (await redeemed(last, handle))["name"] == "alice"


@pytest.mark.parametrize(
    "site", ["cross-site", "same-site", "Cross-Site", "SAME-ORIGIN", "same-origin, cross-site", "", "x"]
)
async def test_a_start_from_another_site_changes_nothing(sso_app, provider, aiohttp_client, site):
    """Another site's page (an image, a link, a form) makes the browser start a sign-in: refused,
    back at the console with a message it knows, and the sign-in the browser had begun is kept."""
    server = await sso_app()
    browser = await aiohttp_client(server)
    callback = provider.authorize(await start(browser))
    resp = await browser.get(START_PATH, headers={"Sec-Fetch-Site": site}, allow_redirects=False)
    assert fragment(resp) == {"error": "cross_site"} and "Set-Cookie" not in resp.headers
    assert audit_of(resp)["console_sign_in"] == "cross_site" and audit_of(resp)["reason"] == "origin"
    assert "signin" in fragment(await browser.get(callback, allow_redirects=False))


@pytest.mark.parametrize("site", [None, "same-origin", "none"])
async def test_a_start_from_the_console_or_the_address_bar_goes_to_the_provider(
    sso_app, provider, aiohttp_client, site
):
    server = await sso_app()
    headers = {"Sec-Fetch-Site": site, "Sec-Fetch-Mode": "navigate"} if site else {}
    location = await start(await aiohttp_client(server), **headers)
    assert location.startswith(provider.issuer + "/authorize?")


@FUZZ
@given(site=st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20))
async def test_only_same_origin_and_none_may_start(binding_target, site):
    provider, browser, _ = binding_target
    resp = await browser.get(START_PATH, headers={"Sec-Fetch-Site": site}, allow_redirects=False)
    if site.strip(" ") in ("same-origin", "none"):
        assert resp.headers["Location"].startswith(provider.issuer)
    else:
        assert fragment(resp) == {"error": "cross_site"} and "Set-Cookie" not in resp.headers


async def test_the_cookie_is_renewed_at_the_callback_for_as_long_as_its_handle(sso_app, provider, aiohttp_client):
    from skywarden.server.console.sso import HANDLE_SECONDS

    server = await sso_app(trusted_proxies="127.0.0.1")
    client = await aiohttp_client(server)
    for https, name in ((False, PLAIN_NAME), (True, SECURE_NAME)):
        headers = HTTPS if https else {}
        resp = await client.get(START_PATH, headers=headers, allow_redirects=False)
        started = SimpleCookie(resp.headers["Set-Cookie"])[name]
        callback = provider.authorize(resp.headers["Location"])
        cookie = {"Cookie": f"{name}={started.value}"}
        resp = await client.get(callback, headers={**headers, **cookie}, allow_redirects=False)
        handle = fragment(resp)["signin"]
        renewed = SimpleCookie(resp.headers["Set-Cookie"])[name]
        assert renewed["max-age"] == str(HANDLE_SECONDS) and renewed.value
        for attribute in ("path", "httponly", "samesite", "secure", "domain"):
            assert renewed[attribute] == started[attribute], attribute
        cookie = {"Cookie": f"{name}={renewed.value}"}
        await redeemed(client, handle, **headers, **cookie)


async def test_a_replayed_callback_never_makes_a_second_handle(sso_app, provider, aiohttp_client):
    """Even against a provider that redeems a code twice, and even while the first is still being
    exchanged: the callback, its cookie and its code give one sign-in."""
    provider.reuse_codes = True
    server = await sso_app()
    browser = await aiohttp_client(server)
    callback = provider.authorize(await start(browser))
    cookie = {"Cookie": f"{PLAIN_NAME}={jar_value(browser)}"}
    copy = await aiohttp_client(server)

    provider.hold = asyncio.Event()
    first = asyncio.ensure_future(browser.get(callback, allow_redirects=False))
    await provider.asked.wait()  # the first is at the provider
    assert fragment(await copy.get(callback, headers=cookie, allow_redirects=False)) == {"error": "expired"}
    provider.hold.set()
    handle = fragment(await first)["signin"]
    assert fragment(await copy.get(callback, headers=cookie, allow_redirects=False)) == {"error": "expired"}
    assert provider.exchanged == 1
    await redeemed(browser, handle)
    assert fragment(await copy.get(callback, headers=cookie, allow_redirects=False)) == {"error": "expired"}


async def test_a_start_over_the_limit_sends_a_browser_back_to_the_console(sso_app, provider, aiohttp_client):
    server = await sso_app(unauthenticated_limit="1/minute")
    client = await aiohttp_client(server)
    await start(client)
    navigate = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Site": "same-origin"}
    resp = await client.get(START_PATH, headers=navigate, allow_redirects=False)
    assert fragment(resp) == {"error": "busy"} and int(resp.headers["Retry-After"]) >= 1
    assert audit_of(resp)["console_sign_in"] == "busy" and audit_of(resp)["reason"] == "rate_limited"
    assert "Set-Cookie" not in resp.headers
    resp = await client.get(START_PATH, allow_redirects=False)  # not a browser's navigation: the status says it
    assert resp.status == 429 and resp.content_type == "application/problem+json"


def test_only_codes_the_page_knows_are_put_in_the_address():
    from skywarden.server.console.sso import back_with

    for code in FRAGMENT_ERRORS:
        assert back_with(code).headers["Location"] == f"/admin#error={code}"
    for code in ("not_admin", "<b>", "", "expired&x=1"):
        with pytest.raises(ValueError):
            back_with(code)
