"""A server's page in a real browser: Playwright driving Debian's Chromium (headless, no network but loopback).

Skipped, with one warning line, where /usr/bin/chromium (or the playwright package) is missing; `.ci/run`
installs Chromium when it can.
"""

from __future__ import annotations

import os
import shutil
import warnings
from pathlib import Path

import pytest

from tests.conftest import Harness
from tests.web_support import build_community, page_on

CHROMIUM = os.environ.get("BOUNCE_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"]
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}

try:
    from playwright.async_api import async_playwright
except ImportError:  # pragma: no cover - the test extras bring it
    async_playwright = None  # type: ignore[assignment]

_why_not = None if async_playwright is not None else "the playwright package is not installed"
if _why_not is None and not (Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK)):
    _why_not = f"no Chromium at {CHROMIUM} (apt-get install chromium)"
if _why_not is not None:
    warnings.warn(f"web page browser tests skipped: {_why_not}", UserWarning, stacklevel=1)
    pytestmark = pytest.mark.skip(reason=_why_not)


async def test_server_page_in_chromium(harness: Harness, tmp_path: Path) -> None:
    await harness.start(web_port=0)
    s = harness.studio
    await build_community(harness)
    handle = await harness.slash(s.bob, "me public", {"switch": "off"})
    await handle.wait_text()
    url = await page_on(harness)
    outside: list[str] = []

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        try:
            # Desktop, scripts off: everything works through plain links.
            context = await browser.new_context(viewport=DESKTOP, java_script_enabled=False, color_scheme="light")

            async def only_loopback(route, request) -> None:  # noqa: ANN001
                if request.url.startswith("http://127.0.0.1:"):
                    await route.continue_()
                else:
                    outside.append(request.url)
                    await route.abort()

            await context.route("**/*", only_loopback)
            page = await context.new_page()
            response = await page.goto(url)
            assert response is not None and response.status == 200
            assert await page.inner_text("h1") == "Night Owls Studio"
            board = page.locator("section.board")
            assert "Alice" in await board.inner_text()
            assert await page.locator('nav.tabs a[aria-current="page"]').inner_text() == "Season"

            await page.click("nav.tabs >> text=Week")
            assert page.url.endswith("?period=week")
            assert await page.locator('nav.tabs a[aria-current="page"]').inner_text() == "Week"
            assert "This week (since 2 Mar)" in await page.locator("section.board .window").inner_text()
            await page.click("nav.tabs >> text=All time")
            assert page.url.endswith("?period=all")
            rows = await page.locator("section.board tbody tr").all_inner_texts()
            assert rows[0].split("\t")[:3] == ["1", "Alice", "8"]

            wall = await page.locator("section.wall").inner_text()
            assert "Night Drive <EP>" in wall and "Alice" in wall  # the wall: project, member, date
            assert "Secret Sketch" not in wall                    # announcements off: not named
            text = await page.inner_text("body")
            assert "Bob" not in text                               # /me public off: on no part of the page
            assert await page.locator("svg.heatmap rect").count() > 150
            await page.screenshot(path=str(tmp_path / "page-desktop.png"), full_page=True)
            await context.close()

            # A phone, dark mode: nothing wider than the screen.
            phone = await browser.new_context(viewport=PHONE, device_scale_factor=2, color_scheme="dark",
                                              is_mobile=True, has_touch=True)
            await phone.route("**/*", only_loopback)
            page = await phone.new_page()
            await page.goto(url)
            assert await page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
            background = await page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert background == "rgb(20, 22, 25)"  # the dark palette
            await page.screenshot(path=str(tmp_path / "page-phone.png"), full_page=True)

            # Taken down: the same address is a 404 from then on.
            handle = await harness.slash(s.admin, "coach web", {"action": "off"})
            await handle.wait_text()
            response = await page.goto(url)
            assert response is not None and response.status == 404
            assert "isn't here" in await page.inner_text("h1")
            await phone.close()
        finally:
            await browser.close()
    assert outside == []  # no outside fonts, scripts or anything else
    assert (tmp_path / "page-desktop.png").stat().st_size > 10_000
    keep = os.environ.get("BOUNCE_SCREENSHOTS")
    if keep:  # for a person to look at
        for name in ("page-desktop.png", "page-phone.png"):
            shutil.copy(tmp_path / name, Path(keep) / name)
