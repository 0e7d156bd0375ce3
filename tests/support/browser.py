"""A real browser for the console tests: Debian's Chromium driven by Playwright, headless.

Everything the page does is recorded: console errors, CSP violations (a listener installed
before any page script runs) and every request it makes, so a test can say "no errors, no
violations, nothing fetched from another origin"."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field

import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome")
RECORD_CSP = (
    "window.__csp = [];"
    "document.addEventListener('securitypolicyviolation',"
    " e => window.__csp.push(e.violatedDirective + ' ' + e.blockedURI));"
)


def chromium_path() -> str:
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    pytest.fail("Chromium is not installed (Debian: apt-get install chromium); the console tests need a real browser")


@dataclass
class Watched:
    page: object
    errors: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    fetches: list[str] = field(default_factory=list)  # what the page's scripts asked for (fetch, XHR)
    dialogs: list[str] = field(default_factory=list)

    async def csp_violations(self) -> list[str]:
        return await self.page.evaluate("window.__csp || []")


async def watched_page(browser) -> Watched:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    await context.add_init_script(RECORD_CSP)
    page = await context.new_page()
    seen = Watched(page)
    page.on("console", lambda m: seen.errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: seen.errors.append(str(e)))
    page.on("request", lambda r: seen.requests.append(r.url))
    page.on("request", lambda r: seen.fetches.append(r.url) if r.resource_type in {"fetch", "xhr"} else None)

    async def on_dialog(dialog):
        seen.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    return seen


@pytest.fixture
async def browser():
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        instance = await pw.chromium.launch(executable_path=chromium_path(), headless=True, args=["--no-sandbox"])
        yield instance
        await instance.close()
