"""Run history of runs a real executor ran: what it published is what the registry shows."""

from __future__ import annotations

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.runview import run_view
from tests.integration.executor.conftest import executor, executor_settings, runs
from tests.integration.executor.runs import Runs
from tests.integration.executor.test_executor_run_steps import FAILS, LONG, ORDER

from .conftest import Registry
from .run_events import projected, session_projection

pytestmark = pytest.mark.integration

__all__ = ["executor", "executor_settings", "runs"]

RETRIED = {
    "name": "retried",
    "nodes": [
        {"id": "prepare", "type": "transform", "parameters": {"output": "{{ trigger.data }}"}},
        {
            "id": "flaky",
            "type": "http",
            "parameters": {"method": "GET", "url": "http://127.0.0.1:9/unreachable"},
            "retry": {"max_attempts": 2, "backoff": "fixed", "initial": "PT0.01S"},
            "on_error": "continue",
        },
        {"id": "wait", "type": "delay", "parameters": {"duration": "PT0.05S"}},
        {"id": "done", "type": "noop"},
    ],
    "edges": [
        {"from": "prepare", "to": "flaky"},
        {"from": "flaky", "to": "wait"},
        {"from": "wait", "to": "done"},
    ],
}


async def test_executed_runs_read_back_as_their_events(registry: Registry, runs: Runs) -> None:
    workflow = await runs.workflow(RETRIED)
    run_ids = [await runs.start(workflow, {"i": i}) for i in range(3)]
    for run_id in run_ids:
        await runs.finished(run_id)
    events = {run_id: await runs.events(run_id) for run_id in run_ids}
    await projected(session_projection(registry), max(await _last_seqs(runs, run_ids)))

    durations = []
    for run_id in run_ids:
        run = await runs.api("run_get", r.RunGet(id=run_id))
        assert run == run_view(events[run_id])
        assert run.status == "succeeded"
        flaky = next(step for step in run.steps if step.node_id == "flaky")
        assert flaky.status == "failed" and flaky.attempts == 2
        assert run.duration_ms is not None
        durations.append(run.duration_ms)
    stats = await runs.api("workflow_stats", r.WorkflowStatsGet(id=workflow.id))
    assert (stats.execution_count, stats.success_count, stats.failure_count) == (3, 3, 0)
    assert stats.average_execution_ms == round(sum(durations) / 3, 3)
    assert stats.p95_execution_ms == max(durations)
    assert stats.last_execution_status == "succeeded"


async def test_every_node_reads_back_the_same_from_the_projection_and_the_events(
    registry: Registry, runs: Runs
) -> None:
    """``GET /runs/{id}`` answers from the projection, or from the run's events (``run_view``,
    the gateway's replay path): both list every node, in definition order, while the run
    runs and once it failed or was cancelled."""
    projection = session_projection(registry)
    failing = await runs.workflow(FAILS)
    failed = await runs.start(failing, {"d": "not a duration"})
    long = await runs.workflow(LONG)
    cancelled = await runs.start(long, {"items": [1]})
    await runs.step_running(cancelled, "first")
    await projected(projection, max(await _last_seqs(runs, [cancelled])))
    running = await runs.api("run_get", r.RunGet(id=cancelled))
    assert running == run_view(await runs.events(cancelled))
    assert [(s.node_id, s.status) for s in running.steps] == [
        ("first", "running"),
        ("each", "pending"),
        ("last", "pending"),
    ]
    await runs.cancel(cancelled)
    retried = await runs.start(
        failing, {"d": "still not"}, kind="retry", parent_run_id=failed, attempt=2
    )
    run_ids = [failed, cancelled, retried]
    for run_id in run_ids:
        await runs.finished(run_id)
    await projected(projection, max(await _last_seqs(runs, run_ids)))
    for run_id in run_ids:
        run = await runs.api("run_get", r.RunGet(id=run_id))
        assert run == run_view(await runs.events(run_id))
        assert all(step.status not in ("pending", "running") for step in run.steps)
    views = [await runs.api("run_get", r.RunGet(id=run_id)) for run_id in run_ids]
    assert [s.node_id for s in views[0].steps] == ORDER == [s.node_id for s in views[2].steps]
    assert [s.status for s in views[1].steps] == ["cancelled", "skipped", "skipped"]
    assert views[1].metrics.nodes_skipped == 2
    reused = [s.node_id for s in views[2].steps if s.reused]
    assert reused == ["prepare"] and views[2].metrics.nodes_reused == 1


async def _last_seqs(runs: Runs, run_ids: list[str]) -> list[int]:
    js = runs.js
    seqs = []
    for run_id in run_ids:
        msg = await js.get_last_msg(
            runs.streams.run_events, runs.subjects.run_events(runs.tenant, run_id)
        )
        seqs.append(int(msg.seq))
    return seqs
