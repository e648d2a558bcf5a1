"""A tenant's costly expressions hold no executor (DESIGN section 12): a step over its budget
fails at once with ExpressionBudgetExceeded, while another tenant's run takes its normal
time and /healthz keeps answering."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest_asyncio

from flowmesh_executor.main import ExecutorApp
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.integration.executor.runs import Runs
from tests.integration.harness import Api

#: Two levels pass validation; over 3,000 items they would run for many minutes.
COSTLY = "{{ trigger.data.items.map(a, trigger.data.items.map(b, a + b)) }}"
#: What the victim runs: a handful of instantaneous steps.
CHAIN = {
    "name": "victim",
    "nodes": [
        {"id": "a", "type": "transform", "parameters": {"output": "{{ trigger.data.n + 1 }}"}},
        {"id": "b", "type": "condition", "parameters": {"expression": "nodes.a.output > 1"}},
        {"id": "c", "type": "noop"},
    ],
    "edges": [{"from": "a", "to": "b"}, {"from": "b", "to": "c", "when": "true"}],
}


@pytest_asyncio.fixture(loop_scope="session")
async def other_runs(
    executor: ExecutorApp, other_api: Api, nc: Any, subjects: Subjects, streams: StreamNames
) -> Runs:
    return Runs(other_api, nc, subjects, streams)


class HealthProbe:
    """Asks the executor's /healthz every 10 ms and keeps the slowest answer."""

    def __init__(self, port: int) -> None:
        self.url = f"http://127.0.0.1:{port}/healthz"
        self.slowest = 0.0
        self.answers = 0

    async def run(self) -> None:
        async with aiohttp.ClientSession() as session:
            while True:
                started = time.perf_counter()
                async with session.get(self.url) as response:
                    assert response.status == 200
                self.slowest = max(self.slowest, time.perf_counter() - started)
                self.answers += 1
                await asyncio.sleep(0.01)


@pytest_asyncio.fixture(loop_scope="session")
async def probe(executor: ExecutorApp) -> AsyncIterator[HealthProbe]:
    probe = HealthProbe(executor.health_port)
    task = asyncio.create_task(probe.run())
    try:
        yield probe
    finally:
        task.cancel()


async def test_a_costly_step_fails_at_once_and_holds_no_other_tenants_run(
    runs: Runs, other_runs: Runs, probe: HealthProbe
) -> None:
    attacker = await runs.workflow(
        {
            "name": "costly",
            "nodes": [{"id": "grid", "type": "transform", "parameters": {"output": COSTLY}}],
            "edges": [],
        }
    )
    victim = await other_runs.workflow(CHAIN)
    baseline_started = time.perf_counter()
    state = await other_runs.finished(await other_runs.start(victim, {"n": 1}))
    baseline = time.perf_counter() - baseline_started
    assert state.status == "succeeded"

    started = time.perf_counter()
    attacks = [await runs.start(attacker, {"items": list(range(3000))}) for _ in range(3)]
    victim_run = await other_runs.start(victim, {"n": 1})
    victim_state = await other_runs.finished(victim_run)
    victim_took = time.perf_counter() - started
    for run_id in attacks:
        attack = await runs.finished(run_id)
        assert attack.status == "failed"
        grid = attack.node("grid")
        assert grid.error_class == "ExpressionBudgetExceeded"
        assert "costs more than its budget" in (grid.error or "")
    assert victim_state.status == "succeeded"
    assert victim_took < baseline + 1.0  # evaluating one attack would take minutes
    assert probe.answers > 0
    assert probe.slowest < 0.25, f"/healthz took {probe.slowest * 1000:.0f} ms"


async def test_a_step_within_its_budget_still_runs(runs: Runs) -> None:
    workflow = await runs.workflow(
        {
            "name": "grid",
            "nodes": [{"id": "grid", "type": "transform", "parameters": {"output": COSTLY}}],
            "edges": [],
        }
    )
    state = await runs.finished(await runs.start(workflow, {"items": [1, 2, 3]}))
    assert state.status == "succeeded"
    assert state.node("grid").output == [[2, 3, 4], [3, 4, 5], [4, 5, 6]]
