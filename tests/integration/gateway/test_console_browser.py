"""The console's first pages in a real browser (DESIGN section 14): sign in with a key, see
the tenant's workflows (search, pages), sign out; user-written text stays text and the key
goes nowhere but the sign-in body.

One gateway and one Chromium per module, a fresh browser context (cookies, storage) and
tenant per test. Screenshots go under ``docs/console/`` when ``FLOWMESH_SCREENSHOTS=1``
(then commit them), else to a temporary folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright, expect

from tests.integration.gateway.conftest import Http, Keys, gateway_settings, started
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition

pytestmark = pytest.mark.integration

CHROMIUM = Path(os.environ.get("FLOWMESH_TEST_CHROMIUM", "/usr/bin/chromium"))
DOCS = Path(__file__).resolve().parents[2] / "docs" / "console"
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
        settings = gateway_settings(registry, files, console_sign_in_rate=1000.0)
        gateway = await started(settings, stack)
        session = await stack.enter_async_context(aiohttp.ClientSession())
        base = f"http://127.0.0.1:{gateway.port}"
        yield Console(base=base, http=Http(session, base, keys))


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium (never a browser Playwright downloads)."""
    if not CHROMIUM.exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    return CHROMIUM


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


async def test_sign_in_shows_the_workflows_and_the_key_goes_only_in_the_sign_in_body(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await seeded(console, registry, "charge-orders", "nightly-report", MARKUP_NAME)
    page = visit.page
    await page.goto("/console/")
    await expect(page.locator("#key")).to_have_attribute("type", "password")
    await page.screenshot(path=screenshots / "sign-in.png")
    await sign_in(page, tenant.admin_key)

    await expect(page.locator("#tenant")).to_have_text(tenant.id)
    await expect(page.locator("#role")).to_have_text("admin")
    names = page.locator("#workflows td.name")
    await expect(names).to_have_text([MARKUP_NAME, "nightly-report", "charge-orders"])
    row = page.locator("#workflows tbody tr").last
    await expect(row.locator("td.version")).to_have_text("v1")
    await expect(row.locator("td.enabled")).to_have_text("enabled")
    await expect(row.locator("td.tags .tag")).to_have_text(["orders", "billing"])
    await expect(row.locator("td.last-status")).to_have_text("never run")
    # The name is text: no element was made of it, no script ran.
    await expect(page.locator("img")).to_have_count(0)
    assert visit.dialogs == []
    await page.screenshot(path=screenshots / "workflows.png")

    # The key: typed once, sent once in the sign-in body, kept nowhere.
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert tenant.admin_key not in page.url
    assert await page.locator("#key").count() == 0
    assert tenant.admin_key not in await page.content()
    carrying = [(m, u) for m, u, rest in visit.sent if tenant.admin_key in u + rest]
    assert carrying == [("POST", f"{console.base}/console/session")]
    [cookie] = await visit.context.cookies()
    assert cookie["name"] == "fm_session" and cookie["httpOnly"]
    assert cookie["sameSite"] == "Strict"
    # No CSP violation nor script error (the 401 of "who am I" before sign-in is expected).
    assert [e for e in visit.console_errors if not e.startswith("Failed to load resource")] == []

    # Reloading keeps the session (the cookie), not the key.
    await page.reload()
    await expect(page.locator("#workflows td.name")).to_have_count(3)


async def test_search_and_pages_ask_the_server(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await seeded(console, registry, "alpha-one", "alpha-two", "beta", "alpha-three")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/workflows?limit=2")
    names = page.locator("#workflows td.name")
    await expect(names).to_have_text(["alpha-three", "beta"])
    await page.locator("#next").click()
    await expect(names).to_have_text(["alpha-two", "alpha-one"])
    await expect(page.locator("#next")).to_be_disabled()
    await page.locator("#previous").click()
    await expect(names).to_have_text(["alpha-three", "beta"])

    await page.locator("#q").fill("alpha")
    await page.get_by_role("button", name="Search").click()
    await expect(names).to_have_text(["alpha-three", "alpha-two"])
    assert "q=alpha" in page.url
    await page.locator("#next").click()
    await expect(names).to_have_text(["alpha-one"])
    await page.locator("#q").fill("nothing-like-this")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#empty")).to_have_text("No workflow matches.")
    queries = [u for m, u, _ in visit.sent if "/workflows?" in u]
    assert any("cursor=" in u for u in queries) and any("q=alpha" in u for u in queries)


async def test_a_bad_key_shows_an_error_and_sets_no_cookie(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, f"fm_{tenant.id}_" + "x" * 43)
    await expect(page.locator("#sign-in-error")).to_have_text("That key was not accepted.")
    await expect(page.locator("#key")).to_have_value("")
    assert await visit.context.cookies() == []
    await expect(page.locator("#top")).to_be_hidden()


async def test_too_many_sign_ins_show_when_to_try_again(
    browser: Browser, registry: Registry, jwt_keys: tuple[Keys, list[str]]
) -> None:
    _, files = jwt_keys
    tenant = await new_tenant(registry, "ui")
    strict = {"console_sign_in_rate": 0.01, "console_sign_in_burst": 1}
    async with AsyncExitStack() as stack:
        gateway = await started(gateway_settings(registry, files, **strict), stack)
        context = await browser.new_context(base_url=f"http://127.0.0.1:{gateway.port}")
        stack.push_async_callback(context.close)
        page = await context.new_page()
        await sign_in(page, f"fm_{tenant.id}_" + "x" * 43)
        error = page.locator("#sign-in-error")
        await expect(error).to_have_text("That key was not accepted.")
        await page.locator("#key").fill(tenant.admin_key)
        await page.get_by_role("button", name="Sign in").click()
        await expect(error).to_have_text(re.compile(r"^Too many sign-in attempts: try again"))
        assert await context.cookies() == []


async def test_sign_out_makes_the_old_cookie_useless(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await seeded(console, registry, "kept")
    page = visit.page
    await sign_in(page, tenant.admin_key)
    await expect(page.locator("#workflows td.name")).to_have_text(["kept"])
    [cookie] = await visit.context.cookies()

    await page.get_by_role("button", name="Sign out").click()
    await expect(page.locator("#sign-in")).to_be_visible()
    assert await visit.context.cookies() == []
    await visit.context.add_cookies([cookie])
    answer = await visit.context.request.get(f"/api/v1/{tenant.id}/workflows")
    assert answer.status == 401
    await page.reload()
    await expect(page.locator("#sign-in")).to_be_visible()


async def test_the_pages_carry_a_strict_policy_and_nothing_else_is_served(
    visit: Visit,
) -> None:
    request = visit.context.request
    for path in ("/console/", "/console/app.js", "/console/style.css"):
        answer = await request.get(path)
        assert answer.status == 200, path
        headers = answer.headers
        assert "default-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "no-referrer"
        assert headers["x-frame-options"] == "DENY"
    script = await request.get("/console/app.js")
    assert script.headers["content-type"].startswith("text/javascript")
    redirected = await request.get("/console", max_redirects=0)
    assert redirected.status == 308 and redirected.headers["location"] == "/console/"
    for path in ("/console/nope.js", "/console/..%2Fpages.py", "/console/console_ui/app.js"):
        assert (await request.get(path)).status == 404, path
