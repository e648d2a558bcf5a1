"""The console's runs list and run page in a real browser (DESIGN section 14), with an
executor of this module's own on the session's registry: runs turn green live, a dropped
stream resumes after its last event, cancel and retry, the list's filters and live rows,
another tenant's run is not found, and a viewer gets no buttons (and the API refuses it).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from aiohttp import web
from playwright.async_api import Browser, Page, expect

from flowmesh_executor.main import start_executor
from flowmesh_executor.settings import ExecutorSettings
from tests.helpers import until
from tests.integration.gateway.browser import MARKUP_NAME, Console, Visit, sign_in
from tests.integration.gateway.outage import Cutter
from tests.integration.gateway.sse_client import sse
from tests.integration.harness import Registry, TenantHandle, new_tenant, unique

pytestmark = pytest.mark.integration

#: How long a browser waits for a run to get somewhere (ms).
RUN_TIMEOUT = 20_000
SUCCEEDED = "node status-succeeded"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def executor(console: Console, registry: Registry) -> AsyncIterator[None]:
    """An executor on the console's NATS and streams, allowed to call this host (the
    flaky server below) although its SSRF guard refuses loopback by default."""
    settings = ExecutorSettings(
        nats_url=registry.settings.nats_url,
        subject_prefix=registry.settings.subject_prefix,
        stream_prefix=registry.settings.stream_prefix,
        http_port=0,
        lease_seconds=5.0,
        shutdown_timeout=2.0,
        http_allow_networks=("127.0.0.0/8",),
    )
    async with AsyncExitStack() as stack:
        await start_executor(settings, stack)
        yield


class Flaky(msgspec.Struct):
    """An HTTP server on 127.0.0.1: ``/fail-once/<key>`` answers 500 the first time and 200
    after; ``/fail/<key>`` always 500."""

    base: str
    calls: dict[str, int]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def flaky() -> AsyncIterator[Flaky]:
    calls: dict[str, int] = {}

    async def fail_once(request: web.Request) -> web.Response:
        key = request.match_info["key"]
        calls[key] = calls.get(key, 0) + 1
        if calls[key] == 1:
            return web.json_response({"error": "not yet"}, status=500)
        return web.json_response({"paid": True})

    async def fail(_: web.Request) -> web.Response:
        return web.json_response({"error": "never"}, status=500)

    app = web.Application()
    app.router.add_get("/fail-once/{key}", fail_once)
    app.router.add_get("/fail/{key}", fail)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    try:
        yield Flaky(base=f"http://127.0.0.1:{port}", calls=calls)
    finally:
        await runner.cleanup()


def delays(name: str, ms: int, edges: list[tuple[str, str]], *nodes: str) -> dict[str, Any]:
    duration = f"PT{ms / 1000:.3f}S"
    return {
        "name": name,
        "nodes": [{"id": n, "type": "delay", "parameters": {"duration": duration}} for n in nodes],
        "edges": [{"from": a, "to": b} for a, b in edges],
    }


def calling(name: str, url: str) -> dict[str, Any]:
    """prepare (transform) -> charge (http GET url) -> done (noop)."""
    return {
        "name": name,
        "nodes": [
            {"id": "prepare", "type": "transform", "parameters": {"output": {"total": 3}}},
            {"id": "charge", "type": "http", "parameters": {"url": url}},
            {"id": "done", "type": "noop"},
        ],
        "edges": [{"from": "prepare", "to": "charge"}, {"from": "charge", "to": "done"}],
    }


DIAMOND = [("a", "b"), ("a", "c"), ("b", "d"), ("c", "d")]
CHAIN = [("a", "b"), ("b", "c"), ("c", "d")]


class Tenant:
    """A tenant of the session's registry, driven through the console gateway's API."""

    def __init__(self, console: Console, handle: TenantHandle) -> None:
        self.console, self.handle = console, handle
        self.prefix = f"/api/v1/{handle.id}"

    async def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        kwargs.setdefault("token", self.handle.admin_key)
        status, body, _ = await self.console.http.request(method, self.prefix + path, **kwargs)
        return status, body

    async def workflow(self, definition: dict[str, Any]) -> str:
        status, body = await self.call("POST", "/workflows", json=definition)
        assert status == 201, body
        return str(body["id"])

    async def execute(self, workflow_id: str) -> str:
        status, body = await self.call("POST", f"/workflows/{workflow_id}/execute", json={})
        assert status == 202, body
        return str(body["run_id"])

    async def run(self, run_id: str) -> dict[str, Any]:
        status, body = await self.call("GET", f"/runs/{run_id}")
        assert status == 200, body
        result: dict[str, Any] = body
        return result

    async def finished(self, run_id: str, status: str, timeout: float = 20.0) -> dict[str, Any]:  # noqa: ASYNC109
        async def ended() -> dict[str, Any] | None:
            run = await self.run(run_id)
            return run if run["status"] == status else None

        found: dict[str, Any] = await until(ended, timeout=timeout, interval=0.1)
        return found

    async def event_ids(self, run_id: str) -> list[int]:
        """The ids of the run's stored events, as a fresh SSE client reads them."""
        url = self.console.http.url(f"{self.prefix}/runs/{run_id}/events")
        async with sse(self.console.http.session, url, self.handle.admin_key) as reader:
            return [event.id for event in await reader.rest()]

    async def key(self, role: str) -> str:
        status, body = await self.call("POST", "/api-keys", json={"name": role, "role": role})
        assert status == 201, body
        return str(body["key"])


