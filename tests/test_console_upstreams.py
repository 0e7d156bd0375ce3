"""The console's Upstreams section in a real browser (Debian's Chromium through Playwright),
against a real server: an upstream added through the form (its credential never shown again),
listed with its source and state, enabled or disabled, removed after a confirmation; a settings
one listed read-only; the API's 422 shown field by field; the scope picker following the
upstreams; and an axe-core check. Every upstream here is disabled, so nothing connects."""

from __future__ import annotations

import secrets

import aiohttp
import pytest
from playwright.async_api import expect

from tests.support.admin import ADMIN_TOKEN
from tests.support.browser import browser, watched_page  # noqa: F401 - the fixture
from tests.support.logs import SECRETS
from tests.test_console import assert_clean, axe_violations, sign_in

slow = pytest.mark.slow  # a browser per test

REMOTE_URL = "https://mcp.example.com/mcp"
COLUMNS = ["name", "source", "transport", "target", "state", "tools", "problem", "actions"]


async def open_console(make_server, browser, settings=None):  # noqa: F811
    server = await make_server(settings)
    seen = await watched_page(browser)
    base = str(server.make_url("")).rstrip("/")
    await sign_in(seen.page, base)
    return base, seen, seen.page


async def stored_upstreams(base: str) -> list[dict]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async with admin.get(base + "/api/admin/upstreams") as resp:
            assert resp.status == 200
            return (await resp.json())["upstreams"]


async def add_by_api(base: str, body: dict) -> dict:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async with admin.post(base + "/api/admin/upstreams", json=body) as resp:
            assert resp.status == 201, await resp.text()
            return await resp.json()


async def cells(row) -> dict[str, str]:
    texts = await row.locator("td").all_inner_texts()
    return dict(zip(COLUMNS, (t.strip() for t in texts), strict=True))


def scope_option(page, name: str):
    return page.locator("#scope-filter option").filter(has_text=name)


def without_refused_requests(seen, *statuses: int) -> None:
    """The browser logs a refused request as a console error: those the test caused are left out."""
    seen.errors[:] = [e for e in seen.errors if not any(f"status of {s}" in e for s in statuses)]


@slow
async def test_a_remote_upstream_added_disabled_then_removed(make_server, browser):  # noqa: F811
    base, seen, page = await open_console(make_server, browser)
    assert await page.locator("#upstreams-body").inner_text() == "No upstreams: add one, or declare them in settings."
    assert await scope_option(page, "upstream:remote-mcp").count() == 0
    secret = "Bearer " + secrets.token_urlsafe(32)
    SECRETS.add(secret)

    await page.get_by_role("button", name="Add upstream").click()
    form = page.locator("#upstream-dialog")
    await form.wait_for(state="visible")
    assert await form.get_by_label("Command", exact=True).is_hidden()  # a remote one by default
    await form.get_by_label("Name", exact=True).fill("remote-mcp")
    assert await form.get_by_label("Transport").input_value() == "streamable-http"
    await form.get_by_label("URL").fill(REMOTE_URL)
    await form.get_by_label("Headers").fill(f"Authorization: {secret}")
    await form.get_by_label("Description").fill("The remote calculator")
    enabled = form.get_by_label("Enabled")
    assert await enabled.is_checked()
    await enabled.uncheck()
    await form.get_by_role("button", name="Add", exact=True).click()
    await form.wait_for(state="hidden")
    await expect(page.locator("#message")).to_have_text("Upstream remote-mcp added (disabled).")

    row = page.locator("#upstreams-body tr", has_text="remote-mcp")
    await row.wait_for()
    shown = await cells(row)
    assert shown["name"] == "remote-mcp\nThe remote calculator"
    assert (shown["source"], shown["transport"], shown["target"]) == ("admin", "streamable-http", REMOTE_URL)
    assert shown["state"] == "disabled" and shown["tools"] == "0" and shown["problem"] == ""
    assert await row.get_by_role("button", name="Enable remote-mcp").is_visible()
    assert await row.get_by_role("button", name="Remove remote-mcp").is_visible()

    # The credential went to the server, and is shown nowhere: not in the page, not in the form.
    assert secret not in await page.content()
    assert secret.split()[1] not in await page.content()
    assert await page.locator("#upstream-headers").input_value() == ""
    (view,) = await stored_upstreams(base)
    assert view["source"] == "admin" and view["options"]["headers"] == ["Authorization"]
    assert view["options"]["enabled"] is False and view["options"]["allow_private"] is False
    assert secret not in str(view)
    await page.get_by_role("button", name="Add upstream").click()  # opened again, the form is empty
    assert await form.get_by_label("Headers").input_value() == ""
    assert await form.get_by_label("Name", exact=True).input_value() == ""
    await form.get_by_role("button", name="Cancel").click()

    # The scope picker offers the new upstream's grants (read with the admin token, never public).
    await expect(scope_option(page, "upstream:remote-mcp")).to_have_count(1)
    await expect(scope_option(page, "remote-mcp__*")).to_have_count(1)

    # Enable sends {"enabled": true}: answered here, so nothing connects to the remote server.
    patched: list[dict] = []

    async def answer_patch(route):
        if route.request.method != "PATCH":
            await route.continue_()
            return
        patched.append(route.request.post_data_json)
        await route.fulfill(status=200, json={**view, "options": {**view["options"], "enabled": True}})

    await page.route("**/api/admin/upstreams/remote-mcp", answer_patch)
    await row.get_by_role("button", name="Enable remote-mcp").click()
    await expect(page.locator("#message")).to_have_text("Upstream remote-mcp enabled.")
    assert patched == [{"enabled": True}]
    await page.unroute("**/api/admin/upstreams/remote-mcp")

    # Removing asks first: without the confirmation nothing is removed.
    await row.get_by_role("button", name="Remove remote-mcp").click()
    confirm = page.locator("#remove-upstream-dialog")
    await confirm.wait_for(state="visible")
    assert "remote-mcp" in await confirm.locator("#remove-upstream-text").inner_text()
    await confirm.get_by_role("button", name="Remove", exact=True).click()
    assert await confirm.is_visible() and len(await stored_upstreams(base)) == 1
    await confirm.get_by_label("I understand its tools stop working at once").check()
    await confirm.get_by_role("button", name="Remove", exact=True).click()
    await confirm.wait_for(state="hidden")
    await expect(page.locator("#message")).to_have_text("Upstream remote-mcp removed.")
    await expect(row).to_have_count(0)
    assert await stored_upstreams(base) == []
    await expect(scope_option(page, "upstream:remote-mcp")).to_have_count(0)
    assert secret not in await page.content()
    await assert_clean(seen, base)


