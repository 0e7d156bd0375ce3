"""The admin console in a real browser (Debian's Chromium through Playwright), against a real
server: sign in, a key's whole life, what the page never shows again, markup rendered as text,
no CSP violation or console error, only its own origin contacted, and an axe-core check.

Single sign-on is tested twice: over plain HTTP against a small provider in this process (the
browser binding, the bounded pending sign-ins), and in the browser against npm oidc-provider."""

from __future__ import annotations

import re

import aiohttp
import pytest
from playwright.async_api import expect

from tests.support.admin import ADMIN_TOKEN
from tests.support.browser import browser, watched_page  # noqa: F401 - the fixture
from tests.support.logs import SECRETS, drain_logs
from tests.support.node_tools import ensure_tools

slow = pytest.mark.slow  # a browser, or a Node provider, per test


@pytest.fixture
async def console(make_server, browser):  # noqa: F811
    """A fresh server and a watched browser page: (base URL, what the page did, the page)."""
    server = await make_server()
    seen = await watched_page(browser)
    return str(server.make_url("")).rstrip("/"), seen, seen.page


async def loaded(page) -> None:
    """Signed in and every section drawn (the denials table comes last, then focus moves to main)."""
    await page.locator("#console").wait_for(state="visible")
    await page.locator("#denials-body tr").first.wait_for()


async def sign_in(page, base: str) -> None:
    await page.goto(base + "/admin")
    await page.get_by_label("Admin token").fill(ADMIN_TOKEN)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await loaded(page)


async def api_status(base: str, key: str) -> int:
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/api/mcp/tools", headers={"X-API-Key": key}) as resp:
            return resp.status


async def axe_violations(page) -> list[str]:
    """axe-core (npm) run inside the page; only serious and critical violations are returned."""
    source = (ensure_tools() / "node_modules" / "axe-core" / "axe.min.js").read_text()
    await page.evaluate(source + "\n;0")
    found = await page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => r.violations"
        ".filter(v => ['serious', 'critical'].includes(v.impact)).map(v => v.id + ': ' + v.help))"
    )
    return found


async def assert_clean(seen, base: str) -> None:
    assert await seen.csp_violations() == []
    assert seen.errors == []
    assert seen.dialogs == []
    assert seen.fetches and all(url.startswith(base) for url in seen.fetches)
    assert all(url.startswith(base) for url in seen.requests), [u for u in seen.requests if not u.startswith(base)]