async def tenant_of(console: Console, registry: Registry) -> Tenant:
    return Tenant(console, await new_tenant(registry, "ui"))


def node(page: Page, node_id: str) -> Any:
    return page.locator(f'#run svg.dag g.node[data-node="{node_id}"]')


async def open_run(page: Page, run_id: str) -> None:
    await page.goto(f"/console/#/runs/{run_id}")
    await expect(page.locator("#run")).to_have_attribute("data-run", run_id)


async def page_event_ids(page: Page) -> list[int]:
    raw = await page.locator("#run-events").get_attribute("data-event-ids")
    return [int(part) for part in (raw or "").split()]


async def test_a_run_turns_green_live_with_its_timeline(
    visit: Visit, console: Console, registry: Registry, executor: None, screenshots: Path
) -> None:
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(delays(unique("diamond"), 700, DIAMOND, "a", "b", "c", "d"))
    page = visit.page
    await sign_in(page, tenant.handle.admin_key)
    await expect(page.locator("#tenant")).to_have_text(tenant.handle.id)
    run_id = await tenant.execute(workflow)
    await open_run(page, run_id)

    await expect(node(page, "a")).to_have_class("node status-succeeded", timeout=RUN_TIMEOUT)
    # While the first node is done the last one has not run: the page is live, not loaded
    # at the end.
    assert await node(page, "d").get_attribute("class") != SUCCEEDED
    await expect(page.locator("#run-status")).to_have_text("running")
    await page.screenshot(path=screenshots / "run-live.png", full_page=True)
    for node_id in ("b", "c", "d"):
        await expect(node(page, node_id)).to_have_class(SUCCEEDED, timeout=RUN_TIMEOUT)
    await expect(page.locator("#run-status")).to_have_text("succeeded")
    await expect(page.locator("#run-events")).to_have_attribute("data-connection", "ended")

    bars = page.locator("#timeline-chart rect.tl-bar")
    await expect(bars).to_have_count(4)
    await expect(page.locator("#timeline table.attempts tbody tr")).to_have_count(4)
    await node(page, "b").click()
    await expect(page.locator("#step-id")).to_have_text("b")
    await expect(page.locator("#step-status")).to_have_text("succeeded")
    await expect(page.locator("#step-input")).to_contain_text('"duration": "PT0.700S"')
    await expect(page.locator("#step-detail table.attempts tbody tr")).to_have_count(1)
    await page.screenshot(path=screenshots / "run.png", full_page=True)

    ids = await page_event_ids(page)
    assert ids == await tenant.event_ids(run_id)
    assert [e for e in visit.console_errors if not e.startswith("Failed to load resource")] == []


