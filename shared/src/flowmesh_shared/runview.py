"""The run resource (DESIGN section 7) built from a run's events. Pure: no I/O, no clock.

The events are folded by :mod:`flowmesh_proto.runfold`, the fold the executor's engine
decides from and ``flowmesh watch`` draws from (its docstring has the rules); this module
only says how the folded state reads as the resource. ``run_view(events)`` folds a whole
run; a :class:`RunFold` folds event by event and can resume from a view it produced
(``RunFold.resume(view)``), so a projection may store views and apply only the events that
came since: folding a prefix, resuming from its view and folding the rest gives the same
view as folding everything.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from flowmesh_proto import runfold
from flowmesh_proto.runfold import NodeState, RunRef, RunState
from flowmesh_proto.runs import ErrorInfo, Run, RunError, RunEvent, RunMetrics, RunStatus, RunStep

__all__ = ["RunFold", "run_view"]


class RunFold:
    """A run view built one event at a time."""

    def __init__(self, state: RunState | None = None) -> None:
        self.state = state or RunState()

    @property
    def status(self) -> RunStatus:
        return self.state.status

    @property
    def finished(self) -> bool:
        return self.state.finished

    @classmethod
    def resume(cls, run: Run) -> RunFold:
        """A fold in the state that produced ``run``, ready for the events after it."""
        return cls(
            RunState(
                ref=RunRef(
                    tenant=run.tenant_id,
                    run_id=run.id,
                    workflow_id=run.workflow_id,
                    version=run.version,
                ),
                created_at=run.created_at,
                status=run.status,
                trigger=run.trigger,
                input=run.input,
                attempt=run.attempt,
                parent_run_id=run.parent_run_id,
                started_at=run.started_at,
                finished_at=run.finished_at,
                nodes={step.node_id: _node_state(step) for step in run.steps},
                output=run.output,
                error=None
                if run.error is None
                else RunError(
                    code=run.error.code, message=run.error.message, node_id=run.error.node_id
                ),
                retries=run.metrics.retries,
                waiting=run.waiting,
            )
        )

    def apply(self, event: RunEvent) -> None:
        """Fold one event (in stream order) into the view."""
        runfold.apply(self.state, event)

    def view(self) -> Run:
        """The run resource as the events so far describe it."""
        state = self.state
        if state.ref is None or state.created_at is None:
            raise ValueError("a run view needs at least one event")
        ref, error = state.ref, state.error
        return Run(
            id=ref.run_id,
            tenant_id=ref.tenant,
            workflow_id=ref.workflow_id,
            version=ref.version,
            status=state.status,
            trigger=state.trigger,
            input=state.input,
            output=state.output,
            error=None
            if error is None
            else ErrorInfo(code=error.code, message=error.message, node_id=error.node_id),
            attempt=state.attempt,
            parent_run_id=state.parent_run_id,
            created_at=state.created_at,
            started_at=state.started_at,
            finished_at=state.finished_at,
            duration_ms=_duration_ms(state.started_at, state.finished_at),
            metrics=_metrics(state),
            steps=[_step_view(node_id, node) for node_id, node in state.nodes.items()],
            waiting=state.waiting,
        )


def run_view(events: Iterable[RunEvent]) -> Run:
    """The run resource of ``events`` (one run's, in stream order; at least one)."""
    fold = RunFold()
    for event in events:
        fold.apply(event)
    return fold.view()


def _metrics(state: RunState) -> RunMetrics:
    nodes = state.nodes.values()
    return RunMetrics(
        nodes_executed=sum(1 for n in nodes if n.attempt > 0 and not n.reused),
        nodes_succeeded=sum(1 for n in nodes if n.status == "succeeded" and not n.reused),
        nodes_failed=sum(1 for n in nodes if n.status == "failed"),
        nodes_skipped=sum(1 for n in nodes if n.status == "skipped"),
        nodes_reused=sum(1 for n in nodes if n.reused),
        retries=state.retries,
    )


def _node_state(step: RunStep) -> NodeState:
    error = step.error
    return NodeState(
        status=step.status,
        attempt=step.attempts,
        output=step.output,
        error_class=None if error is None else error.code,
        error=None if error is None else error.message,
        started_at=step.started_at,
        finished_at=step.finished_at,
        reused=step.reused,
    )


def _step_view(node_id: str, node: NodeState) -> RunStep:
    return RunStep(
        node_id=node_id,
        status=node.status,
        attempts=node.attempt,
        started_at=node.started_at,
        finished_at=node.finished_at,
        duration_ms=_duration_ms(node.started_at, node.finished_at),
        output=node.output,
        error=None
        if node.error_class is None
        else ErrorInfo(code=node.error_class, message=node.error or "", node_id=node_id),
        reused=node.reused,
    )


def _duration_ms(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds() * 1000, 3)