@slow
async def test_a_key_from_creation_to_revocation(console):
    base, seen, page = console
    await sign_in(page, base)

    await page.get_by_role("button", name="New key").click()
    await page.locator("#create-dialog").get_by_label("Name", exact=True).fill("console key")
    await page.get_by_role("button", name="Create").click()
    reveal = page.locator("#reveal-dialog")
    await reveal.wait_for(state="visible")
    assert "You will not see this key again" in await reveal.inner_text()
    key = await page.locator("#revealed").input_value()
    SECRETS.add(key)
    assert key.startswith("skw_live_")
    await page.get_by_role("button", name="I have stored it").click()
    assert await page.locator("#revealed").input_value() == ""

    assert await api_status(base, key) == 200

    await page.reload()  # the credential lived in memory: signed out, and the key is never shown again
    await page.locator("#sign-in").wait_for(state="visible")
    await sign_in(page, base)
    assert key not in await page.content()
    row = page.locator("#keys-body tr", has_text="console key")
    await row.wait_for()
    assert "never" not in (await row.locator("td").nth(3).inner_text())
    assert (await row.locator("td").nth(4).inner_text()) == "1"
    assert (await page.locator("#usage-total").inner_text()).startswith("1 requests")
    heights = await page.locator("#usage-chart rect").evaluate_all(
        "rs => rs.map(r => Number(r.getAttribute('height')))"
    )
    assert len(heights) == 24 and max(heights) > 0

    assert await axe_violations(page) == []

    await row.get_by_role("button").click()
    dialog = page.locator("#key-dialog")
    await dialog.wait_for(state="visible")
    assert await axe_violations(page) == []
    await page.get_by_label("Grace period for the old key, seconds").fill("3600")
    await page.get_by_role("button", name="Rotate").click()
    await reveal.wait_for(state="visible")
    new_key = await page.locator("#revealed").input_value()
    SECRETS.add(new_key)
    await page.get_by_role("button", name="I have stored it").click()
    assert new_key != key
    assert await api_status(base, key) == 200  # the old key works during its grace period
    assert await api_status(base, new_key) == 200

    await row.get_by_role("button").click()
    await dialog.wait_for(state="visible")
    await page.get_by_label("Reason").fill("leaked in a ticket")
    await page.get_by_label("I understand the key stops working at once").check()
    await page.get_by_role("button", name="Revoke").click()
    await dialog.wait_for(state="hidden")
    assert await api_status(base, new_key) == 401
    assert await api_status(base, key) == 401

    await page.reload()
    await sign_in(page, base)
    content = await page.content()
    assert key not in content and new_key not in content
    assert "revoked" in await page.locator("#keys-body tr", has_text="console key").inner_text()
    from skywarden.server.keys import display_prefix

    denied = page.locator("#denials-body tr", has_text=display_prefix(new_key)).first
    assert "revoked" in await denied.inner_text()
    await denied.get_by_role("button").click()  # a denied key's prefix leads to that key
    await page.locator("#key-dialog").wait_for(state="visible")
    assert await page.locator("#key-dialog-title").inner_text() == "console key"
    await assert_clean(seen, base)


@slow
async def test_markup_in_names_and_metadata_renders_as_text(make_client, browser):  # noqa: F811
    client = await make_client()
    hostile = "<img src=x onerror=alert(1)>"
    resp = await client.admin.post(
        "/api/admin/keys", json={"name": hostile, "metadata": {"note": "<script>alert(2)</script>"}}
    )
    SECRETS.add((await resp.json())["key"])
    base = str(client.make_url("")).rstrip("/")
    seen = await watched_page(browser)
    page = seen.page
    await sign_in(page, base)
    row = page.locator("#keys-body tr", has_text=hostile)
    await row.wait_for()
    await row.get_by_role("button").click()
    await page.locator("#key-dialog").wait_for(state="visible")
    assert await page.locator("#key-dialog-title").inner_text() == hostile
    assert "<script>alert(2)</script>" in await page.locator("#key-details").inner_text()
    assert await page.locator("img").count() == 0 and await page.locator("#key-details script").count() == 0
    await assert_clean(seen, base)


@slow
async def test_sign_out_forgets_the_credential_and_a_wrong_token_is_refused(console):
    base, seen, page = console
    await page.goto(base + "/admin")
    await page.get_by_label("Admin token").fill("wrong-token-" + "x" * 30)
    await page.get_by_role("button", name="Sign in", exact=True).click()
    await expect(page.locator("#message")).to_contain_text("Sign-in refused")
    assert await page.locator("#console").is_hidden()
    await sign_in(page, base)
    await page.get_by_role("button", name="Sign out").click()
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.evaluate("document.querySelectorAll('#keys-body tr').length") == 0
    assert await page.evaluate("Object.keys(localStorage).length + Object.keys(sessionStorage).length") == 0
    assert await page.evaluate("document.cookie") == ""
    seen.errors[:] = [e for e in seen.errors if "401" not in e]  # the refused sign-in's own request
    await assert_clean(seen, base)


async def test_the_console_can_be_turned_off(make_server, make_settings, aiohttp_client):
    server = await make_server(make_settings(console_enabled="false"))
    client = await aiohttp_client(server)
    for path in ("/admin", "/admin/static/app.js", "/admin/config.json"):
        assert (await client.get(path)).status == 404


