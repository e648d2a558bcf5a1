"""The console's admin pages in a real browser (DESIGN section 14): keys (a new key shown
once, revoked for good), secrets (names only, the value sent once), the audit log (pages,
filters); lower roles see none of it, and a change without the CSRF token is refused and
said so. User-written text stays text."""

from __future__ import annotations

import re
import secrets
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, Route, expect

from tests.helpers import until
from tests.integration.gateway.browser import MARKUP_NAME, Console, Visit, seeded, sign_in
from tests.integration.harness import Registry, TenantHandle, new_tenant

pytestmark = pytest.mark.integration


async def api(console: Console, tenant: TenantHandle, method: str, path: str, **kw: Any) -> Any:
    """Call the tenant's API with its admin key: (status, body)."""
    status, body, _ = await console.http.request(
        method, f"/api/v1/{tenant.id}{path}", token=tenant.admin_key, **kw
    )
    return status, body


async def new_key(console: Console, tenant: TenantHandle, name: str, role: str) -> dict[str, Any]:
    asked = {"name": name, "role": role}
    status, body = await api(console, tenant, "POST", "/api-keys", json=asked)
    assert status == 201, body
    return body


async def status_with(console: Console, tenant: TenantHandle, key: str) -> int:
    status, _, _ = await console.http.request("GET", f"/api/v1/{tenant.id}/workflows", token=key)
    return status


def carrying(visit: Visit, text: str) -> list[tuple[str, str]]:
    """The requests (method, url) whose url, headers or body hold ``text``."""
    return [(m, u) for m, u, rest in visit.sent if text in u + rest]


async def key_names(console: Console, tenant: TenantHandle) -> list[str]:
    status, body = await api(console, tenant, "GET", "/api-keys")
    assert status == 200, body
    return [k["name"] for k in body["items"]]


def row(page: Page, table: str, name: str) -> Any:
    return page.locator(f"#{table} tbody tr").filter(
        has=page.locator("td.name", has_text=re.compile(f"^{re.escape(name)}"))
    )


