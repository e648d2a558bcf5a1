"""The connectors pages in a real browser: an admin creates, edits and deletes a connector
through the form (the API's 422 problems shown by their fields), a viewer reads the list
without buttons, missing secrets are named, another tenant's connector is not found, and
connector data is text."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.integration.gateway.browser import MARKUP_NAME, Console, Visit, sign_in
from tests.integration.gateway.test_console_admin import api, new_key
from tests.integration.harness import Registry, TenantHandle, new_tenant

pytestmark = pytest.mark.integration


async def put_connector(
    console: Console, tenant: TenantHandle, name: str, body: dict[str, Any]
) -> dict[str, Any]:
    status, answer = await api(console, tenant, "PUT", f"/connectors/{name}", json=body)
    assert status in (200, 201), answer
    made: dict[str, Any] = answer
    return made


async def fill_form(page: Page, **fields: str) -> None:
    for field, value in fields.items():
        await page.locator(f"#connector-{field.replace('_', '-')}").fill(value)


async def test_an_admin_creates_edits_and_deletes_a_connector(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/connectors")
    await expect(page.locator("#empty")).to_have_text("No connectors yet.")
    await page.get_by_role("button", name="New connector").click()
    await expect(page.locator("#connector-secret-note")).to_contain_text("never their values")
    # Only the chosen auth kind's fields are shown.
    await expect(page.locator("#connector-auth-secret")).to_be_hidden()
    await page.locator("#connector-auth-kind").select_option("bearer")
    await expect(page.locator("#connector-auth-secret")).to_be_visible()
    await expect(page.locator("#connector-auth-token-url")).to_be_hidden()

    # A base URL with credentials: the API's problem shown by the base URL's field.
    await fill_form(
        page,
        name="slack",
        base_url="https://u:p@x.example",
        headers="Accept: application/json",
        auth_secret="SLACK_BOT_TOKEN",
    )
    await page.get_by_role("button", name="Create connector").click()
    problem = page.locator('[data-field="base_url"] .field-error')
    await expect(problem).to_be_visible()
    await expect(problem).to_contain_text("credentials")
    await expect(page.locator('[data-field="auth.secret"] .field-error')).to_be_hidden()
    status, _ = await api(console, tenant, "GET", "/connectors/slack")
    assert status == 404

    # A name the API refuses: by the name's field (the name is one path segment).
    await fill_form(page, name="Bad/Name", base_url="https://slack.com/api")
    await page.get_by_role("button", name="Create connector").click()
    await expect(page.locator('[data-field="name"] .field-error')).to_be_visible()
    await expect(page.locator('[data-field="base_url"] .field-error')).to_be_hidden()

    await fill_form(page, name="slack")
    await page.get_by_role("button", name="Create connector").click()
    await expect(page.locator("#connector-title")).to_have_text("slack")
    await expect(page.locator('[data-fact="Version"]')).to_have_text("v1")
    status, stored = await api(console, tenant, "GET", "/connectors/slack")
    assert status == 200, stored
    assert stored["base_url"] == "https://slack.com/api"
    assert stored["hosts"] == ["slack.com"]
    assert stored["headers"] == {"Accept": "application/json"}
    assert stored["auth"] == {"kind": "bearer", "secret": "SLACK_BOT_TOKEN"}
    # The secret is not set: the page names it and links to the secrets page.
    missing = page.locator("#connector .missing-secrets a")
    await expect(missing).to_have_text(["SLACK_BOT_TOKEN"])
    assert await missing.get_attribute("href") == "#/admin/secrets"

    # Edit: a problem at a header is shown by the headers' field; then it is saved.
    await page.get_by_role("button", name="Edit").click()
    await expect(page.locator("#connector-name")).to_have_attribute("readonly", "")
    await expect(page.locator("#connector-headers")).to_have_value("Accept: application/json")
    await fill_form(page, headers="Accept: application/json\nX-Api-Token: nope")
    await page.get_by_role("button", name="Save connector").click()
    await expect(page.locator('[data-field="headers"] .field-error')).to_contain_text("X-Api-Token")
    await fill_form(
        page, headers="Accept: application/json\nX-Team: ops", hosts="slack.com\nfiles.slack.com"
    )
    await page.get_by_role("button", name="Save connector").click()
    await expect(page.locator('[data-fact="Version"]')).to_have_text("v2")
    await expect(page.locator('[data-fact="Hosts"]')).to_have_text("slack.com\nfiles.slack.com")
    status, stored = await api(console, tenant, "GET", "/connectors/slack")
    assert stored["version"] == 2 and stored["headers"] == {
        "Accept": "application/json",
        "X-Team": "ops",
    }
    await page.screenshot(path=screenshots / "connector.png", full_page=True)

    # Delete asks twice, in the page.
    await page.get_by_role("button", name="Delete").click()
    assert visit.dialogs == []
    await page.get_by_role("button", name="Cancel").click()
    await page.get_by_role("button", name="Delete").click()
    await page.get_by_role("button", name="Really delete").click()
    await expect(page.locator("#connector-notice")).to_have_text("The connector slack is deleted.")
    await expect(page.locator("#empty")).to_have_text("No connectors yet.")
    status, _ = await api(console, tenant, "GET", "/connectors/slack")
    assert status == 404


async def test_a_viewer_reads_the_list_and_a_connector_without_buttons(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    await put_connector(
        console,
        tenant,
        "weather",
        {
            "base_url": "https://api.weather.example/v1",
            "headers": {"X-Note": MARKUP_NAME},
            "auth": {"kind": "header", "name": "X-Api-Key", "secret": "WEATHER_KEY"},
        },
    )
    await put_connector(
        console, tenant, "plain", {"base_url": "https://plain.example", "auth": {"kind": "none"}}
    )
    viewer = await new_key(console, tenant, "reader", "viewer")
    page = visit.page
    await sign_in(page, viewer["key"], "/console/#/connectors")
    await expect(page.locator("#connectors td.name")).to_have_text(["plain", "weather"])
    weather = page.locator('#connectors tr[data-name="weather"]')
    await expect(weather.locator("td.auth-kind")).to_have_text("header")
    await expect(weather.locator("td.hosts")).to_have_text("api.weather.example")
    await expect(weather.locator("td.version")).to_have_text("v1")
    await expect(weather.locator(".missing-secrets a")).to_have_text(["WEATHER_KEY"])
    await expect(page.locator('#connectors tr[data-name="plain"] .missing-secrets')).to_have_count(
        0
    )
    await expect(page.locator("header nav a", has_text="Connectors")).to_have_count(1)
    await expect(page.get_by_role("button", name="New connector")).to_have_count(0)
    await page.screenshot(path=screenshots / "connectors.png", full_page=True)

    # Pages come from the server: one a page here.
    await page.goto("/console/#/connectors?limit=1")
    await expect(page.locator("#connectors td.name")).to_have_text(["plain"])
    await page.get_by_role("button", name="Next").click()
    await expect(page.locator("#connectors td.name")).to_have_text(["weather"])
    await expect(page.get_by_role("button", name="Next")).to_be_disabled()
    await page.get_by_role("button", name="Previous").click()
    await expect(page.locator("#connectors td.name")).to_have_text(["plain"])

    await page.goto("/console/#/connectors")
    await weather.locator("td.name a").click()
    await expect(page.locator("#connector-title")).to_have_text("weather")
    # The header's value, markup and all, is text: no element made of it, no script run.
    await expect(page.locator('[data-fact="Headers"]')).to_have_text(f"X-Note: {MARKUP_NAME}")
    await expect(page.locator('[data-fact="auth.name"]')).to_have_text("X-Api-Key")
    await expect(page.locator("#connector img")).to_have_count(0)
    await expect(page.locator("#connector button")).to_have_count(0)
    assert visit.dialogs == []


async def test_another_tenants_connector_is_not_found(
    visit: Visit, console: Console, registry: Registry
) -> None:
    owner = await new_tenant(registry, "ui")
    await put_connector(
        console, owner, "private", {"base_url": "https://private.example", "auth": {"kind": "none"}}
    )
    other = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, other.admin_key, "/console/#/connectors/private")
    await expect(page.locator("#not-found h1")).to_have_text("Not found")
    await page.goto("/console/#/connectors")
    await expect(page.locator("#empty")).to_have_text("No connectors yet.")