async def test_the_page_and_its_assets_carry_a_strict_csp(client):
    for path in ("/admin", "/admin/static/app.js", "/admin/static/style.css", "/admin/config.json"):
        resp = await client.get(path)
        assert resp.status == 200, path
        csp = resp.headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp
    config = await (await client.get("/admin/config.json")).json()
    assert config == {"tools": sorted(config["tools"]), "sso": False}
    assert "get_forecast" in config["tools"]
    assert (await client.get("/admin/static/../app.py")).status == 404
    assert (await client.get("/admin/static/nope.js")).status == 404


@pytest.fixture
async def sso_server(make_server, make_settings, tmp_path):
    """A server whose console signs in with oidc-provider's login form (alice is an admin, bob is not)."""
    from tests.support.oidc_provider import ADMIN_AUDIENCE, ADMIN_ROLE, Client, OpenIDProvider
    from tests.support.server_process import free_port

    port = free_port()
    console = Client(
        "console",
        "",
        "openid profile email",
        extra={
            "token_endpoint_auth_method": "none",
            "grant_types": ["authorization_code"],
            "response_types": ["code"],
            "redirect_uris": [f"http://127.0.0.1:{port}/admin/oidc/callback"],
        },
    )
    provider = OpenIDProvider(
        tmp_path, resources={ADMIN_AUDIENCE: "admin"}, clients=[console], users={"alice": [ADMIN_ROLE], "bob": []}
    )
    await provider.start()
    settings = make_settings(
        oidc_issuers=provider.issuer, admin_oidc_audience=ADMIN_AUDIENCE, console_oidc_client_id="console"
    )
    server = await make_server(settings, port=port)
    yield server, provider
    await provider.stop()


async def sso_sign_in(page, base: str, who: str) -> None:
    await page.goto(base + "/admin")
    await page.get_by_role("link", name="Sign in with single sign-on").click()
    await page.locator("input[name=login]").fill(who)
    await page.locator("input[name=password]").fill("any password")
    await page.locator("button[type=submit]").click()
    await page.get_by_role("button", name="Continue").click()
    await page.wait_for_url(base + "/admin")


@pytest.fixture
async def sso_console(sso_server, browser):  # noqa: F811
    """(base URL, what the page did, the page, the identity provider) for a console with SSO."""
    server, provider = sso_server
    seen = await watched_page(browser)
    return str(server.make_url("")).rstrip("/"), seen, seen.page, provider


@slow
async def test_single_sign_on_then_an_action_audited_with_the_subject(sso_console):
    base, seen, page, provider = sso_console
    await sso_sign_in(page, base, "alice")
    await loaded(page)
    assert await page.locator("#who").inner_text() == "Signed in as alice"
    assert "#" not in page.url  # the one-time handle left the address bar

    await page.get_by_role("button", name="New key").click()
    await page.locator("#create-dialog").get_by_label("Name", exact=True).fill("made by alice")
    await page.get_by_role("button", name="Create").click()
    await page.locator("#reveal-dialog").wait_for(state="visible")
    SECRETS.add(await page.locator("#revealed").input_value())
    actions = [e for e in drain_logs() if e.get("event") == "admin action" and e.get("action") == "key.create"]
    assert actions[-1]["actor_subject"] == "alice" and actions[-1]["actor_issuer"] == provider.issuer
    assert actions[-1]["after"]["name"] == "made by alice"
    assert seen.fetches and all(u.startswith(base) for u in seen.fetches)  # the page's scripts: own origin only
    assert await seen.csp_violations() == [] and seen.dialogs == []


