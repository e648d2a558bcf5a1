"""The console in a real browser: fixtures shared by the console's browser tests.

One gateway and one Chromium per test module, a fresh browser context (cookies, storage)
per test. Screenshots go under ``docs/console/`` when ``FLOWMESH_SCREENSHOTS=1`` (then
commit them), else to a temporary folder.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright

from tests.integration.gateway.conftest import Http, Keys, gateway_settings, started
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition
from tests.unit.console_js import chromium as debian_chromium

DOCS = Path(__file__).resolve().parents[3] / "docs" / "console"
MARKUP_NAME = "<img src=x onerror=alert(1)>"


class Console(msgspec.Struct, frozen=True):
    base: str
    http: Http  # the API with a tenant's key, to seed data


class Visit(msgspec.Struct, frozen=True):
    context: BrowserContext
    page: Page
    dialogs: list[str]
    console_errors: list[str]
    sent: list[tuple[str, str, str]]  # (method, url, headers and body) of every request


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def console(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Console]:
    keys, files = jwt_keys
    async with AsyncExitStack() as stack:
        settings = gateway_settings(
            registry, files, console_sign_in_rate=1000.0, sse_heartbeat_seconds=1.0
        )
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        base = f"http://127.0.0.1:{gateway.port}"
        yield Console(base=base, http=Http(session, base, keys))


@pytest.fixture(scope="module")
def chromium() -> Path:
    return debian_chromium()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def browser(chromium: Path) -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(chromium))
        yield launched
        await launched.close()


@pytest_asyncio.fixture(loop_scope="session")
async def visit(browser: Browser, console: Console) -> AsyncIterator[Visit]:
    context = await browser.new_context(
        base_url=console.base, viewport={"width": 1100, "height": 640}
    )
    page = await context.new_page()
    seen = Visit(context=context, page=page, dialogs=[], console_errors=[], sent=[])

    async def on_dialog(dialog: Dialog) -> None:
        seen.dialogs.append(dialog.message)
        await dialog.dismiss()

    page.on("dialog", on_dialog)
    page.on("console", lambda m: seen.console_errors.append(m.text) if m.type == "error" else None)
    page.on(
        "request",
        lambda r: seen.sent.append((r.method, r.url, f"{r.headers} {r.post_data or ''}")),
    )
    yield seen
    await context.close()


@pytest.fixture
def screenshots(tmp_path: Path) -> Path:
    return DOCS if os.environ.get("FLOWMESH_SCREENSHOTS") == "1" else tmp_path


async def seeded(console: Console, registry: Registry, *names: str) -> TenantHandle:
    tenant = await new_tenant(registry, "ui")
    for name in names:
        status, body, _ = await console.http.request(
            "POST",
            f"/api/v1/{tenant.id}/workflows",
            token=tenant.admin_key,
            json=simple_definition(name, tags=["orders", "billing"]),
        )
        assert status == 201, body
    return tenant


async def sign_in(page: Page, key: str, path: str = "/console/") -> None:
    await page.goto(path)
    await page.locator("#key").fill(key)
    await page.get_by_role("button", name="Sign in").click()
