"""A run's steps list every node of its pinned version, in definition order (DESIGN
section 7): ``run.started`` names them, a node that has not run is ``pending`` while the run
is active, and ``skipped`` (a ``step.skipped`` for each, in one batch) or ``cancelled`` once
the run is over. Engine and fold together; the run resource reads the fold."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flowmesh_executor.actions import FinishRun, RunContext, SkipSteps
from flowmesh_executor.state import reused_outputs
from flowmesh_proto.runfold import fold
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunStarted,
    StepBatch,
    StepSkipped,
    StepStarted,
)
from flowmesh_shared.runview import RunFold, run_view
from tests.unit.engine_shell import T0, Run, definition, queued


def http(node_id: str, **extra: object) -> dict[str, object]:
    return {"id": node_id, "type": "http", "parameters": {"url": "https://x.example/"}, **extra}


def edge(source: str, target: str, when: str | None = None) -> dict[str, object]:
    return {"from": source, "to": target} | ({"when": when} if when is not None else {})


#: Listed so that definition order is not topological order: ``c`` comes first.
DIAMOND = definition(
    [http("c"), http("a"), http("b1"), http("b2")],
    [edge("a", "b1"), edge("a", "b2"), edge("b1", "c"), edge("b2", "c")],
)


def steps(run: Run) -> list[tuple[str, str]]:
    return [(step.node_id, step.status) for step in run_view(run.events).steps]


def skipped_events(events: list[RunEvent]) -> list[str]:
    flat = [e for ev in events for e in (ev.events if isinstance(ev, StepBatch) else [ev])]
    return [e.node_id for e in flat if isinstance(e, StepSkipped)]


def test_run_started_names_every_node_in_definition_order_and_they_show_pending() -> None:
    run = Run(DIAMOND)
    run.decide()
    started = run.events[1]
    assert isinstance(started, RunStarted) and started.nodes == ["c", "a", "b1", "b2"]
    assert steps(run) == [("c", "pending"), ("a", "running"), ("b1", "pending"), ("b2", "pending")]
    view = run_view(run.events)
    assert view.metrics.nodes_skipped == 0 and view.metrics.nodes_executed == 1
    assert all(s.attempts == 0 and s.started_at is None for s in view.steps if s.node_id != "a")


def test_a_failed_run_skips_the_nodes_that_never_ran_in_one_batch_before_its_end() -> None:
    run = Run(DIAMOND)
    run.decide()
    run.succeed("a")
    run.decide()  # b1 and b2 start
    run.fail("b1")
    published = len(run.events)
    actions = run.decide()
    end = actions[-1]
    assert isinstance(end, FinishRun) and end.error is not None and end.error.node_id == "b1"
    assert actions == [SkipSteps(node_ids=["c"]), end] and end.cancel == ["b2"]
    ending = run.events[published:]
    assert [e.__struct_config__.tag for e in ending] == ["step.skipped", "run.failed"]
    assert steps(run) == [
        ("c", "skipped"),
        ("a", "succeeded"),
        ("b1", "failed"),
        ("b2", "cancelled"),
    ]
    metrics = run_view(run.events).metrics
    assert (metrics.nodes_skipped, metrics.nodes_failed, metrics.nodes_succeeded) == (1, 1, 1)


def test_a_run_cancelled_before_its_first_step_lists_every_node_skipped() -> None:
    run = Run(DIAMOND, context=RunContext(cancel_requested=True, cancel_reason="no"))
    run.decide()
    kinds = [e.__struct_config__.tag for e in run.events]
    assert kinds == ["run.queued", "run.started", "steps", "run.cancelled"]
    assert skipped_events(run.events) == ["c", "a", "b1", "b2"]
    assert steps(run) == [(n, "skipped") for n in ("c", "a", "b1", "b2")]
    assert run_view(run.events).metrics.nodes_skipped == 4


def test_a_timed_out_run_skips_what_never_ran_and_cancels_what_ran() -> None:
    run = Run(definition([http("a"), http("b")], [edge("a", "b")], timeout="PT10S"))
    run.decide()
    run.advance(seconds=11)
    run.decide()
    assert run.state.status == "timed_out"
    assert steps(run) == [("a", "cancelled"), ("b", "skipped")]
    assert skipped_events(run.events) == ["b"]


def test_a_node_waiting_for_a_retry_when_the_run_ends_is_cancelled_not_skipped() -> None:
    retry = {"max_attempts": 3, "backoff": "fixed", "initial": "PT5S"}
    run = Run(definition([http("a", retry=retry), http("b")], [edge("a", "b")]))
    run.decide()
    run.fail("a")  # attempt 2 is due in 5 s
    run.context = RunContext(cancel_requested=True)
    run.decide()
    assert steps(run) == [("a", "cancelled"), ("b", "skipped")]
    assert skipped_events(run.events) == ["b"]


def test_a_succeeded_run_publishes_no_extra_skip_and_branches_not_taken_are_skipped() -> None:
    cond = {"id": "if", "type": "condition", "parameters": {"expression": "true"}}
    run = Run(
        definition(
            [cond, http("yes"), http("no")], [edge("if", "yes", "true"), edge("if", "no", "false")]
        )
    )
    run.decide()
    run.succeed("yes")
    run.decide()
    assert run.state.status == "succeeded"
    assert steps(run) == [("if", "succeeded"), ("yes", "succeeded"), ("no", "skipped")]
    assert skipped_events(run.events) == ["no"]  # once, when the branch was not taken


def test_a_retry_run_lists_reused_steps_in_definition_order() -> None:
    parent = Run(DIAMOND)
    parent.decide()
    parent.succeed("a", {"v": 1})
    parent.decide()
    parent.succeed("b2")
    parent.fail("b1")
    parent.decide()
    assert parent.state.status == "failed"
    child = Run(DIAMOND, context=RunContext(reused=reused_outputs(parent.state)))
    child.decide()
    view = run_view(child.events)
    assert [(s.node_id, s.status, s.reused) for s in view.steps] == [
        ("c", "pending", False),
        ("a", "succeeded", True),
        ("b1", "running", False),
        ("b2", "succeeded", True),
    ]
    assert (view.metrics.nodes_reused, view.metrics.nodes_executed) == (2, 1)


def test_a_map_node_is_one_step() -> None:
    node = {
        "id": "m",
        "type": "map",
        "parameters": {
            "items": "trigger.data.items",
            "node": {"type": "transform", "parameters": {"output": "{{ item }}"}},
        },
    }
    run = Run(definition([node, http("after")], [edge("m", "after")]), data={"items": [1, 2]})
    run.decide()
    assert steps(run) == [("m", "running"), ("after", "pending")]


def _ref() -> dict[str, Any]:
    q = queued()
    return {"tenant": q.tenant, "run_id": q.run_id, "workflow_id": q.workflow_id, "version": 1}


def test_an_older_run_started_without_nodes_lists_steps_as_they_are_seen() -> None:
    events: list[RunEvent] = [
        queued(),
        RunStarted(**_ref(), at=T0),
        StepStarted(**_ref(), at=T0, node_id="b"),
    ]
    assert [(s.node_id, s.status) for s in run_view(events).steps] == [("b", "running")]
    ended = [*events, RunCancelled(**_ref(), at=T0 + timedelta(seconds=1))]
    assert [(s.node_id, s.status) for s in run_view(ended).steps] == [("b", "cancelled")]


def test_a_run_ended_outside_the_engine_shows_never_run_nodes_skipped() -> None:
    """A limit (events, input size) ends a run with no ``step.skipped``: the fold still
    leaves no node pending, and a node it lists before ``run.started`` keeps its place."""
    at = T0 + timedelta(seconds=1)
    events: list[RunEvent] = [
        queued(),
        RunStarted(**_ref(), at=T0, nodes=["x", "y", "z"]),
        StepStarted(**_ref(), at=T0, node_id="y"),
        RunFailed(**_ref(), at=at, error=RunError(code="EVENT_LIMIT", message="m")),
    ]
    view = run_view(events)
    assert [(s.node_id, s.status) for s in view.steps] == [
        ("x", "skipped"),
        ("y", "cancelled"),
        ("z", "skipped"),
    ]
    assert all(s.finished_at == at for s in view.steps)
    assert view.metrics.nodes_skipped == 2


def test_a_fold_resumed_from_a_view_with_pending_nodes_goes_on_the_same() -> None:
    run = Run(DIAMOND)
    run.decide()
    cut = len(run.events)
    run.succeed("a")
    run.decide()
    run.fail("b2")
    run.decide()
    resumed = RunFold.resume(run_view(run.events[:cut]))
    for event in run.events[cut:]:
        resumed.apply(event)
    assert resumed.view() == run_view(run.events)
    assert fold(run.events).nodes.keys() == {"c", "a", "b1", "b2"}