@slow
async def test_a_stdio_upstream_from_the_form_sends_its_arguments_and_environment(make_server, make_settings, browser):  # noqa: F811
    base, seen, page = await open_console(
        make_server, browser, make_settings(upstream_admin_commands=["calc-server"], upstream_admin_env=["CALC_*"])
    )
    token = secrets.token_urlsafe(24)
    SECRETS.add(token)
    await page.get_by_role("button", name="Add upstream").click()
    form = page.locator("#upstream-dialog")
    await form.get_by_label("Name", exact=True).fill("calc")
    await form.get_by_label("Transport").select_option("stdio")
    assert await form.get_by_label("URL").is_hidden()
    await form.get_by_label("Command", exact=True).fill("calc-server")
    await form.get_by_label("Arguments").fill("--mode\nfast mode\n")
    await form.get_by_label("Environment").fill(f"CALC_TOKEN: {token}\n\nCALC_LEVEL:3")
    await form.get_by_label("Enabled").uncheck()
    await form.get_by_role("button", name="Add", exact=True).click()
    await form.wait_for(state="hidden")

    row = page.locator("#upstreams-body tr", has_text="calc")
    await row.wait_for()
    shown = await cells(row)
    assert (shown["source"], shown["transport"], shown["state"]) == ("admin", "stdio", "disabled")
    assert shown["target"] == "calc-server --mode fast mode"
    (view,) = await stored_upstreams(base)
    assert view["options"]["args"] == ["--mode", "fast mode"]
    assert view["options"]["env"] == ["CALC_LEVEL", "CALC_TOKEN"]
    assert "url" not in view["options"]
    assert token not in await page.content() and token not in str(view)
    assert await page.locator("#upstream-env").input_value() == ""
    await assert_clean(seen, base)


@slow
async def test_an_upstream_declared_in_settings_is_listed_without_buttons(make_server, make_settings, browser):  # noqa: F811
    settings = make_settings(upstreams={"local": {"command": "x", "enabled": False}})
    base, seen, page = await open_console(make_server, browser, settings)
    row = page.locator("#upstreams-body tr", has_text="local")
    await row.wait_for()
    shown = await cells(row)
    assert shown == {
        "name": "local",
        "source": "settings",
        "transport": "stdio",
        "target": "x",
        "state": "disabled",
        "tools": "0",
        "problem": "",
        "actions": "in settings",
    }
    assert await row.get_by_role("button").count() == 0
    await expect(scope_option(page, "upstream:local")).to_have_count(1)
    await assert_clean(seen, base)


