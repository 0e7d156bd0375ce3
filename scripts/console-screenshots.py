"""Take the screenshots in docs/console/ (run with the test virtualenv; needs Chromium).

    .venv-test/bin/python scripts/console-screenshots.py

A server with a few keys and some traffic, the console signed in with the admin token,
a laptop and a phone width."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from playwright.async_api import async_playwright

from skywarden.server.testing import running_app

OUT = Path(__file__).resolve().parent.parent / "docs" / "console"


async def main() -> None:
    OUT.mkdir(exist_ok=True)
    from skywarden.tools.weather import weather

    async with running_app(tools=[weather], weather_base_url="http://127.0.0.1:9") as app:
        keys = []
        for name, owner in [("nightly-report", "data team"), ("support-agent", "support"), ("ci-smoke", "platform")]:
            keys.append(await app.create_key(name=name, owner=owner))
        for i, key in enumerate(keys):
            for _ in range(3 * (3 - i)):
                await app.list_tools(key)
        await app.list_tools("skw_live_" + "A" * 50)  # one denial
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=shutil.which("chromium"), headless=True)
            for name, size in [("laptop", {"width": 1280, "height": 1100}), ("phone", {"width": 390, "height": 1600})]:
                page = await browser.new_page(viewport=size)
                await page.goto(app.url + "/admin")
                if name == "laptop":
                    await page.screenshot(path=str(OUT / "sign-in.png"))
                await page.get_by_label("Admin token").fill(app.admin_token)
                await page.get_by_role("button", name="Sign in", exact=True).click()
                await page.locator("#keys-body tr").first.wait_for()
                await page.screenshot(path=str(OUT / f"keys-{name}.png"), full_page=name == "phone")
                if name == "laptop":
                    await page.get_by_role("button", name="New key").click()
                    await page.locator("#create-dialog").get_by_label("Name", exact=True).fill("demo")
                    await page.get_by_role("button", name="Create").click()
                    await page.locator("#reveal-dialog").wait_for()
                    await page.screenshot(path=str(OUT / "reveal-once.png"))
                    await page.get_by_role("button", name="I have stored it").click()
                    await page.locator("#keys-body tr", has_text="nightly-report").get_by_role("button").click()
                    await page.locator("#key-dialog").wait_for()
                    await page.screenshot(path=str(OUT / "key-detail.png"))
            await browser.close()


if __name__ == "__main__":
    asyncio.run(main())
