"""Property tests: every reader of a run's events agrees with the engine.

Random valid DAGs are driven by the engine and a random simulated shell (the strategies of
``test_engine_properties``). After every decision and every move of the shell, the run
resource (``run_view``, and a ``RunFold`` resumed from a prefix's view) and ``flowmesh
watch``'s table (``Progress``, fed one event at a time) say what the engine's state says, and
what the engine decided shows: a started attempt is running, a finished run has the status
it was finished with, no step of a run that is over is still running or pending, its steps
are the definition's nodes in definition order, and each skipped one has its
``step.skipped``.
Some runs wait for a concurrency slot first (``run.waiting`` before the engine's first
decision): the run resource says so while it is queued, and not once it has started.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_cli.progress import Progress
from flowmesh_executor.actions import FinishRun, StartStep
from flowmesh_executor.state import RunState
from flowmesh_proto.runs import Run as RunResource
from flowmesh_proto.runs import (
    RunEvent,
    RunWaiting,
    StepBatch,
    StepRetrying,
    StepSkipped,
    Waiting,
)
from flowmesh_proto.workflow import Definition
from flowmesh_shared.runview import RunFold, run_view
from tests.unit.engine_shell import T0, Run
from tests.unit.test_engine_properties import MAX_DECISIONS, _shell_moves, workflows


@settings(max_examples=150, deadline=None)
@given(workflows(), st.data())
def test_the_run_resource_and_watch_agree_with_the_engine(
    defn: Definition, data: st.DataObject
) -> None:
    run = Run(defn, data={"flag": data.draw(st.booleans())})
    progress = Progress(run.state.ref.run_id if run.state.ref else "")
    waited = data.draw(st.integers(0, 2))  # run.waiting events before it starts
    for _ in range(waited):
        first = run.events[0]
        run.publish([RunWaiting(**_ref(first), at=run.now, reason="concurrency_key", since=T0)])
    if waited:
        _agree(run.state, run.events, progress)
        assert run_view(run.events).waiting == Waiting(reason="concurrency_key", since=T0)
    for _ in range(MAX_DECISIONS):
        actions = run.decide()
        _agree(run.state, run.events, progress)
        _decisions_show(run_view(run.events), actions)
        if run.state.finished:
            break
        _shell_moves(run, actions, data)
        _agree(run.state, run.events, progress)
    assert run.state.finished
    view = run_view(run.events)
    assert all(step.status not in ("running", "pending") for step in view.steps)
    assert [step.node_id for step in view.steps] == [node.id for node in defn.nodes]
    skipped = {e.node_id for e in _flat(run.events) if isinstance(e, StepSkipped)}
    assert skipped == {step.node_id for step in view.steps if step.status == "skipped"}
    assert view.metrics.nodes_skipped == len(skipped)
    cut = data.draw(st.integers(1, len(run.events)))
    resumed = RunFold.resume(run_view(run.events[:cut]))
    for event in run.events[cut:]:
        resumed.apply(event)
    assert resumed.view() == view


def _ref(event: RunEvent) -> dict[str, Any]:
    return {
        "tenant": event.tenant,
        "run_id": event.run_id,
        "workflow_id": event.workflow_id,
        "version": event.version,
    }


def _agree(state: RunState, events: list[RunEvent], progress: Progress) -> None:
    view = run_view(events)
    assert view.status == state.status
    assert view.waiting == state.waiting
    assert view.waiting is None or view.status == "queued"
    assert (view.started_at, view.finished_at) == (state.started_at, state.finished_at)
    assert view.metrics.retries == sum(1 for e in _flat(events) if isinstance(e, StepRetrying))
    steps = {step.node_id: step for step in view.steps}
    assert list(steps) == list(state.nodes)
    for node_id, node in state.nodes.items():
        step = steps[node_id]
        assert (step.status, step.attempts, step.output) == (node.status, node.attempt, node.output)
        assert step.error is None or step.error.code == node.error_class
        assert (step.error is None) == (node.error_class is None)
    for seq, event in enumerate(
        events[progress.last_seq or 0 :], start=(progress.last_seq or 0) + 1
    ):
        progress.apply(event, seq)
    _watch_agrees(progress, view)


def _watch_agrees(progress: Progress, view: RunResource) -> None:
    header = progress.run
    assert (header.status, header.started_at, header.finished_at) == (
        view.status,
        view.started_at,
        view.finished_at,
    )
    assert (header.error is None) == (view.error is None)
    assert progress.retries == view.metrics.retries
    rows = [(r.node_id, r.status, r.attempts, r.started_at, r.finished_at) for r in progress.steps]
    assert rows == [
        (s.node_id, s.status, s.attempts, s.started_at, s.finished_at) for s in view.steps
    ]


def _decisions_show(view: RunResource, actions: list[Any]) -> None:
    steps = {step.node_id: step for step in view.steps}
    for action in actions:
        match action:
            case StartStep(node_id=node_id, attempt=attempt):
                if view.status != "running":
                    continue
                step = steps[node_id]
                assert step.attempts == attempt
                assert step.status != "pending"
            case FinishRun(status=status, cancel=cancel):
                assert view.status == status
                assert all(steps[node_id].status == "cancelled" for node_id in cancel)


def _flat(events: list[RunEvent]) -> list[RunEvent]:
    flat: list[RunEvent] = []
    for event in events:
        flat.extend(event.events if isinstance(event, StepBatch) else [event])
    return flat
