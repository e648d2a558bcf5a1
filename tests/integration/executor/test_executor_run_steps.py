"""A run's steps list every node of its pinned version, in definition order (DESIGN section
7), as a real executor publishes them: ``pending`` while the run is active, ``skipped``
(each with its ``step.skipped``) or ``cancelled`` once it is over."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto.runs import RunEvent, RunStarted, StepSkipped
from flowmesh_shared.runview import run_view
from tests.helpers import until
from tests.integration.executor.runs import Runs, flat

pytestmark = pytest.mark.integration

#: Definition order is not run order: ``report`` (last to run) is listed first.
FAILS = {
    "name": "fails-midway",
    "nodes": [
        {"id": "report", "type": "noop"},
        {"id": "prepare", "type": "transform", "parameters": {"output": "{{ trigger.data }}"}},
        {"id": "bad", "type": "delay", "parameters": {"duration": "{{ trigger.data.d }}"}},
        {"id": "slow", "type": "delay", "parameters": {"duration": "PT5S"}},
        {"id": "after", "type": "noop"},
    ],
    "edges": [
        {"from": "prepare", "to": "bad"},
        {"from": "prepare", "to": "slow"},
        {"from": "bad", "to": "after"},
        {"from": "slow", "to": "after"},
        {"from": "after", "to": "report"},
    ],
}
ORDER = ["report", "prepare", "bad", "slow", "after"]

LONG = {
    "name": "long",
    "nodes": [
        {"id": "first", "type": "delay", "parameters": {"duration": "PT30S"}},
        {
            "id": "each",
            "type": "map",
            "parameters": {
                "items": "trigger.data.items",
                "node": {"type": "transform", "parameters": {"output": "{{ item }}"}},
            },
        },
        {"id": "last", "type": "noop"},
    ],
    "edges": [{"from": "first", "to": "each"}, {"from": "each", "to": "last"}],
}


def statuses(events: list[RunEvent]) -> list[tuple[str, str]]:
    return [(step.node_id, step.status) for step in run_view(events).steps]


def skipped(events: list[RunEvent]) -> list[str]:
    return [e.node_id for e in flat(events) if isinstance(e, StepSkipped)]


async def test_a_failed_run_lists_every_node_in_definition_order(runs: Runs) -> None:
    workflow = await runs.workflow(FAILS)
    run_id = await runs.start(workflow, {"d": "not a duration"})
    state = await runs.finished(run_id)
    assert state.status == "failed"
    events = await runs.events(run_id)
    started = next(e for e in events if isinstance(e, RunStarted))
    assert started.nodes == ORDER
    assert statuses(events) == [
        ("report", "skipped"),
        ("prepare", "succeeded"),
        ("bad", "failed"),
        ("slow", "cancelled"),
        ("after", "skipped"),
    ]
    assert sorted(skipped(events)) == ["after", "report"]
    kinds = [e.__struct_config__.tag for e in events]
    assert kinds[-2:] == ["steps", "run.failed"]  # the skips: one message, before the end
    metrics = run_view(events).metrics
    assert (metrics.nodes_skipped, metrics.nodes_failed, metrics.nodes_succeeded) == (2, 1, 1)


async def test_a_running_run_shows_pending_nodes_and_a_cancelled_one_skips_them(
    runs: Runs,
) -> None:
    workflow = await runs.workflow(LONG)
    run_id = await runs.start(workflow, {"items": [1, 2, 3]})
    await runs.step_running(run_id, "first")
    events = await runs.events(run_id)
    assert statuses(events) == [("first", "running"), ("each", "pending"), ("last", "pending")]
    view = run_view(events)
    assert view.status == "running" and view.metrics.nodes_skipped == 0
    await runs.cancel(run_id, "enough")
    state = await runs.finished(run_id)
    assert state.status == "cancelled"
    events = await runs.events(run_id)
    assert statuses(events) == [("first", "cancelled"), ("each", "skipped"), ("last", "skipped")]
    assert skipped(events) == ["each", "last"]
    assert run_view(events).metrics.nodes_skipped == 2


async def test_a_run_cancelled_before_it_started_lists_every_node_skipped(runs: Runs) -> None:
    workflow = await runs.workflow(LONG)
    run_id = await runs.start(workflow, {"items": []}, request=False)
    await runs.cancel(run_id, "never mind")  # kept in the run-control bucket
    await runs.request(workflow, run_id, {"items": []})
    await runs.finished(run_id)
    events = await runs.events(run_id)
    assert run_view(events).status == "cancelled"
    assert statuses(events) == [("first", "skipped"), ("each", "skipped"), ("last", "skipped")]
    assert all(step.attempts == 0 for step in run_view(events).steps)


async def test_a_map_node_is_one_step_and_a_retry_run_lists_its_reused_steps(runs: Runs) -> None:
    definition: dict[str, Any] = {
        "name": "map-then-fail",
        "nodes": [
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "trigger.data.items",
                    "node": {"type": "transform", "parameters": {"output": "{{ item * 2 }}"}},
                },
            },
            {"id": "bad", "type": "delay", "parameters": {"duration": "{{ trigger.data.d }}"}},
            {"id": "last", "type": "noop"},
        ],
        "edges": [{"from": "each", "to": "bad"}, {"from": "bad", "to": "last"}],
    }
    workflow = await runs.workflow(definition)
    data = {"items": [1, 2], "d": "nope"}
    parent = await runs.start(workflow, data)
    assert (await runs.finished(parent)).status == "failed"
    parent_events = await runs.events(parent)
    assert statuses(parent_events) == [
        ("each", "succeeded"),
        ("bad", "failed"),
        ("last", "skipped"),
    ]
    assert run_view(parent_events).steps[0].output == [2, 4]

    child = await runs.start(workflow, data, kind="retry", parent_run_id=parent, attempt=2)
    assert (await runs.finished(child)).status == "failed"
    view = run_view(await runs.events(child))
    assert [(s.node_id, s.status, s.reused) for s in view.steps] == [
        ("each", "succeeded", True),
        ("bad", "failed", False),
        ("last", "skipped", False),
    ]
    assert (view.metrics.nodes_reused, view.metrics.nodes_skipped) == (1, 1)


async def test_a_run_only_queued_has_no_steps_yet(runs: Runs) -> None:
    workflow = await runs.workflow(LONG)
    run_id = await runs.start(workflow, {"items": []}, request=False)
    events = await until(lambda: runs.events(run_id))
    view = run_view(events)
    assert view.status == "queued" and view.steps == []
