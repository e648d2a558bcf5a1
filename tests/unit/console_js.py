"""The console's JavaScript modules, loaded in Debian's Chromium for unit tests of their pure
logic: the files are served from the package by Playwright itself (no gateway, no server)
on a made-up origin, and a test calls a module's functions with ``call``."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, async_playwright

from flowmesh_gateway.pages import FILES, SECURITY_HEADERS, read_files

CHROMIUM = Path(os.environ.get("FLOWMESH_TEST_CHROMIUM", "/usr/bin/chromium"))
ORIGIN = "http://console.test"
FOLDER = resources.files("flowmesh_gateway") / "console_ui"
BLANK = b"<!doctype html><html><head><meta charset='utf-8'></head><body></body></html>"


def chromium() -> Path:
    """Debian's Chromium (never a browser Playwright downloads)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    return CHROMIUM


async def console_modules() -> AsyncIterator[Page]:
    """A blank page, under the console's policy, that can import the console's modules."""
    files = read_files()

    async def serve(route: Route) -> None:
        name = route.request.url.removeprefix(f"{ORIGIN}/console/")
        if name == "blank.html":
            await route.fulfill(body=BLANK, content_type="text/html", headers=SECURITY_HEADERS)
        elif name in FILES:
            body, kind = files[name], FILES[name]
            await route.fulfill(body=body, content_type=kind, headers=SECURITY_HEADERS)
        else:
            await route.fulfill(status=404, body=b"")

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=str(chromium()))
        try:
            page = await browser.new_page()
            await page.route(f"{ORIGIN}/**", serve)
            await page.goto(f"{ORIGIN}/console/blank.html")
            yield page
        finally:
            await browser.close()


async def call(page: Page, module: str, body: str, arg: Any = None) -> Any:
    """Run ``body`` (a function of ``(m, arg)``, ``m`` being the module) in the page."""
    script = f"async (arg) => {{ const m = await import('./{module}'); return ({body})(m, arg); }}"
    return await page.evaluate(script, arg)
