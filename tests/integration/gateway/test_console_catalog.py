"""The catalog in a real browser: entries filtered by the URL, an entry's parameters as a
form prefilled from its example, the node it makes as a line of YAML; and "Add node" in a
workflow's editor, which puts that line at the caret, where Check validates it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import msgspec
import pytest
import yaml
from playwright.async_api import Page, expect

from flowmesh_proto.entries import builtin_action_catalog, node_catalog
from tests.integration.gateway.browser import Console, Visit, sign_in
from tests.integration.gateway.test_console_admin import api, new_key
from tests.integration.gateway.test_console_workflow import create, opened
from tests.integration.harness import Registry, new_tenant, simple_definition

pytestmark = pytest.mark.integration

HTTP = next(e for e in msgspec.to_builtins(node_catalog()) if e["name"] == "http")


def param(page: Page, path: str) -> Any:
    """The form's field at a JSON path of the parameters."""
    return page.locator(f'.schema-form .form-field[data-path="{path}"]')


async def node_of(page: Page) -> list[dict[str, Any]]:
    """The node line the page shows, read as YAML."""
    text = await page.locator("#node-text").text_content()
    assert text and text.startswith("- {") and "\n" not in text
    parsed: list[dict[str, Any]] = yaml.safe_load(text)
    return parsed


async def test_the_http_entry_makes_a_node_from_its_form(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    status, body = await api(
        console,
        tenant,
        "PUT",
        "/connectors/billing",
        json={"base_url": "https://billing.example", "auth": {"kind": "none"}},
    )
    assert status == 201, body
    viewer = await new_key(console, tenant, "reader", "viewer")
    page = visit.page
    await sign_in(page, viewer["key"], "/console/#/catalog?category=integration")
    await expect(page.locator("#catalog td.name")).to_have_text(["action", "http", "task"])
    await expect(page.locator("#catalog-category")).to_have_value("integration")
    await page.locator("#catalog-category").select_option("")
    await page.locator("#catalog-kind").select_option("node")
    await expect(page).to_have_url(re.compile(r"#/catalog\?kind=node$"))
    await expect(page.locator("#catalog td.name")).to_have_count(len(node_catalog()))
    await page.locator("#catalog td.name a", has_text=re.compile("^http$")).click()
    await expect(page).to_have_url(re.compile(r"#/catalog/node/http$"))

    await expect(page.locator("#entry-category")).to_have_text("integration")
    await expect(page.locator("#entry-requires")).to_have_text("the editor role")
    await expect(page.locator("#output-schema")).to_contain_text("status: integer (required)")
    # Prefilled from the example, and read back as it.
    await expect(param(page, "url").locator("input")).to_have_value(HTTP["example"]["url"])
    await expect(param(page, "method").locator("input")).to_have_value("POST")
    await expect(param(page, "headers").locator(".map-key")).to_have_value("Authorization")
    await expect(param(page, "expect_status").locator(".form-row input")).to_have_count(2)
    assert await node_of(page) == [{"id": "http", "type": "http", "parameters": HTTP["example"]}]
    options = page.locator("#param-connectors option")
    await expect(options).to_have_count(1)
    assert await options.get_attribute("value") == "billing"

    # Changed: the line follows; a problem is shown at its field.
    await page.locator("#node-id").fill("refund")
    await param(page, "url").locator("input").fill("https://api.example.com/refunds")
    await param(page, "expect_status").locator(".form-row input").nth(1).fill("twenty")
    problem = param(page, "expect_status[1]").locator(".field-problem")
    await expect(problem).to_contain_text("must be an integer")
    await param(page, "expect_status").locator(".form-row input").nth(1).fill("204")
    await expect(problem).to_have_count(0)
    expected = {
        **HTTP["example"],
        "url": "https://api.example.com/refunds",
        "expect_status": [200, 204],
    }
    assert await node_of(page) == [{"id": "refund", "type": "http", "parameters": expected}]
    await expect(page.locator("#copy-node")).to_be_visible()
    await expect(page.locator("#insert-node")).to_have_count(0)
    await page.screenshot(path=screenshots / "catalog-entry.png", full_page=True)


async def place_caret(page: Page, before: str) -> int:
    """Put the editor's caret at the start of the line ``before``; answers its line (1-based)."""
    line: int = await page.evaluate(
        """(before) => {
          const area = document.getElementById('yaml');
          const at = area.value.indexOf(before);
          area.focus();
          area.setSelectionRange(at, at);
          return area.value.slice(0, at).split('\\n').length;
        }""",
        before,
    )
    return line


async def test_add_node_inserts_the_line_at_the_caret_and_check_validates_it(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("charge-orders"))
    status, body = await api(console, tenant, "PUT", "/secrets/API_TOKEN", json={"value": "t"})
    assert status in (200, 201), body
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    await page.locator("#add-node").click()
    await page.locator("#picker-entry").select_option(label="http (node, integration)")
    await page.locator("#node-id").fill("call")
    await param(page, "url").locator("input").fill("https://api.example.com/{{ trigger.data.id }}")

    line = await place_caret(page, "- id: notify")
    await page.locator("#insert-node").click()
    text = await page.locator("#yaml").input_value()
    inserted = text.split("\n")[line - 1]
    assert inserted.startswith('- {"id": "call", "type": "http"')
    assert text.split("\n")[line] == "- id: notify"
    node = yaml.safe_load(text)["nodes"][2]
    assert node["parameters"]["url"] == "https://api.example.com/{{ trigger.data.id }}"
    # Check: the new node has no edge yet, which is shown at its line.
    await page.locator("#check").click()
    unlinked = page.locator(f'.problems-placed [data-line="{line}"]')
    await expect(unlinked).to_contain_text("has no edge")
    await expect(unlinked).to_have_attribute("data-path", "nodes[2]")
    # With an edge to it, the workflow is valid.
    await place_caret(page, "- to: big")
    await page.keyboard.type('- {"from": "notify", "to": "call"}\n')
    await page.locator("#check").click()
    await expect(page.locator("#editor-status")).to_have_text("No problems found.")

    # A second node naming a connector the tenant does not have: the problem at its line.
    await param(page, "url").locator("input").fill("")
    await param(page, "connector").locator("input").fill("nosuch")
    await param(page, "path").locator("input").fill("/refunds")
    await page.locator("#node-id").fill("call_two")
    second = await place_caret(page, "- id: notify")
    await page.locator("#insert-node").click()
    await page.locator("#check").click()
    problem = page.locator(f'.problems-placed [data-line="{second}"][data-code="MISSING_VARIABLE"]')
    await expect(problem).to_contain_text("nosuch")
    await expect(problem).to_have_attribute("data-path", "nodes[3].parameters.connector")
    await page.screenshot(path=screenshots / "add-node.png", full_page=True)


async def test_a_viewer_has_no_add_node(visit: Visit, console: Console, registry: Registry) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("read-only"))
    viewer = await new_key(console, tenant, "reader", "viewer")
    await opened(visit.page, viewer["key"], workflow_id)
    await expect(visit.page.locator("#check")).to_be_visible()
    await expect(visit.page.locator("#add-node")).to_have_count(0)


