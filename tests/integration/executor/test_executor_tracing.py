"""A run continues the trace of its trigger: its events and its steps' calls carry it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp import web

from tests.helpers import until
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


async def test_the_run_is_a_span_and_each_step_attempt_a_child(
    runs: Runs, echo: tuple[str, list[dict[str, str]]]
) -> None:
    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):  # the first test to need one installs it
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    url, _ = echo
    definition = {
        "name": "spans",
        "nodes": [
            {"id": "call", "type": "http", "parameters": {"url": f"{url}/a"}},
            {"id": "again", "type": "http", "parameters": {"url": f"{url}/b"}},
        ],
        "edges": [{"from": "call", "to": "again"}],
    }
    workflow = await runs.workflow(definition)
    run_id = await runs.start(workflow, {}, headers={"traceparent": TRACEPARENT})
    assert (await runs.finished(run_id)).status == "succeeded"
    # the run's span ends just after its last event
    await until(lambda: any(s.name == "run" for s in exporter.get_finished_spans()))
    spans = {span.name: span for span in exporter.get_finished_spans()}
    run_span, call, again = spans["run"], spans["step call"], spans["step again"]
    assert format(run_span.context.trace_id, "032x") == TRACE_ID
    assert (
        run_span.parent is not None
        and format(run_span.parent.span_id, "016x") == "b7ad6b7169203331"
    )
    for step in (call, again):
        assert step.context.trace_id == run_span.context.trace_id
        assert step.parent is not None and step.parent.span_id == run_span.context.span_id
    assert run_span.attributes["flowmesh.run_id"] == run_id
