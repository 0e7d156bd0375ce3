"""The admin console in a real browser (Debian's Chromium through Playwright), against a real
server: sign in, a key's whole life, what the page never shows again, markup rendered as text,
no CSP violation or console error, only its own origin contacted, and an axe-core check.

Single sign-on is tested twice: over plain HTTP against a small provider in this process (the
browser binding, the bounded pending sign-ins), and in the browser against npm oidc-provider."""

from __future__ import annotations

import aiohttp
import pytest
from playwright.async_api import expect

from tests.browser import browser, watched_page  # noqa: F401 - the fixture
from tests.conftest import ADMIN_TOKEN, SECRETS, drain_logs
from tests.node_tools import ensure_tools

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
    from skywarden.server.auth.keys import display_prefix

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
    assert config == {"tools": sorted(config["tools"]), "sso": False} and "get_forecast" in config["tools"]
    assert (await client.get("/admin/static/../app.py")).status == 404
    assert (await client.get("/admin/static/nope.js")).status == 404


@pytest.fixture
async def sso_server(make_server, make_settings, tmp_path):
    """A server whose console signs in with oidc-provider's login form (alice is an admin, bob is not)."""
    from tests.oidc_provider import ADMIN_AUDIENCE, ADMIN_ROLE, Client, OpenIDProvider
    from tests.server_process import free_port

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


async def test_an_unreachable_identity_provider_sends_the_browser_back_with_the_reason(
    make_server, make_settings, aiohttp_client
):
    from tests.server_process import free_port

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