async def test_a_new_key_is_shown_once_works_and_once_revoked_is_refused(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/admin/keys")
    own = page.locator(f'#keys tr[data-id="{tenant.admin_key_id}"]')
    await expect(own.locator(".own")).to_have_text("your session")

    await page.locator("#key-name").fill(MARKUP_NAME)
    await page.locator("#key-role").select_option("operator")
    await page.get_by_role("button", name="Create key").click()
    shown = page.locator("#new-key")
    await expect(shown).to_have_text(re.compile(rf"^fm_{re.escape(tenant.id)}_"))
    key = await shown.text_content()
    assert key
    created = row(page, "keys", MARKUP_NAME)
    await expect(created.locator("td.role")).to_have_text("operator")
    await expect(created.locator("td.state")).to_have_text("active")
    # The name is text: no element was made of it, no script ran.
    await expect(page.locator("img")).to_have_count(0)
    assert visit.dialogs == []
    # The key works against the API, and went nowhere: no request, URL or storage holds it.
    assert await status_with(console, tenant, key) == 200
    assert carrying(visit, key) == []
    assert key not in page.url
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    await page.evaluate(  # a real key of a test tenant, but the picture shows a made-up one
        "document.getElementById('new-key').textContent = 'fm_' + 'acme_' + 'x'.repeat(43)"
    )
    await page.screenshot(path=screenshots / "keys.png", full_page=True)

    # Shown once: leaving the page forgets it.
    await page.goto("/console/#/workflows")
    await expect(page.locator("#workflows, #empty")).to_be_visible()
    await page.goto("/console/#/admin/keys")
    await expect(created.locator("td.role")).to_have_text("operator")
    await expect(page.locator("#new-key")).to_have_count(0)
    assert key not in await page.content()

    # Revoking asks twice, in the page; then the API refuses the key.
    await created.get_by_role("button", name="Revoke").click()
    assert visit.dialogs == []
    await created.get_by_role("button", name="Cancel").click()
    await expect(created.get_by_role("button", name="Really revoke")).to_have_count(0)
    await created.get_by_role("button", name="Revoke").click()
    await created.get_by_role("button", name="Really revoke").click()
    await expect(page.locator("#key-notice")).to_contain_text("is revoked")
    await expect(created.locator("td.state")).to_have_text(re.compile("^revoked "))
    await expect(created.get_by_role("button")).to_have_count(0)
    await until(lambda: _refused(console, tenant, key), timeout=5)
    await expect(page.locator("img")).to_have_count(0)


async def _refused(console: Console, tenant: TenantHandle, key: str) -> bool:
    return await status_with(console, tenant, key) == 401


async def test_revoking_the_key_of_the_session_ends_it(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    second = await new_key(console, tenant, "second admin", "admin")
    page = visit.page
    await sign_in(page, second["key"], "/console/#/admin/keys")
    mine = page.locator(f'#keys tr[data-id="{second["id"]}"]')
    await expect(mine.locator(".own")).to_have_text("your session")
    await mine.get_by_role("button", name="Revoke").click()
    await expect(mine.locator(".warning")).to_contain_text("signs you out")
    await mine.get_by_role("button", name="Really revoke").click()
    await expect(page.locator("#session-ended")).to_be_visible()
    await expect(page.locator("#top")).to_be_hidden()
    answer = await visit.context.request.get(f"/api/v1/{tenant.id}/workflows")
    assert answer.status == 401
    await until(lambda: _refused(console, tenant, second["key"]), timeout=5)
    await page.get_by_role("button", name="Sign in with another key").click()
    await expect(page.locator("#sign-in")).to_be_visible()


async def test_secrets_are_listed_by_name_and_the_value_goes_only_in_the_put_body(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/admin/secrets")
    await expect(page.locator("#empty")).to_have_text("No secrets yet.")

    # A name the API refuses: its message by the name field; the value is cleared anyway.
    refused_value = "refused-" + secrets.token_hex(8)
    await page.locator("#secret-name").fill("not a name")
    await page.locator("#secret-value").fill(refused_value)
    await page.get_by_role("button", name="Set secret").click()
    await expect(page.locator("#secret-name-error")).to_contain_text("[A-Z]")
    await expect(page.locator("#secret-value")).to_have_value("")
    # A name with a slash stays one name: refused by its field, not a "not found".
    await page.locator("#secret-name").fill("A/B")
    await page.locator("#secret-value").fill(refused_value)
    async with page.expect_response(lambda r: "/secrets/A%2FB" in r.url) as answered:
        await page.get_by_role("button", name="Set secret").click()
    assert (await answered.value).status == 422
    await expect(page.locator("#secret-name-error")).to_contain_text("[A-Z]")

    value = "s3cret-" + secrets.token_hex(12)
    await page.locator("#secret-name").fill("API_TOKEN")
    await page.locator("#secret-value").fill(value)
    await page.get_by_role("button", name="Set secret").click()
    await expect(page.locator("#secret-notice")).to_have_text(
        "The secret API_TOKEN is set. Its value is not shown again."
    )
    await expect(page.locator("#secrets td.name")).to_have_text(["API_TOKEN"])
    await expect(page.locator("#secret-name-error")).to_be_hidden()
    await expect(page.locator("#secret-value")).to_have_value("")
    assert value not in await page.content()
    assert await page.evaluate("localStorage.length + sessionStorage.length") == 0
    assert carrying(visit, value) == [
        ("PUT", f"{console.base}/api/v1/{tenant.id}/secrets/API_TOKEN")
    ]
    status, body = await api(console, tenant, "GET", "/secrets")
    assert status == 200 and [s["name"] for s in body["items"]] == ["API_TOKEN"]
    assert value not in str(body)
    await page.screenshot(path=screenshots / "secrets.png", full_page=True)

    # "Set a new value" fills the name; delete asks twice.
    listed = page.locator('#secrets tr[data-name="API_TOKEN"]')
    await listed.get_by_role("button", name="Set a new value").click()
    await expect(page.locator("#secret-name")).to_have_value("API_TOKEN")
    await expect(page.locator("#secret-value")).to_be_focused()
    await listed.get_by_role("button", name="Delete").click()
    await listed.get_by_role("button", name="Really delete").click()
    await expect(page.locator("#secret-notice")).to_have_text("The secret API_TOKEN is deleted.")
    await expect(page.locator("#empty")).to_have_text("No secrets yet.")
    status, body = await api(console, tenant, "GET", "/secrets")
    assert status == 200 and body["items"] == []


async def test_the_audit_log_shows_changes_in_pages_with_filters_as_text(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await seeded(console, registry, "charge-orders")
    status, body = await api(console, tenant, "GET", "/workflows")
    [workflow] = body["items"]
    status, body = await api(
        console, tenant, "PATCH", f"/workflows/{workflow['id']}", json={"tags": [MARKUP_NAME]}
    )
    assert status == 200, body
    deployer = await new_key(console, tenant, MARKUP_NAME, "admin")
    status, body, _ = await console.http.request(
        "PUT", f"/api/v1/{tenant.id}/secrets/API_TOKEN", token=deployer["key"], json={"value": "v"}
    )
    assert status == 200, body
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/admin/audit?limit=2")

    actions = page.locator("#audit td.action")
    await expect(actions).to_have_text(["console.sign_in", "secret.put"])
    await expect(page.locator("#audit td.target").nth(1)).to_have_text("secret:API_TOKEN")
    # Actors of the tenant's keys carry the key's name, as text.
    await expect(page.locator("#audit td.actor .actor-name")).to_have_text(["admin", MARKUP_NAME])
    await expect(page.locator("#audit td.outcome").first).to_have_text("success")
    await expect(page.locator("#previous")).to_be_disabled()
    await page.locator("#next").click()
    await expect(actions).to_have_text(["apikey.create", "workflow.patch"])
    # The tag went into the entry's detail: shown as text, never as markup.
    await expect(page.locator("#audit td.detail").nth(1)).to_contain_text(MARKUP_NAME)
    await expect(page.locator("img")).to_have_count(0)
    assert visit.dialogs == []
    await page.locator("#previous").click()
    await expect(actions).to_have_text(["console.sign_in", "secret.put"])
    assert any("cursor=" in u for m, u, _ in visit.sent if "/audit?" in u)

    # Filters are the API's: an action typed, then a value clicked.
    await page.locator("#audit-action").fill("apikey.create")
    await page.get_by_role("button", name="Filter").click()
    await expect(actions).to_have_text(["apikey.create"])
    assert "action=apikey.create" in page.url
    actor = f"key:{tenant.id}:{tenant.admin_key_id}"
    await expect(page.locator("#audit td.actor a")).to_have_text([actor])
    await page.get_by_role("button", name="Clear").click()
    await expect(actions).to_have_count(2)
    await page.goto("/console/#/admin/audit")
    newest_first = ["console.sign_in", "secret.put", "apikey.create", "workflow.patch"]
    await expect(actions).to_have_text([*newest_first, "workflow.create", "tenant.create"])
    await expect(page.locator("#next")).to_be_disabled()
    await page.screenshot(path=screenshots / "audit.png", full_page=True)
    await page.locator("#audit td.target a", has_text="secret:API_TOKEN").click()
    await expect(actions).to_have_text(["secret.put"])
    await page.locator("#audit-action").fill("no.such_action")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#empty")).to_have_text("No entry matches.")


@pytest.mark.parametrize("role", ["editor", "viewer"])
async def test_lower_roles_see_no_admin_links_and_the_pages_say_they_need_admin(
    visit: Visit, console: Console, registry: Registry, role: str
) -> None:
    tenant = await new_tenant(registry, "ui")
    made = await new_key(console, tenant, f"an {role}", role)
    page = visit.page
    await sign_in(page, made["key"], "/console/#/admin/keys")
    await expect(page.locator("#role")).to_have_text(role)
    await expect(page.locator("#top nav a")).to_have_text(
        ["Workflows", "Runs", "Catalog", "Connectors"]
    )
    for path in ("keys", "secrets", "audit"):
        await page.goto(f"/console/#/admin/{path}")
        await expect(page).to_have_url(re.compile(f"#/admin/{path}$"))
        forbidden = page.locator("#forbidden")
        await expect(forbidden).to_contain_text("needs the admin role")
        await expect(forbidden).to_contain_text(role)
        await expect(page.locator("#create-key, #set-secret, #audit-filters")).to_have_count(0)
    # The API refuses the session anyway.
    request = visit.context.request
    answer = await request.get(f"/api/v1/{tenant.id}/api-keys")
    assert answer.status == 403 and (await answer.json())["code"] == "FORBIDDEN"
    # The pages asked nothing the role may not have.
    admin_api = re.compile("/api/v1/.*/(api-keys|secrets|audit)")
    assert [u for _, u, _ in visit.sent if admin_api.search(u)] == []


async def test_a_change_without_the_csrf_token_is_refused_and_said_so(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/admin/keys")
    await expect(page.locator("#keys tbody tr")).to_have_count(1)

    async def without_token(route: Route) -> None:
        headers = await route.request.all_headers()
        kept = {k: v for k, v in headers.items() if k.lower() != "x-csrf-token"}
        await route.continue_(headers=kept)

    await page.route("**/api/v1/**", without_token)
    await page.locator("#key-name").fill("sent without a token")
    await page.get_by_role("button", name="Create key").click()
    error = page.locator("#key-error")
    await expect(error).to_contain_text("security token (CSRF)")
    await expect(error).to_contain_text("Reload the page")
    await expect(page.locator("#new-key")).to_have_count(0)
    assert "sent without a token" not in await key_names(console, tenant)

    # The same with the cookie and no token, straight to the API.
    answer = await visit.context.request.post(
        f"/api/v1/{tenant.id}/api-keys", data={"name": "straight", "role": "viewer"}
    )
    assert answer.status == 403 and (await answer.json())["code"] == "CSRF_TOKEN_INVALID"
    assert "straight" not in await key_names(console, tenant)

    # With the token again, the change holds.
    await page.unroute("**/api/v1/**")
    await page.get_by_role("button", name="Create key").click()
    await expect(page.locator("#new-key")).to_have_text(re.compile("^fm_"))
    await expect(error).to_be_hidden()
    assert "sent without a token" in await key_names(console, tenant)