SLACK = next(
    e for e in msgspec.to_builtins(builtin_action_catalog()) if e["name"] == "slack.post_message"
)


async def test_an_action_entry_builds_its_form_from_the_actions_input_schema(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    connector = {
        "base_url": "https://slack.com/api",
        "auth": {"kind": "bearer", "secret": "SLACK_BOT_TOKEN"},
    }
    status, body = await api(console, tenant, "PUT", "/connectors/slack", json=connector)
    assert status == 201, body
    workflow_id = await create(console, tenant, simple_definition("notify-orders"))
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/catalog?kind=action&category=notification")
    await expect(page.locator("#catalog td.name")).to_have_text(
        ["email.send", "slack.post_message", "webhook.post"]
    )
    await page.locator("#catalog td.name a", has_text="slack.post_message").click()
    await expect(page.locator("#entry-requires")).to_contain_text("SLACK_BOT_TOKEN")
    # The input's fields come from the action's input schema, prefilled from its example.
    channel = param(page, "input.channel").locator("input")
    await expect(channel).to_have_value(SLACK["example"]["input"]["channel"])
    await expect(param(page, "input.thread_ts").locator("input")).to_have_value("")
    node = (await node_of(page))[0]
    assert node["type"] == "action" and node["parameters"] == SLACK["example"]
    await channel.fill("")
    problem = param(page, "input.channel").locator(".field-problem")
    await expect(problem).to_be_visible()
    await channel.fill("C0999")
    await expect(problem).to_have_count(0)
    node = (await node_of(page))[0]
    assert node["parameters"]["input"] == {**SLACK["example"]["input"], "channel": "C0999"}

    # Added to a workflow from its editor, then checked by the registry against the schema.
    await page.evaluate("(id) => { location.hash = '#/workflows/' + id; }", workflow_id)
    await expect(page.locator("#wf-name")).to_be_visible()
    await page.locator("#add-node").click()
    await page.locator("#picker-entry").select_option(
        label="slack.post_message (action, notification)"
    )
    await page.locator("#node-id").fill("tell")
    await param(page, "input.text").locator("input").fill("{{ trigger.data.id }} shipped")
    line = await place_caret(page, "- id: notify")
    await page.locator("#insert-node").click()
    await place_caret(page, "- to: big")
    await page.keyboard.type('- {"from": "notify", "to": "tell"}\n')
    await page.locator("#check").click()
    await expect(page.locator("#editor-status")).to_have_text("No problems found.")
    text = await page.locator("#yaml").input_value()
    placed = [row for row in text.split("\n") if row.startswith('- {"id": "tell"')]
    assert len(placed) == 1 and line >= 1
    inserted = yaml.safe_load(placed[0])[0]
    assert inserted["parameters"]["action"] == "slack.post_message"
    assert inserted["parameters"]["input"]["text"] == "{{ trigger.data.id }} shipped"