@slow
async def test_a_malformed_upstream_shows_the_api_messages_and_stores_nothing(make_server, browser):  # noqa: F811
    base, seen, page = await open_console(make_server, browser)
    secret = "Bearer " + secrets.token_urlsafe(32)
    SECRETS.add(secret)
    await page.get_by_role("button", name="Add upstream").click()
    form = page.locator("#upstream-dialog")
    await form.get_by_label("Name", exact=True).fill("Bad Name")
    await form.get_by_label("URL").fill(REMOTE_URL)
    await form.get_by_label("Enabled").uncheck()

    # A line that is not "Name: value" is caught in the page; the line (a secret?) is not quoted.
    await form.get_by_label("Headers").fill(secret)
    await form.get_by_role("button", name="Add", exact=True).click()
    errors = page.locator("#upstream-errors")
    await expect(errors).to_be_visible()
    assert await errors.locator("li").all_inner_texts() == ['headers: Line 1 is not "Name: value".']
    assert secret not in await page.evaluate("document.body.innerText")

    # The API's 422: its message for the field, in the form and in the status line.
    await form.get_by_label("Headers").fill(f"Authorization: {secret}")
    await form.get_by_role("button", name="Add", exact=True).click()
    await expect(errors.locator("li")).to_have_text(
        [
            "name: upstream name 'Bad Name' must be lower-case letters and digits, words joined by single hyphens, "
            "at most 32 characters"
        ]
    )
    await expect(page.locator("#message")).to_contain_text("The upstream was not added: The upstream is not valid.")
    assert await page.locator("#message").get_attribute("class") == "message error"
    assert await form.is_visible()  # kept open, to be corrected
    assert await stored_upstreams(base) == []
    assert await page.locator("#upstreams-body").inner_text() == "No upstreams: add one, or declare them in settings."
    assert secret not in await page.content()

    # Corrected, it is added; the messages go.
    await form.get_by_label("Name", exact=True).fill("good-name")
    await form.get_by_role("button", name="Add", exact=True).click()
    await form.wait_for(state="hidden")
    await page.locator("#upstreams-body tr", has_text="good-name").wait_for()
    await page.get_by_role("button", name="Add upstream").click()
    assert await errors.is_hidden()
    await form.get_by_role("button", name="Cancel").click()
    without_refused_requests(seen, 422)
    await assert_clean(seen, base)


@slow
async def test_the_upstreams_section_has_no_serious_accessibility_problem(make_server, make_settings, browser):  # noqa: F811
    settings = make_settings(upstreams={"local": {"command": "x", "enabled": False, "description": "A local one"}})
    server = await make_server(settings)
    base = str(server.make_url("")).rstrip("/")
    await add_by_api(
        base, {"name": "remote-mcp", "url": REMOTE_URL, "enabled": False, "description": "<b>not bold</b>"}
    )
    seen = await watched_page(browser)
    page = seen.page
    await sign_in(page, base)
    await page.locator("#upstreams-body tr", has_text="remote-mcp").wait_for()
    assert await page.locator("#upstreams-body b").count() == 0  # markup is shown as text
    assert "<b>not bold</b>" in await page.locator("#upstreams-body").inner_text()
    assert await axe_violations(page) == []

    await page.get_by_role("button", name="Add upstream").click()
    await page.locator("#upstream-dialog").wait_for(state="visible")
    assert await axe_violations(page) == []
    await page.locator("#upstream-dialog").get_by_role("button", name="Cancel").click()

    await page.get_by_role("button", name="Remove remote-mcp").click()
    await page.locator("#remove-upstream-dialog").wait_for(state="visible")
    assert await axe_violations(page) == []
    await page.locator("#remove-upstream-dialog").get_by_role("button", name="Cancel").click()

    await page.set_viewport_size({"width": 375, "height": 740})  # the table scrolls in its own region
    assert await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    assert await axe_violations(page) == []
    await assert_clean(seen, base)


@slow
async def test_refresh_reloads_the_upstreams(make_server, browser):  # noqa: F811
    base, seen, page = await open_console(make_server, browser)
    await add_by_api(base, {"name": "added-elsewhere", "url": REMOTE_URL, "enabled": False})
    assert await page.locator("#upstreams-body tr", has_text="added-elsewhere").count() == 0
    assert await scope_option(page, "upstream:added-elsewhere").count() == 0
    await page.get_by_role("button", name="Refresh").click()
    await page.locator("#upstreams-body tr", has_text="added-elsewhere").wait_for()
    await expect(scope_option(page, "upstream:added-elsewhere")).to_have_count(1)
    await assert_clean(seen, base)


async def test_a_key_keeps_its_upstream_scope_when_the_upstreams_cannot_be_read(make_server, browser):  # noqa: F811
    base, seen, page = await open_console(make_server, browser)
    await add_by_api(base, {"name": "kept", "url": REMOTE_URL, "enabled": False})
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async with admin.post(base + "/api/admin/keys", json={"name": "scoped", "scopes": ["upstream:kept"]}) as resp:
            created = await resp.json()
            SECRETS.add(created["key"])

    async def refused(route):
        await route.fulfill(status=503, json={"title": "down for the test", "status": 503})

    await page.route("**/api/admin/upstreams", refused)
    await page.get_by_role("button", name="Refresh").click()
    row = page.locator("#keys-body tr", has_text="scoped")
    await row.wait_for()
    await row.get_by_role("button").click()
    box = page.locator("#edit-scopes input[value='upstream:kept']")
    await expect(box).to_be_checked()  # shown and chosen, though no upstream was read
    await page.locator("#edit-form").get_by_role("button", name="Save").click()
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}) as admin:
        async with admin.get(base + f"/api/admin/keys/{created['id']}") as resp:
            assert (await resp.json())["scopes"] == ["upstream:kept"]
    without_refused_requests(seen, 503)
    await assert_clean(seen, base)
