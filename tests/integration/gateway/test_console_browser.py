"""The console's first pages in a real browser (DESIGN section 14): sign in with a key, see
the tenant's workflows (search, pages), sign out; user-written text stays text and the key
goes nowhere but the sign-in body."""

from __future__ import annotations

import re
from contextlib import AsyncExitStack
from pathlib import Path

import pytest
from playwright.async_api import Browser, expect

from tests.integration.gateway.browser import MARKUP_NAME, Console, Visit, seeded, sign_in
from tests.integration.gateway.conftest import Keys, gateway_settings, started
from tests.integration.harness import Registry, new_tenant, simple_definition

pytestmark = pytest.mark.integration


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


async def test_filters_by_enabled_category_and_tag_are_the_apis_and_kept_in_the_url(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    shapes = {
        "paused-billing": {"enabled": False, "tags": ["billing"], "category": "automation"},
        "live-billing": {"tags": ["billing", "eu"], "category": "notification"},
        "live-orders": {"tags": ["orders"], "category": "automation"},
    }
    for name, extra in shapes.items():
        status, body, _ = await console.http.request(
            "POST",
            f"/api/v1/{tenant.id}/workflows",
            token=tenant.admin_key,
            json=simple_definition(name, **extra),
        )
        assert status == 201, body
    page = visit.page
    await sign_in(page, tenant.admin_key)
    names = page.locator("#workflows td.name")
    await expect(names).to_have_count(3)

    await page.locator("#enabled").select_option("false")
    await page.get_by_role("button", name="Search").click()
    await expect(names).to_have_text(["paused-billing"])
    assert "enabled=false" in page.url

    await page.locator("#enabled").select_option("")
    await page.locator("#category").select_option("automation")
    await page.get_by_role("button", name="Search").click()
    await expect(names).to_have_text(["live-orders", "paused-billing"])
    await expect(page.locator("#category")).to_have_value("automation")

    # A tag in a row is a link to the workflows that carry it.
    await page.locator("#top nav a", has_text="Workflows").click()
    await expect(names).to_have_count(3)
    row = page.locator("#workflows tr", has_text="live-billing")
    await row.locator("a.tag", has_text="eu").click()
    await expect(names).to_have_text(["live-billing"])
    await expect(page.locator("#tags")).to_have_value("eu")
    await page.locator("#tags").fill("billing, eu,")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#tags")).to_have_value("billing,eu")  # drawn again, tidied
    await expect(names).to_have_text(["live-billing"])
    assert "tags=billing%2Ceu" in page.url
    # The list of both tags is the tag's list already: wait for the page drawn for them (its
    # tags are written back as the API was asked), or the next words go to a form replaced.
    await expect(page.locator("#tags")).to_have_value("billing,eu")
    await page.locator("#tags").fill("nothing-tagged-so")
    await page.get_by_role("button", name="Search").click()
    await expect(page.locator("#empty")).to_have_text("No workflow matches.")
    # A filter made up in the URL is not sent: an unknown category is "any".
    await page.goto("/console/#/workflows?category=%3Cb%3E&enabled=maybe")
    await expect(names).to_have_count(3)
    asked = [u for m, u, _ in visit.sent if "/workflows?" in u]
    assert not any("maybe" in u or "%3Cb%3E" in u for u in asked)


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
