"""A run continues the trace of its trigger: its events and its steps' calls carry it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from tests.integration.executor.runs import Runs

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


@pytest_asyncio.fixture(loop_scope="session")
async def echo() -> AsyncIterator[tuple[str, list[dict[str, str]]]]:
    seen: list[dict[str, str]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(dict(request.headers))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", seen
    finally:
        await runner.cleanup()


async def test_the_trigger_trace_reaches_events_and_steps(
    runs: Runs, echo: tuple[str, list[dict[str, str]]]
) -> None:
    url, seen = echo
    definition = {
        "name": "traced",
        "nodes": [
            {"id": "call", "type": "http", "parameters": {"url": f"{url}/hook", "method": "POST"}},
            {"id": "after", "type": "noop"},
        ],
        "edges": [{"from": "call", "to": "after"}],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow, {}, headers={"traceparent": TRACEPARENT})
    state = await runs.finished(run_id)
    assert state.status == "succeeded", state.error
    assert len(seen) == 1
    assert seen[0]["traceparent"].split("-")[1] == TRACE_ID
    assert seen[0]["Idempotency-Key"] == f"{run_id}:call"
    headers = await runs.event_headers(run_id)
    published = headers[1:]  # the first is run.queued, published by the trigger
    assert published and all(h.get("traceparent", "").split("-")[1] == TRACE_ID for h in published)