@slow
async def test_single_sign_on_is_bound_to_the_browser_and_used_once(sso_console):
    """The real provider and the real browser: the callback URL and the handle, taken from the
    browser on their way, are refused to other clients (and do not spoil the browser's sign-in);
    after it, neither works again, even with the browser's cookie."""
    from urllib.parse import urljoin

    base, seen, page, _ = sso_console
    taken: dict[str, str] = {}
    refused: list[tuple[str, int, str]] = []

    async def callback_first_elsewhere(route):
        """The consent form's answer redirects (through the provider) to the callback; a redirect
        is not routed, so the hops are followed here, then the browser is sent on to the callback."""
        location, url = "", route.request.url
        response = await route.fetch(max_redirects=0)
        for _ in range(3):
            location = urljoin(url, response.headers.get("location", ""))
            if "/admin/oidc/callback" in location:
                break
            url, response = location, await page.context.request.get(location, max_redirects=0)
        taken["callback"] = location
        async with aiohttp.ClientSession() as other:
            async with other.get(location, allow_redirects=False) as resp:
                refused.append(("callback", resp.status, resp.headers["Location"]))
        await route.fulfill(status=303, headers={"Location": location})

    async def handle_first_elsewhere(route):
        taken["handle"] = route.request.post_data_json["handle"]
        taken["cookie"] = next(c["value"] for c in await page.context.cookies() if c["name"] == "skywarden-signin")
        async with aiohttp.ClientSession() as third:
            async with third.post(route.request.url, json={"handle": taken["handle"]}) as resp:
                body = await resp.json()
                refused.append(("redeem", resp.status, body["code"]))
                assert "access_token" not in body
        await route.continue_()

    await page.goto(base + "/admin")
    await page.get_by_role("link", name="Sign in with single sign-on").click()
    await page.locator("input[name=login]").fill("alice")
    await page.locator("input[name=password]").fill("any password")
    await page.locator("button[type=submit]").click()
    await page.route(lambda url: "/interaction/" in url, callback_first_elsewhere)
    await page.route(lambda url: url.endswith("/admin/oidc/redeem"), handle_first_elsewhere)
    await page.get_by_role("button", name="Continue").click()
    await loaded(page)
    assert await page.locator("#who").inner_text() == "Signed in as alice"
    assert refused == [("callback", 302, "/admin#error=other_browser"), ("redeem", 400, "other_browser")]
    assert all(c["name"] != "skywarden-signin" for c in await page.context.cookies())  # cleared once used

    replay = {"Cookie": f"skywarden-signin={taken['cookie']}"}
    async with aiohttp.ClientSession(headers=replay) as again:
        async with again.post(base + "/admin/oidc/redeem", json={"handle": taken["handle"]}) as resp:
            assert resp.status == 400 and (await resp.json())["code"] == "expired"
        async with again.get(taken["callback"], allow_redirects=False) as resp:
            assert resp.headers["Location"] == "/admin#error=expired"
    assert await seen.csp_violations() == [] and seen.dialogs == []


@slow
async def test_a_signed_in_user_without_the_admin_role_sees_a_clear_refusal(sso_console):
    base, seen, page, _ = sso_console
    await sso_sign_in(page, base, "bob")
    message = page.locator("#message")
    await expect(message).to_contain_text("not a Skywarden admin")
    text = await message.inner_text()
    assert "bob" in text and "not a Skywarden admin" in text and "roles=Skywarden.Admin" in text
    assert await page.locator("#console").is_hidden()
    assert await seen.csp_violations() == [] and seen.dialogs == []


@slow
async def test_keyboard_only_and_a_phone_width(console):
    base, seen, page = console
    await page.set_viewport_size({"width": 375, "height": 740})
    await page.goto(base + "/admin")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.textContent") == "Skip to content"
    await page.locator("#admin-token").focus()
    await page.keyboard.type(ADMIN_TOKEN)
    await page.keyboard.press("Enter")
    await loaded(page)
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    await page.get_by_role("button", name="New key").focus()
    await page.keyboard.press("Enter")
    await page.locator("#create-dialog").wait_for(state="visible")
    assert await page.evaluate("document.activeElement.id") == "create-name"  # focus moved into the dialog
    outline = await page.evaluate("(s => [s.outlineStyle, s.outlineWidth])(getComputedStyle(document.activeElement))")
    assert outline == ["solid", "3px"]  # the console's own visible focus ring, not the browser's default
    await page.keyboard.press("Escape")
    await page.locator("#create-dialog").wait_for(state="hidden")
    assert await axe_violations(page) == []
    await assert_clean(seen, base)