async def test_a_dropped_stream_resumes_after_its_last_event(
    browser: Browser, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(delays(unique("chain"), 1000, CHAIN, "a", "b", "c", "d"))
    cutter = Cutter(int(console.base.rsplit(":", 1)[1]))
    port = await cutter.start()
    context = await browser.new_context(base_url=f"http://127.0.0.1:{port}")
    try:
        page = await context.new_page()
        await sign_in(page, tenant.handle.admin_key)
        await expect(page.locator("#tenant")).to_have_text(tenant.handle.id)
        run_id = await tenant.execute(workflow)
        await open_run(page, run_id)
        await expect(node(page, "a")).to_have_class("node status-running", timeout=RUN_TIMEOUT)
        events = page.locator("#run-events")
        # Events came over the stream (not only the first paint from GET /runs/{id}).
        await expect(events).to_have_attribute("data-connection", "live")
        await expect(events).not_to_have_attribute("data-last-event-id", "")

        cutter.cut()
        await expect(events).to_have_attribute("data-connection", "reconnecting")
        seen_before = await page_event_ids(page)

        async def b_is_done() -> bool:
            steps = {s["node_id"]: s["status"] for s in (await tenant.run(run_id))["steps"]}
            return steps["b"] == "succeeded"

        await until(b_is_done, timeout=10, interval=0.05)
        assert await node(page, "b").get_attribute("class") != SUCCEEDED  # still cut off
        cutter.down = False

        for node_id in ("a", "b", "c", "d"):
            await expect(node(page, node_id)).to_have_class(SUCCEEDED, timeout=RUN_TIMEOUT)
        await expect(page.locator("#run-status")).to_have_text("succeeded")
        ids = await page_event_ids(page)
        assert ids[: len(seen_before)] == seen_before
        assert ids == await tenant.event_ids(run_id)  # none missed, none twice
        # The browser asked to resume after the last event it had before the cut.
        path = f"/api/v1/{tenant.handle.id}/runs/{run_id}/events".encode()
        heads = [r.lower() for r in cutter.requests if r.startswith(b"GET " + path)]
        assert len(heads) >= 2
        last = str(seen_before[-1]).encode()
        resumed = [
            h for h in heads[1:] if b"last-event-id: " + last in h or b"last_event_id=" + last in h
        ]
        assert resumed, heads
    finally:
        await context.close()
        await cutter.close()


async def test_cancel_a_long_run(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(
        {
            "name": unique("long"),
            "nodes": [
                {"id": "start", "type": "noop"},
                {"id": "wait", "type": "delay", "parameters": {"duration": "PT20S"}},
                {"id": "after", "type": "noop"},
            ],
            "edges": [{"from": "start", "to": "wait"}, {"from": "wait", "to": "after"}],
        }
    )
    page = visit.page
    await sign_in(page, tenant.handle.admin_key)
    await expect(page.locator("#tenant")).to_have_text(tenant.handle.id)
    run_id = await tenant.execute(workflow)
    await open_run(page, run_id)
    await expect(node(page, "wait")).to_have_class("node status-running", timeout=RUN_TIMEOUT)
    await expect(page.locator("#retry")).to_have_count(0)

    await page.locator("#cancel").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=RUN_TIMEOUT)
    await expect(node(page, "start")).to_have_class("node status-succeeded")
    await expect(node(page, "wait")).to_have_class("node status-cancelled")
    await expect(node(page, "after")).to_have_class("node status-skipped")
    await expect(page.locator("#cancel")).to_have_count(0)
    await expect(page.locator("#retry")).to_be_visible()
    await expect(page.locator("#run-error")).to_contain_text("CANCELLED")
    assert (await tenant.run(run_id))["status"] == "cancelled"


async def test_retry_a_failed_run_reuses_what_succeeded(
    visit: Visit, console: Console, registry: Registry, executor: None, flaky: Flaky
) -> None:
    tenant = await tenant_of(console, registry)
    key = unique("k")
    workflow = await tenant.workflow(calling(unique("pay"), f"{flaky.base}/fail-once/{key}"))
    page = visit.page
    await sign_in(page, tenant.handle.admin_key)
    await expect(page.locator("#tenant")).to_have_text(tenant.handle.id)
    run_id = await tenant.execute(workflow)
    await open_run(page, run_id)
    await expect(page.locator("#run-status")).to_have_text("failed", timeout=RUN_TIMEOUT)
    await expect(node(page, "charge")).to_have_class("node status-failed")
    await expect(node(page, "done")).to_have_class("node status-skipped")
    await node(page, "charge").click()
    await expect(page.locator("#step-error")).to_contain_text("500")

    await page.locator("#retry").click()
    await page.wait_for_url(lambda url: "#/runs/" in url and run_id not in url)
    new_id = page.url.rsplit("/", 1)[1]
    await expect(page.locator("#run")).to_have_attribute("data-run", new_id)
    await expect(page.locator("#run-status")).to_have_text("succeeded", timeout=RUN_TIMEOUT)
    await expect(page.locator("#run-trigger")).to_have_text("retry")
    await expect(page.locator("#parent-run")).to_have_text(run_id)
    await expect(page.locator("#timeline table.attempts tr.reused")).to_have_count(1)
    await node(page, "prepare").click()
    await expect(page.locator("#step-reused")).to_be_visible()
    await expect(page.locator("#step-output")).to_contain_text('"total": 3')
    await node(page, "charge").click()
    await expect(page.locator("#step-reused")).to_have_count(0)
    await expect(page.locator("#step-output")).to_contain_text('"paid": true')
    assert flaky.calls[key] == 2
    steps = {s["node_id"]: s for s in (await tenant.run(new_id))["steps"]}
    assert steps["prepare"]["reused"] and not steps["charge"]["reused"]


async def test_the_timeline_shows_a_failed_attempt_and_its_retry_delay(
    visit: Visit, console: Console, registry: Registry, executor: None, flaky: Flaky
) -> None:
    tenant = await tenant_of(console, registry)
    key = unique("k")
    definition = calling(unique("pay-again"), f"{flaky.base}/fail-once/{key}")
    definition["nodes"][1]["retry"] = {
        "max_attempts": 2,
        "backoff": "fixed",
        "initial": "PT0.3S",
        "jitter": False,
    }
    workflow = await tenant.workflow(definition)
    run_id = await tenant.execute(workflow)
    await tenant.finished(run_id, "succeeded")
    page = visit.page
    await sign_in(page, tenant.handle.admin_key, f"/console/#/runs/{run_id}")
    await expect(page.locator("#run-status")).to_have_text("succeeded")
    charge = page.locator('#timeline table.attempts tr[data-node="charge"]')
    await expect(charge).to_have_count(2)
    await expect(charge.first.locator("td.outcome")).to_have_text("failed")
    await expect(charge.first.locator("td.retry-delay")).to_have_text("retry after 300 ms")
    await expect(charge.first.locator("td.attempt-error")).to_contain_text("500")
    await expect(charge.last.locator("td.outcome")).to_have_text("succeeded")
    await expect(page.locator('#timeline-chart rect[data-node="charge"]')).to_have_count(2)
    await expect(page.locator("#timeline-chart line.tl-retry")).to_have_count(1)
    await page.locator('#timeline-chart rect[data-node="charge"]').first.click()
    await expect(page.locator("#step-id")).to_have_text("charge")
    await expect(page.locator("#step-detail table.attempts tbody tr")).to_have_count(2)


async def test_the_runs_list_filters_and_shows_new_runs_live(
    visit: Visit,
    console: Console,
    registry: Registry,
    executor: None,
    flaky: Flaky,
    screenshots: Path,
) -> None:
    tenant = await tenant_of(console, registry)
    failing = await tenant.workflow(calling(unique("always-failing"), f"{flaky.base}/fail/x"))
    quick = await tenant.workflow(delays(unique("quick"), 10, [("a", "b")], "a", "b"))
    failed_id = await tenant.execute(failing)
    ok_id = await tenant.execute(quick)
    await tenant.finished(failed_id, "failed")
    await tenant.finished(ok_id, "succeeded")
    page = visit.page
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs")
    rows = page.locator("#runs tbody tr")
    await expect(rows).to_have_count(2)
    await expect(page.locator(f'#runs tr[data-id="{failed_id}"] td.status-cell')).to_have_text(
        "failed"
    )
    await expect(page.locator("#runs-live")).to_have_text("live")

    await page.locator("#filter-status").select_option("failed")
    await page.get_by_role("button", name="Filter").click()
    await expect(rows).to_have_count(1)
    await expect(page.locator("#runs tbody tr")).to_have_attribute("data-id", failed_id)
    assert "status=failed" in page.url
    await page.reload()
    await expect(page.locator("#runs tbody tr")).to_have_attribute("data-id", failed_id)
    await expect(page.locator("#filter-status")).to_have_value("failed")

    # A time range: nothing was created after 2099.
    await page.locator("#filter-created_after").fill("2099-01-01T00:00")
    await page.get_by_role("button", name="Filter").click()
    await expect(page.locator("#empty")).to_have_text("No run matches.")
    assert "created_after=2099-01-01T" in page.url and "status=failed" in page.url

    # A new run appears without a reload: the tenant's stream refreshes the list.
    await page.goto("/console/#/runs")
    await expect(rows).to_have_count(2)
    await expect(page.locator("#runs-live")).to_have_text("live")
    await page.evaluate("window.notReloaded = true")
    new_id = await tenant.execute(quick)
    await expect(page.locator(f'#runs tr[data-id="{new_id}"]')).to_be_visible(timeout=RUN_TIMEOUT)
    await expect(page.locator(f'#runs tr[data-id="{new_id}"] td.status-cell')).to_have_text(
        "succeeded", timeout=RUN_TIMEOUT
    )
    assert await page.evaluate("window.notReloaded") is True
    await expect(rows.first.locator("td.workflow a")).to_contain_text("quick")
    await page.screenshot(path=screenshots / "runs.png", full_page=True)

    await rows.first.locator("td.run-id a").click()
    await expect(page.locator("#run")).to_have_attribute("data-run", new_id)


async def test_the_runs_list_pages_come_from_the_server(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    quick = await tenant.workflow(delays(unique("paged"), 10, [], "a"))
    runs = [await tenant.execute(quick) for _ in range(3)]
    for run_id in runs:
        await tenant.finished(run_id, "succeeded")
    page = visit.page
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs?limit=2")
    rows = page.locator("#runs tbody tr")
    newest_first = list(reversed(runs))
    await expect(rows).to_have_count(2)
    assert [await r.get_attribute("data-id") for r in await rows.all()] == newest_first[:2]
    await expect(page.locator("#previous")).to_be_disabled()
    await page.locator("#next").click()
    await expect(rows).to_have_count(1)
    await expect(rows).to_have_attribute("data-id", newest_first[2])
    await expect(page.locator("#next")).to_be_disabled()
    await page.locator("#previous").click()
    await expect(rows).to_have_count(2)
    asked = [u for _, u, _ in visit.sent if f"/api/v1/{tenant.handle.id}/runs?" in u]
    assert any("cursor=" in u for u in asked) and all("limit=2" in u for u in asked)


async def test_a_queued_run_says_why_it_waits(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    definition = delays(unique("one-at-a-time"), 15_000, [], "a")
    definition["concurrency"] = {"key": "'all'", "limit": 1, "on_limit": "queue"}
    workflow = await tenant.workflow(definition)
    runs = [await tenant.execute(workflow), await tenant.execute(workflow)]
    # One holds the slot, the other waits for it: which is which is the executors' race
    # (both may be taken in one fetch), not an order the API promises.
    held: list[str] = []

    async def waits() -> bool:
        for run_id in runs:
            run = await tenant.run(run_id)
            waiting = (run.get("waiting") or {}).get("reason")
            if run["status"] == "queued" and waiting == "concurrency_key":
                held[:] = [r for r in runs if r != run_id]
                return True
        return False

    await until(waits, timeout=10, interval=0.1)
    [first] = held
    [second] = [r for r in runs if r != first]
    page = visit.page
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs")
    row = page.locator(f'#runs tr[data-id="{second}"]')
    await expect(row.locator("td.status-cell .waiting")).to_contain_text("concurrency_key")
    await expect(page.locator(f'#runs tr[data-id="{first}"] .waiting')).to_have_count(0)
    await open_run(page, second)
    await expect(page.locator("#run-status")).to_have_text("queued")
    await expect(page.locator("#waiting")).to_contain_text("concurrency_key")
    await page.locator("#cancel").click()
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=RUN_TIMEOUT)
    await expect(page.locator("#waiting")).to_have_count(0)
    await expect(node(page, "a")).to_have_class("node status-skipped")
    status, body = await tenant.call("POST", f"/runs/{first}/cancel", json={})
    assert status == 202, body


async def test_user_written_text_stays_text(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    definition = delays(MARKUP_NAME, 10, [], "a")
    definition["nodes"][0]["description"] = MARKUP_NAME
    workflow = await tenant.workflow(definition)
    status, body = await tenant.call(
        "POST", f"/workflows/{workflow}/execute", json={"input": {"note": MARKUP_NAME}}
    )
    assert status == 202, body
    run_id = body["run_id"]
    await tenant.finished(run_id, "succeeded")
    page = visit.page
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs")
    await expect(page.locator("#runs td.workflow a")).to_have_text(MARKUP_NAME)
    await open_run(page, run_id)
    await expect(page.locator("#run-summary")).to_contain_text(MARKUP_NAME)
    await expect(page.locator("#run-input")).to_contain_text(MARKUP_NAME)
    await expect(page.locator("img")).to_have_count(0)
    assert visit.dialogs == []


async def test_another_tenants_run_is_not_found(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    owner = await tenant_of(console, registry)
    workflow = await owner.workflow(delays(unique("mine"), 10, [], "a"))
    run_id = await owner.execute(workflow)
    await owner.finished(run_id, "succeeded")
    stranger = await tenant_of(console, registry)
    page = visit.page
    await sign_in(page, stranger.handle.admin_key, f"/console/#/runs/{run_id}")
    await expect(page.locator("#not-found h1")).to_have_text("Not found")
    await expect(page.locator("#run")).to_have_count(0)
    await page.goto("/console/#/runs/not-a-run-id")
    await expect(page.locator("#not-found h1")).to_have_text("Not found")


async def test_a_viewer_sees_no_buttons_and_the_api_refuses_its_cancel(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(delays(unique("slow"), 15_000, [("a", "b")], "a", "b"))
    viewer = await tenant.key("viewer")
    run_id = await tenant.execute(workflow)
    page = visit.page
    await sign_in(page, viewer)
    await expect(page.locator("#role")).to_have_text("viewer")
    await open_run(page, run_id)
    await expect(node(page, "a")).to_have_class("node status-running", timeout=RUN_TIMEOUT)
    await expect(page.locator("#run-actions button")).to_have_count(0)

    refused = await page.evaluate(
        """async (runId) => {
          const api = await import("/console/api.js");
          try {
            await api.request("POST", `/runs/${runId}/cancel`, {});
            return null;
          } catch (error) {
            return [error.status, error.code];
          }
        }""",
        run_id,
    )
    assert refused == [403, "FORBIDDEN"]
    assert (await tenant.run(run_id))["status"] == "running"
    status, body = await tenant.call("POST", f"/runs/{run_id}/cancel", json={})
    assert status == 202, body
    await expect(page.locator("#run-status")).to_have_text("cancelled", timeout=RUN_TIMEOUT)
    await expect(page.locator("#run-actions button")).to_have_count(0)


async def test_leaving_the_pages_closes_their_streams(
    visit: Visit, console: Console, registry: Registry, executor: None
) -> None:
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(delays(unique("slow"), 15_000, [], "a"))
    run_id = await tenant.execute(workflow)
    page = visit.page
    ended: list[str] = []  # the browser ends a request it gives up (an EventSource closed)
    page.on("requestfailed", lambda request: ended.append(request.url))
    page.on("requestfinished", lambda request: ended.append(request.url))
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs")
    await expect(page.locator("#runs-live")).to_have_text("live")
    assert not [url for url in ended if "/events/stream" in url]
    await open_run(page, run_id)
    await expect(node(page, "a")).to_have_class("node status-running", timeout=RUN_TIMEOUT)
    await until(lambda: [url for url in ended if "/events/stream" in url], timeout=5)
    assert not [url for url in ended if f"/runs/{run_id}/events" in url]
    await page.goto("/console/#/workflows")
    await until(lambda: [url for url in ended if f"/runs/{run_id}/events" in url], timeout=5)
    status, body = await tenant.call("POST", f"/runs/{run_id}/cancel", json={})
    assert status == 202, body


@pytest.mark.parametrize("page_path", ["runs", "run"])
async def test_a_page_whose_session_ends_goes_to_sign_in_without_asking_again(
    visit: Visit, console: Console, registry: Registry, executor: None, page_path: str
) -> None:
    # The gateway ends an open stream whose session has gone (at its next heartbeat, 1 s
    # here); the page then asks once whether the session holds, and signs in again rather
    # than reopening the stream every few seconds (each a 401 counted against the address).
    tenant = await tenant_of(console, registry)
    workflow = await tenant.workflow(delays(unique("slow"), 15_000, [], "a"))
    run_id = await tenant.execute(workflow)
    page = visit.page
    opened: list[str] = []
    page.on("request", lambda r: opened.append(r.url) if "/events" in r.url else None)
    await sign_in(page, tenant.handle.admin_key, "/console/#/runs")
    await expect(page.locator("#runs-live")).to_have_text("live")
    if page_path == "run":
        await open_run(page, run_id)
        await expect(node(page, "a")).to_have_class("node status-running", timeout=RUN_TIMEOUT)
    session = await visit.context.request.get("/console/session")
    token = (await session.json())["csrf_token"]
    ended = await visit.context.request.delete("/console/session", headers={"X-CSRF-Token": token})
    assert ended.status == 204
    await expect(page.locator("#sign-in")).to_be_visible(timeout=10_000)
    streams = len(opened)
    await asyncio.sleep(4)
    assert len(opened) == streams  # nothing asked again
    status, body = await tenant.call("POST", f"/runs/{run_id}/cancel", json={})
    assert status == 202, body
