"""A workflow's page and import in a real browser (DESIGN section 14): the DAG drawn from
the definition, the YAML with problems at their lines, saving a new version, the history
and a diff, enable/disable, Run; roles hold in the page as in the API; names stay text.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Page, expect

from tests.integration.gateway.browser import MARKUP_NAME, Console, Visit, sign_in
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition

pytestmark = pytest.mark.integration

#: A document with one problem: an unknown node type, on line 6 (nodes[1].type).
BROKEN = """\
name: imported-orders
description: Imported from a file.
nodes:
- id: start
  type: noop
- id: charge
  type: teleport
edges:
- from: start
  to: charge
"""
BROKEN_LINE = 7
FILE = "name: from-a-file\nnodes:\n- id: only\n  type: noop\nedges: []\n"


async def create(console: Console, tenant: TenantHandle, definition: dict[str, Any]) -> str:
    status, body, _ = await console.http.request(
        "POST", f"/api/v1/{tenant.id}/workflows", token=tenant.admin_key, json=definition
    )
    assert status == 201, body
    workflow_id: str = body["id"]
    return workflow_id


async def key(console: Console, tenant: TenantHandle, role: str) -> str:
    status, body, _ = await console.http.request(
        "POST",
        f"/api/v1/{tenant.id}/api-keys",
        token=tenant.admin_key,
        json={"name": role, "role": role},
    )
    assert status == 201, body
    made: str = body["key"]
    return made


async def opened(page: Page, key: str, workflow_id: str) -> None:
    await sign_in(page, key, f"/console/#/workflows/{workflow_id}")
    await expect(page.locator("#wf-name")).to_be_visible()


async def test_a_workflow_shows_its_header_dag_yaml_and_history(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("charge-orders"))
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)

    await expect(page.locator("#wf-name")).to_have_text("charge-orders")
    await expect(page.locator("#wf-version")).to_have_text("v1")
    await expect(page.locator("#wf-enabled")).to_have_text("enabled")
    await expect(page.locator("#wf-tags .tag")).to_have_text(["orders"])
    await expect(page.locator("#wf-description")).to_have_text("Charge, then decide.")
    # A node of the DAG per node of the definition, and an edge per edge.
    nodes = page.locator("#dag svg g.node")
    await expect(nodes).to_have_count(4)
    drawn = {await n.get_attribute("data-node") for n in await nodes.all()}
    assert drawn == {"prepare", "big", "notify", "skip"}
    await expect(page.locator("#dag svg path.edge")).to_have_count(3)
    # The YAML as export writes it, with a line number per line.
    yaml = await page.locator("#yaml").input_value()
    assert yaml.startswith("name: charge-orders\n") and "- id: prepare" in yaml
    await expect(page.locator(".gutter-line")).to_have_count(yaml.count("\n") + 1)
    await expect(page.locator("#versions tbody tr")).to_have_count(1)
    for button in ("#check", "#save", "#toggle", "#run"):
        await expect(page.locator(button)).to_be_visible()
    await page.screenshot(path=screenshots / "workflow.png", full_page=True)
    assert visit.dialogs == []
    # Its runs: the runs list, filtered to this workflow.
    await page.locator("#wf-runs").click()
    await expect(page.locator("#filter-workflow_id")).to_have_value(workflow_id)
    assert [e for e in visit.console_errors if not e.startswith("Failed to load")] == []


async def test_import_shows_a_problem_at_its_line_then_imports_the_fixed_document(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key)
    await page.locator("#import-link").click()
    await expect(page).to_have_url(re.compile(r"#/import$"))
    await page.locator("#import-text").fill(BROKEN)
    await page.locator("#import-button").click()

    problem = page.locator(f'.problems-placed [data-line="{BROKEN_LINE}"]')
    await expect(problem).to_contain_text(f"line {BROKEN_LINE}")
    await expect(problem).to_contain_text("(nodes[1].type)")
    await expect(page.locator(f'.gutter-line[data-number="{BROKEN_LINE}"]')).to_have_class(
        re.compile("has-problem")
    )
    await expect(page.locator("#import-status")).to_contain_text("problem")
    # The problem's item moves the caret to its line.
    await problem.locator("button").click()
    selected = await page.locator("#import-text").evaluate(
        "(t) => t.value.slice(t.selectionStart, t.selectionEnd)"
    )
    assert selected == "  type: teleport"
    await page.screenshot(path=screenshots / "import-error.png", full_page=True)

    await page.locator("#import-text").fill(BROKEN.replace("teleport", "noop"))
    await page.locator("#import-button").click()
    await expect(page).to_have_url(re.compile(r"#/workflows/[0-9a-f-]{36}$"))
    await expect(page.locator("#wf-name")).to_have_text("imported-orders")
    await expect(page.locator("#dag svg g.node")).to_have_count(2)


async def test_import_of_json_and_a_yaml_syntax_error(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/import")
    await page.locator("#import-text").fill("name: [unclosed\nnodes: []\n")
    await page.locator("#import-button").click()
    await expect(page.locator("#import-status")).to_contain_text("YAML")
    await expect(page.locator("#import-status")).to_have_class("error")

    # Check of a JSON document: its problems have paths but no lines (the API gives lines
    # for YAML only), so they are listed above the text, each with its path.
    broken = '{"name": "from-json", "nodes": [{"id": "only", "type": "teleport"}], "edges": []}'
    await page.locator("#import-text").fill(broken)
    await page.locator("#check").click()
    unplaced = page.locator('.problems-unplaced [data-path="nodes[0].type"]')
    await expect(unplaced).to_contain_text("(nodes[0].type)")
    await expect(page.locator("#import-status")).to_have_text("1 problem(s).")

    document = '{"name": "from-json", "nodes": [{"id": "only", "type": "noop"}], "edges": []}'
    await page.locator("#import-text").fill(document)
    await page.locator("#import-button").click()
    await expect(page.locator("#wf-name")).to_have_text("from-json")

    # A local file, read in the page.
    await page.goto("/console/#/import")
    await page.locator("#import-file").set_input_files(
        files=[{"name": "w.yaml", "mimeType": "application/yaml", "buffer": FILE.encode()}]
    )
    await expect(page.locator("#import-status")).to_have_text("Read w.yaml.")
    assert await page.locator("#import-text").input_value() == FILE
    await page.locator("#import-button").click()
    await expect(page.locator("#wf-name")).to_have_text("from-a-file")
    sent = [rest for method, url, rest in visit.sent if url.endswith("/workflows/import")]
    kinds = [re.findall(r"'content-type': '([^']+)'", rest) for rest in sent]
    assert kinds == [["application/yaml"], ["application/json"], ["application/yaml"]]


async def test_a_yaml_syntax_error_is_shown_at_its_line(
    visit: Visit, console: Console, registry: Registry
) -> None:
    # A syntax error is one problem at `$` with its line (which no path could place).
    tenant = await new_tenant(registry, "ui")
    page = visit.page
    await sign_in(page, tenant.admin_key, "/console/#/import")
    await page.locator("#import-text").fill("name: w\nnodes: [unclosed\nedges: []\n")
    await page.locator("#check").click()
    problem = page.locator('.problems-placed [data-code="INVALID_EXPORT_FORMAT"]')
    await expect(problem).to_have_attribute("data-line", re.compile(r"^[23]$"))
    await expect(page.locator(".problems-unplaced")).to_be_hidden()


async def test_check_shows_the_problems_of_the_text_at_their_lines(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("checked"))
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    await page.locator("#check").click()
    await expect(page.locator("#editor-status")).to_have_text("No problems found.")
    await page.locator("#yaml").fill(BROKEN)
    await page.locator("#check").click()
    problem = page.locator(f'.problems-placed [data-line="{BROKEN_LINE}"]')
    await expect(problem).to_contain_text("(nodes[1].type)")


async def test_save_makes_a_new_version_and_a_stale_page_is_told_to_reload(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("saved"))
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    yaml = await page.locator("#yaml").input_value()
    await page.locator("#yaml").fill(yaml.replace("Charge, then decide.", "Charge, then ship."))
    await page.locator("#save").click()
    await expect(page.locator("#wf-version")).to_have_text("v2")
    await expect(page.locator("#wf-description")).to_have_text("Charge, then ship.")
    await expect(page.locator("#versions tbody tr")).to_have_count(2)

    # Someone else saves version 3: this page's Save (If-Match "v2") is refused.
    status, body, _ = await console.http.request(
        "PUT",
        f"/api/v1/{tenant.id}/workflows/{workflow_id}",
        token=tenant.admin_key,
        json=simple_definition("saved", description="Elsewhere."),
    )
    assert status == 200, body
    await page.locator("#yaml").fill(yaml.replace("Charge, then decide.", "Mine."))
    await page.locator("#save").click()
    await expect(page.locator("#editor-status")).to_contain_text("changed by someone else")
    await page.locator("#reload").click()
    await expect(page.locator("#wf-version")).to_have_text("v3")


async def test_history_lists_the_versions_and_the_diff_shows_the_changed_line(
    visit: Visit, console: Console, registry: Registry, screenshots: Path
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("diffed"))
    status, body, _ = await console.http.request(
        "PUT",
        f"/api/v1/{tenant.id}/workflows/{workflow_id}",
        token=tenant.admin_key,
        json=simple_definition("diffed", description="Charge, then ship."),
    )
    assert status == 200, body
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    await expect(page.locator("#wf-version")).to_have_text("v2")
    await expect(page.locator("#versions tbody tr")).to_have_count(2)
    await page.locator("#compare").click()
    await expect(page.locator("#diff-summary")).to_have_text("v1 → v2: 1 line(s) added, 1 removed.")
    await expect(page.locator('.diff-line[data-op="del"] .diff-text')).to_have_text(
        ["description: Charge, then decide."]
    )
    await expect(page.locator('.diff-line[data-op="add"] .diff-text')).to_have_text(
        ["description: Charge, then ship."]
    )
    await page.locator("#diff").scroll_into_view_if_needed()
    await page.screenshot(path=screenshots / "diff.png", full_page=True)
    # Unchanged lines away from the change are folded, and unfold on a click.
    shown = await page.locator(".diff-line").count()
    await page.locator(".diff-fold").first.click()
    await expect(page.locator(".diff-line")).not_to_have_count(shown)

    # An old version: its YAML and DAG, read only.
    await page.locator('#versions tr[data-version="1"] a').click()
    await expect(page.locator("#old-version")).to_contain_text("version 1")
    await expect(page.locator("#wf-description")).to_have_text("Charge, then decide.")
    assert "Charge, then decide." in await page.locator("#yaml").input_value()
    await expect(page.locator("#yaml")).to_have_attribute("readonly", "")
    await expect(page.locator("#save")).to_have_count(0)
    await expect(page.locator("#dag svg g.node")).to_have_count(4)


async def test_enable_and_disable_persist(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("toggled"))
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    await expect(page.locator("#toggle")).to_have_text("Disable")
    await page.locator("#toggle").click()
    await expect(page.locator("#wf-enabled")).to_have_text("disabled")
    await expect(page.locator("#toggle")).to_have_text("Enable")
    await page.reload()
    await expect(page.locator("#wf-enabled")).to_have_text("disabled")
    status, body, _ = await console.http.request(
        "GET", f"/api/v1/{tenant.id}/workflows/{workflow_id}", token=tenant.admin_key
    )
    assert status == 200 and body["enabled"] is False
    await page.locator("#toggle").click()
    await expect(page.locator("#wf-enabled")).to_have_text("enabled")
    await page.reload()
    await expect(page.locator("#wf-enabled")).to_have_text("enabled")


async def test_run_sends_the_input_and_goes_to_the_run(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("runnable"))
    page = visit.page
    await opened(page, await key(console, tenant, "operator"), workflow_id)
    await expect(page.locator("#save")).to_have_count(0)  # an operator does not edit
    await expect(page.locator("#toggle")).to_have_count(0)
    await page.locator("#run-input").fill("{not json")
    await page.locator("#run").click()
    await expect(page.locator("#run-error")).to_contain_text("not JSON")
    await page.locator("#run-input").fill('{"total": 150}')
    await page.locator("#run").click()
    await expect(page).to_have_url(re.compile(r"#/runs/[0-9a-f-]{36}$"))
    sent = [rest for method, url, rest in visit.sent if url.endswith("/execute")]
    assert '{"input":{"total":150}}' in sent[-1]


async def test_a_viewer_sees_no_buttons_and_the_api_refuses_anyway(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    workflow_id = await create(console, tenant, simple_definition("watched"))
    viewer = await key(console, tenant, "viewer")
    page = visit.page
    await opened(page, viewer, workflow_id)
    await expect(page.locator("#dag svg g.node")).to_have_count(4)
    await expect(page.locator("#check")).to_be_visible()
    for hidden in ("#save", "#toggle", "#run", "#run-input"):
        await expect(page.locator(hidden)).to_have_count(0)
    await expect(page.locator("#yaml")).to_have_attribute("readonly", "")
    await page.goto("/console/#/workflows")
    await expect(page.locator("#workflows td.name")).to_have_text(["watched"])
    await expect(page.locator("#import-link")).to_have_count(0)
    await page.goto("/console/#/import")
    await expect(page.locator("#import-refused")).to_be_visible()
    await expect(page.locator("#import-button")).to_have_count(0)

    status, _, _ = await console.http.request(
        "PUT",
        f"/api/v1/{tenant.id}/workflows/{workflow_id}",
        token=viewer,
        json=simple_definition("watched", description="no"),
    )
    assert status == 403
    status, _, _ = await console.http.request(
        "PATCH",
        f"/api/v1/{tenant.id}/workflows/{workflow_id}",
        token=viewer,
        json={"enabled": False},
    )
    assert status == 403


async def test_a_name_made_of_markup_is_text(
    visit: Visit, console: Console, registry: Registry
) -> None:
    tenant = await new_tenant(registry, "ui")
    definition = simple_definition(MARKUP_NAME, description=MARKUP_NAME, tags=[MARKUP_NAME])
    workflow_id = await create(console, tenant, definition)
    page = visit.page
    await opened(page, tenant.admin_key, workflow_id)
    await expect(page.locator("#wf-name")).to_have_text(MARKUP_NAME)
    await expect(page.locator("#wf-description")).to_have_text(MARKUP_NAME)
    await expect(page.locator("#wf-tags .tag")).to_have_text([MARKUP_NAME])
    assert MARKUP_NAME in await page.locator("#yaml").input_value()
    await expect(page.locator("#dag svg g.node")).to_have_count(4)
    await expect(page.locator("img")).to_have_count(0)
    assert visit.dialogs == []
