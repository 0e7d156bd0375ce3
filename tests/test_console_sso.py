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
from collections import Counter
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
from skywarden.server.console.pending import Full, OnceStore, client_of
from skywarden.server.console.sso import (
    FRAGMENT_ERRORS,
    PENDING_SECONDS,
    SIGN_IN_ERRORS,
    START_PATH,
    ConsoleSignIn,
)
from tests.clock import Clock
from tests.conftest import ADMIN_TOKEN, SECRETS
from tests.oidc_provider import ADMIN_AUDIENCE, ADMIN_ROLE, SigningKey

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
            form = await request.post()
            found = self.codes.pop(str(form.get("code", "")), None)
            if found is None or _challenge(str(form.get("code_verifier", ""))) != found[0]:
                return web.json_response({"error": "invalid_grant", "error_description": "<b>no</b>"}, status=400)
            self.exchanged += 1
            now = int(time.time())
            claims = {"iss": self.issuer, "aud": ADMIN_AUDIENCE, "iat": now, "exp": now + 300, **found[1]}
            access = jwt.encode(claims, self.key.private, algorithm="RS256", headers={"kid": self.key.kid})
            SECRETS.add(access)
            return web.json_response({"access_token": access, "token_type": "Bearer"})

        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", discovery)
        app.router.add_get("/jwks", keys)
        app.router.add_post("/token", token)
        return app

    def authorize(self, location: str, subject: str = "alice", roles: tuple[str, ...] = (ADMIN_ROLE,)) -> str:
        """The user signs in at the provider: the callback path (and query) the browser is sent to."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        assert location.startswith(self.issuer + "/authorize?") and query["code_challenge_method"] == "S256"
        code = secrets.token_urlsafe(16)
        self.codes[code] = (query["code_challenge"], {"sub": subject, "roles": list(roles), "name": subject})
        return local(query["redirect_uri"] + "?" + urlencode({"code": code, "state": query["state"]}))


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

    location = await start(browser)
    state = parse_qs(urlsplit(location).query)["state"][0]
    cases = [
        ({"state": state, "error": "access_denied", "error_description": "<img src=x>"}, 400, "cancelled"),
        ({"state": "", "error": "invalid_scope"}, None, "expired"),
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
    resp = await client.post(
        REDEEM, json={"handle": handle}, headers={**https, "Cookie": f"{SECURE_NAME}={host.value}"}
    )
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
    server = await sso_app()
    sign_in, clock = sign_in_of(server), Clock()
    sign_in.pending.clock = sign_in.handles.clock = clock
    browser = await aiohttp_client(server)
    late = provider.authorize(await start(browser))
    clock.now += PENDING_SECONDS
    assert fragment(await browser.get(late, allow_redirects=False)) == {"error": "expired"}
    assert provider.exchanged == 0

    handle = fragment(await browser.get(provider.authorize(await start(browser)), allow_redirects=False))["signin"]
    clock.now += 60
    resp = await browser.post(REDEEM, json={"handle": handle})
    assert resp.status == 400 and (await resp.json())["code"] == "expired"


async def test_starts_from_many_addresses_never_push_out_a_pending_sign_in(sso_app, provider, aiohttp_client):
    server = await sso_app(trusted_proxies="127.0.0.1", unauthenticated_limit="")
    sign_in, clock = sign_in_of(server), Clock()
    sign_in.pending = OnceStore(PENDING_SECONDS, per_client=3, total=40, clock=clock)  # small, to fill it whole
    admin, crowd = await aiohttp_client(server), await aiohttp_client(server)
    callback = provider.authorize(await start(admin, **{"X-Forwarded-For": "192.0.2.10"}))

    async def attempt(address: str) -> tuple[int, str]:
        resp = await crowd.get(START_PATH, headers={"X-Forwarded-For": address}, allow_redirects=False)
        if resp.status == 302:
            return 302, ""
        body = await resp.json()
        assert resp.status == 429 and resp.content_type == "application/problem+json" and body["code"] == "busy"
        assert 1 <= int(resp.headers["Retry-After"]) <= PENDING_SECONDS
        return 429, body["detail"]

    # One IPv6 host holds a whole /64: its addresses share one allowance; the next /64 has its own.
    ipv6 = [await attempt(f"2001:db8::{n}") for n in range(1, 6)]
    assert [s for s, _ in ipv6] == [302, 302, 302, 429, 429] and "from your address" in ipv6[-1][1]
    assert (await attempt("2001:db8:0:1::1"))[0] == 302

    accepted = Counter()
    for n in range(30):  # 30 addresses, 5 starts each: more than the store holds
        for _ in range(5):
            status, detail = await attempt(f"198.51.100.{n}")
            accepted[n] += status == 302
            if status == 429 and accepted[n] < 3:
                assert "on this server" in detail
    assert max(accepted.values()) == 3 and len(sign_in.pending) == 40

    handle = fragment(await admin.get(callback, allow_redirects=False))["signin"]  # still there
    resp = await admin.post(REDEEM, json={"handle": handle})
    assert resp.status == 200
    SECRETS.add((await resp.json())["access_token"])

    clock.now += PENDING_SECONDS  # every pending sign-in ends; room is made by time, never by others
    assert len(sign_in.pending) == 0
    assert (await attempt("198.51.100.0"))[0] == 302


async def test_the_default_allowance_per_address(sso_app, provider, aiohttp_client):
    from skywarden.server.console.sso import MAX_PER_CLIENT

    server = await sso_app(unauthenticated_limit="")
    client = await aiohttp_client(server)
    for _ in range(MAX_PER_CLIENT):
        await start(client)
    resp = await client.get(START_PATH, allow_redirects=False)
    assert resp.status == 429 and int(resp.headers["Retry-After"]) == PENDING_SECONDS


@st.composite
def operations(draw):
    return draw(
        st.lists(
            st.one_of(
                st.tuples(st.just("put"), st.integers(0, 5)),
                st.tuples(st.just("take"), st.integers(0, 40)),
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
        else:
            clock.now += arg
        expire_model()
        for key, (_, _, value) in live.items():  # nothing live was lost to anyone else's put
            assert store.peek(key) == value
        assert len(store) == len(live)


def test_clients_are_addresses_and_ipv6_slash_64s():
    assert client_of("203.0.113.7") == "203.0.113.7"
    assert client_of("2001:db8::1") == client_of("2001:db8::ffff:1") == "2001:db8::/64"
    assert client_of("2001:db8:0:1::1") != client_of("2001:db8::1")
    assert client_of("::ffff:203.0.113.7") == "203.0.113.7"
    assert client_of(None) == "unknown" and client_of("not an address") == "not an address"


def test_the_page_knows_every_code_the_server_can_send():
    """app.js's SIGN_IN_ERRORS has exactly the server's codes; the fragment only ever carries some."""
    import re
    from pathlib import Path

    import skywarden.server.console as console

    source = (Path(console.__file__).parent / "static" / "app.js").read_text()
    table = source[
        source.index("const SIGN_IN_ERRORS = new Map([") : source.index("]);", source.index("SIGN_IN_ERRORS"))
    ]
    assert set(re.findall(r'^\s*\["(\w+)",', table, re.M)) == set(SIGN_IN_ERRORS)
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