@slow
async def test_fifteen_idle_minutes_sign_the_console_out(console):
    base, seen, page = console
    await page.clock.install()
    await sign_in(page, base)
    await page.clock.fast_forward("14:00")
    assert await page.locator("#console").is_visible()  # not yet
    await page.clock.fast_forward("01:30")
    await page.locator("#sign-in").wait_for(state="visible")
    assert "15 minutes without activity" in await page.locator("#message").inner_text()
    assert await page.evaluate("document.querySelectorAll('#keys-body tr').length") == 0
    await assert_clean(seen, base)


async def test_an_unreachable_identity_provider_is_a_503_at_sign_on_start(make_server, make_settings, aiohttp_client):
    from tests.support.server_process import free_port

    dead = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(
        oidc_issuers=dead,
        admin_oidc_audience="urn:x",
        console_oidc_client_id="console",
        unauthenticated_limit="2/minute",
    )
    client = await aiohttp_client(await make_server(settings))
    assert (await (await client.get("/admin/config.json")).json())["sso"] is True
    for _ in range(2):
        resp = await client.get("/admin/oidc/start", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == "/admin#error=unavailable"
        assert "Set-Cookie" not in resp.headers  # no sign-in was started
    resp = await client.get("/admin/oidc/start", allow_redirects=False)  # each start holds state: budgeted per address
    assert resp.status == 429 and resp.headers["Retry-After"]


# --- what the page shows: only its own messages, nothing hidden shown, a phone width, a scale ---

SIGN_IN_FAILED = "Single sign-on failed: "
UNKNOWN_SIGN_IN_ERROR = "The sign-in did not complete; sign in again."
FROM_THE_ADDRESS = [  # (what follows /admin, whether the page says anything)
    ("#error=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3EYour%20account%20is%20locked", True),
    ("#error=Call%20%2B1%20555%200100%20to%20restore%20your%20access", True),
    ("#error=constructor", True),
    ("#error=__proto__", True),
    ("#error=toString", True),
    ("#error=hasOwnProperty", True),
    ("#error=EXPIRED", True),
    ("#error=expired%00phish", True),
    ("#error=%E2%80%AEdekcol%20si%20tnuocca", True),
    ("#%65rror=phish", True),
    ("#error=expired&error=phish", True),
    ("#signin=%3Cimg%20src%3Dx%20onerror%3Dalert(1)%3E", True),
    ("#signin=made-up&error=phish", True),
    ("?error=phish%20locked", False),
    ("?signin=x&error=phish#", False),
]


def known_messages() -> set[str]:
    from skywarden.server.console.sso import SIGN_IN_ERRORS

    return {SIGN_IN_FAILED + text for text in [*SIGN_IN_ERRORS.values(), UNKNOWN_SIGN_IN_ERROR]}


@pytest.fixture
async def sso_page(make_server, make_settings, aiohttp_server, browser):  # noqa: F811
    """A console with single sign-on against the in-process provider, and a watched page."""
    from tests.support.oidc_provider import ADMIN_AUDIENCE
    from tests.test_console_sso import FakeProvider

    provider = FakeProvider()
    provider.issuer = str((await aiohttp_server(provider.app())).make_url("")).rstrip("/")
    settings = make_settings(
        oidc_issuers=provider.issuer, admin_oidc_audience=ADMIN_AUDIENCE, console_oidc_client_id="console"
    )
    server = await make_server(settings)
    seen = await watched_page(browser)
    return str(server.make_url("")).rstrip("/"), seen, seen.page


@slow
async def test_the_page_shows_only_its_own_messages_whatever_the_address_says(sso_page):
    base, seen, page = sso_page
    for tail, says in FROM_THE_ADDRESS:
        await page.goto("about:blank")  # a new load each time, not a change of fragment
        await page.goto(base + "/admin" + tail)
        await expect(page).to_have_url(base + "/admin")  # the address is cleared at once
        message = page.locator("#message")
        if says:
            await expect(message).to_have_text(re.compile("."))
            assert await message.inner_text() in known_messages(), tail
        else:
            await page.locator("#sso").wait_for(state="visible")
            assert await message.inner_text() == ""
        await page.evaluate("window.postMessage({error: 'phish'}, '*'); window.postMessage('#error=phish', '*')")
        shown = await page.evaluate("document.body.innerText")
        assert not any(word in shown for word in ("phish", "locked", "555", "<img", "dekcol")), tail
        assert await page.locator("img").count() == 0
    for code, text in known_codes():
        await page.goto("about:blank")
        await page.goto(f"{base}/admin#error={code}")
        await expect(page.locator("#message")).to_have_text(SIGN_IN_FAILED + text)
    assert await seen.csp_violations() == [] and seen.dialogs == []
    assert all("/admin/oidc/redeem" in e or "status of 400" in e for e in seen.errors), seen.errors


def known_codes() -> list[tuple[str, str]]:
    from skywarden.server.console.sso import SIGN_IN_ERRORS

    return list(SIGN_IN_ERRORS.items())


HIDDEN_BUT_SHOWN = (
    "[...document.querySelectorAll('[hidden]')]"
    ".filter(e => getComputedStyle(e).display !== 'none').map(e => e.id || e.outerHTML.slice(0, 60))"
)


@slow
async def test_an_element_marked_hidden_is_never_displayed(console):
    base, seen, page = console
    await page.goto(base + "/admin")
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.evaluate("getComputedStyle(document.getElementById('sign-out')).display") == "none"
    assert await page.evaluate(HIDDEN_BUT_SHOWN) == []
    # The rule holds for every element and every author style, not only today's markup.
    added = await page.evaluate(
        "(() => { const made = ['button', 'a', 'div', 'span', 'li', 'svg', 'table', 'section'].map(tag => {"
        "  const node = document.createElement(tag); node.hidden = true; node.className = 'button row top-key link';"
        "  node.style.display = 'flex'; document.body.append(node); return node; });"
        " return made.map(n => getComputedStyle(n).display); })()"
    )
    assert set(added) == {"none"}
    await sign_in(page, base)
    assert await page.evaluate("getComputedStyle(document.getElementById('sign-out')).display") != "none"
    assert await page.evaluate(HIDDEN_BUT_SHOWN) == []
    await page.get_by_role("button", name="Sign out").click()
    await page.locator("#sign-in").wait_for(state="visible")
    assert await page.evaluate("getComputedStyle(document.getElementById('sign-out')).display") == "none"
    assert await page.evaluate("getComputedStyle(document.getElementById('console')).display") == "none"
    assert await page.evaluate(HIDDEN_BUT_SHOWN) == []
    await assert_clean(seen, base)


LONG_NAMES = [
    "a-service-account-name-without-any-spaces-for-the-weather-ingest-pipeline-" + "x" * 26,
    "Support agent for the customer success team in Europe, the Americas and elsewhere",
    "short",
]
# Each top key's row: its box within the list's, the count to the right of the name and on its
# first line, and nothing wider than its box.
TOP_KEY_BOXES = """() => [...document.querySelectorAll('#top-keys li')].map(li => {
  const box = e => e.getBoundingClientRect();
  const list = box(document.getElementById('top-keys')), row = box(li);
  const name = box(li.querySelector('.top-name')), count = box(li.querySelector('.count'));
  return {
    inList: row.left >= list.left - 0.5 && row.right <= list.right + 0.5,
    nameInRow: name.left >= row.left - 0.5 && name.right <= count.left + 0.5,
    countInRow: count.right <= row.right + 0.5,
    countOnFirstLine: count.top < name.top + count.height,
    noOverflow: [...li.querySelectorAll('*')].every(e => e.scrollWidth <= e.clientWidth + 1 || e.clientWidth === 0),
  };
})"""


@slow
async def test_a_phone_width_keeps_long_top_keys_whole_and_the_chart_has_a_scale(make_client, browser):  # noqa: F811
    client = await make_client()
    for uses, name in enumerate(LONG_NAMES, start=1):
        resp = await client.admin.post("/api/admin/keys", json={"name": name})
        key = (await resp.json())["key"]
        SECRETS.add(key)
        for _ in range(uses):
            assert (await client.anonymous.get("/api/mcp/tools", headers={"X-API-Key": key})).status == 200
    base = str(client.make_url("")).rstrip("/")
    seen = await watched_page(browser)
    page = seen.page
    await page.set_viewport_size({"width": 375, "height": 800})
    await sign_in(page, base)
    await page.locator("#top-keys li").nth(2).wait_for()
    boxes = await page.evaluate(TOP_KEY_BOXES)
    assert len(boxes) == 3 and all(all(b.values()) for b in boxes), boxes
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert await page.evaluate(
        "[...document.querySelectorAll('.card')].every(c => c.getBoundingClientRect().right <= window.innerWidth)"
    )

    figure = page.locator("#usage-chart").locator("xpath=..")
    assert await figure.locator(".y-axis span").all_inner_texts() == ["10", "5", "0"]  # 6 uses: the scale tops at 10
    x_labels = await figure.locator(".x-axis span").all_inner_texts()
    assert len(x_labels) == 3 and all(re.fullmatch(r"\d\d:00", t) for t in x_labels), x_labels
    assert await figure.locator("figcaption").inner_text() == "Requests per hour (scale 0 to 10); times in UTC"
    await page.select_option("#usage-window", "30d")
    await expect(figure.locator("figcaption")).to_have_text("Requests per day (scale 0 to 10); times in UTC")
    x_labels = await figure.locator(".x-axis span").all_inner_texts()
    assert all(re.fullmatch(r"\d\d-\d\d", t) for t in x_labels), x_labels
    heights = await page.locator("#usage-chart rect").evaluate_all(
        "rs => rs.map(r => Number(r.getAttribute('height')))"
    )
    assert max(heights) == 80 * 6 / 10  # the bar is drawn to the labelled scale
    await assert_clean(seen, base)


@slow
async def test_refresh_reloads_keys_usage_and_denials(console):
    base, seen, page = console
    await sign_in(page, base)
    total = await page.locator("#usage-total").inner_text()
    assert await page.locator("#denials-body").inner_text() == "No denials recorded."
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async with admin.post(base + "/api/admin/keys", json={"name": "made while the page was open"}) as resp:
            key = (await resp.json())["key"]
            SECRETS.add(key)
    assert await api_status(base, key) == 200
    assert await api_status(base, "skw_live_" + "B" * 50) == 401
    assert await page.locator("#keys-body tr", has_text="made while the page was open").count() == 0

    await page.get_by_role("button", name="Refresh").click()
    await page.locator("#keys-body tr", has_text="made while the page was open").wait_for()
    await expect(page.locator("#usage-total")).not_to_have_text(total)
    assert int((await page.locator("#usage-total").inner_text()).split()[0]) == int(total.split()[0]) + 1
    await expect(page.locator("#denials-body")).to_contain_text("401")
    assert (await page.locator("#updated").inner_text()).startswith("Updated ")
    assert await page.evaluate("document.activeElement.id") == "refresh"  # focus stays on the control
    assert await axe_violations(page) == []
    seen.errors[:] = [e for e in seen.errors if "401" not in e]
    await assert_clean(seen, base)
