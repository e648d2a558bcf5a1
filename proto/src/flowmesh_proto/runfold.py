"""A run's state folded from its events in stream order: the one fold every reader uses.

The executor's engine decides from it, the registry's projection and the gateway build the
run resource (DESIGN section 7) from it, and ``flowmesh watch`` draws its table from it, so
all three agree. Pure: no I/O, no clock. Folding needs no definition: every event says what
it changed (a ``step.started`` carries its attempt's deadline, a ``step.retrying`` its
delay), so replaying the same events always rebuilds an equal state. ``run.started`` names
the pinned version's nodes in definition order: each is in ``nodes`` from then on,
``pending`` until its first event. A node no event has named yet (a run started by an
executor that sent no node list) is ``pending`` and absent from ``nodes``.

Rules, in event order:

- the first event names the run (tenant, id, workflow, version) and its ``created_at``;
  ``run.queued``/``run.scheduled`` give trigger, input, attempt, parent run and ``run_at``;
- a ``run.waiting`` of a run that has not started says why it waits (``waiting``); its
  status stays as it was (``queued``); the event that starts or ends the run clears it;
- ``run.started`` (or, failing that, the first step event) starts it; ``started_at`` is the
  first start; its ``nodes`` put every node of the version in ``nodes``, in their order;
- a step's ``started_at`` is its first attempt's start (``attempt_started_at`` the latest
  one's); ``attempt`` is the highest attempt run (a reused output runs none); a failed
  attempt that will be retried leaves the step ``pending`` with that attempt's error;
  ``step.retrying`` says when the next is due (``retry_at``) and counts a retry; a success
  clears the error; a ``steps`` batch is its events in order; ``step.log`` and
  ``run.claimed`` change nothing;
- the first terminal event ends the run. Every step it lists that is still running or
  pending (waiting for a retry) becomes ``cancelled``: a run that is over has no step in
  flight; one that never started becomes ``skipped`` (the executor publishes a
  ``step.skipped`` for each before the end; a run ended outside its engine, by a limit,
  may not). Later events change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import msgspec

from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    RunCancelled,
    RunClaimed,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunScheduled,
    RunStarted,
    RunStatus,
    RunSucceeded,
    RunTimedOut,
    RunWaiting,
    StepBatch,
    StepEvent,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepStatus,
    StepSucceeded,
    TerminalRunStatus,
    TriggerInfo,
    Waiting,
)

__all__ = ["CANCELLED", "TIMED_OUT", "NodeState", "RunRef", "RunState", "apply", "fold"]

#: Error codes of a run that did not fail but was stopped.
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    """What every event of a run repeats."""

    tenant: str
    run_id: str
    workflow_id: str
    version: int


class NodeState(msgspec.Struct, kw_only=True):
    status: StepStatus = "pending"
    attempt: int = 0  # the highest attempt started or completed; 0: none yet
    output: Any = None
    error_class: str | None = None  # of the latest failed attempt, cleared by a success
    error: str | None = None
    started_at: datetime | None = None  # the first attempt's start
    attempt_started_at: datetime | None = None  # the latest attempt's start
    finished_at: datetime | None = None
    deadline: datetime | None = None  # while running: when this attempt times out
    retry_at: datetime | None = None  # while pending after a failed attempt: when to retry
    reused: bool = False  # a retry run took the parent run's output instead of running it

    @property
    def unstarted(self) -> bool:
        """No attempt has started, nor has the node been settled (it may still run)."""
        return self.status == "pending" and self.attempt == 0

    @property
    def retrying(self) -> bool:
        """A failed attempt will be followed by another (the node waits for it)."""
        return self.status == "pending" and self.attempt > 0


class RunState(msgspec.Struct, kw_only=True):
    ref: RunRef | None = None
    created_at: datetime | None = None  # the run's first event
    status: RunStatus = "queued"
    trigger: TriggerInfo | None = None
    input: Any = None
    attempt: int = 1
    parent_run_id: str | None = None
    run_at: datetime | None = None  # a scheduled run's start time
    started_at: datetime | None = None
    finished_at: datetime | None = None
    nodes: dict[str, NodeState] = {}  # definition order (run.started), then first-seen
    output: Any = None
    error: RunError | None = None  # why a run that did not succeed ended
    retries: int = 0  # attempts scheduled again after a failure
    waiting: Waiting | None = None  # why a run that has not started waits (run.waiting)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    def node(self, node_id: str) -> NodeState:
        """The node's state (a fresh pending one, not stored, when it has no event yet)."""
        return self.nodes.get(node_id) or NodeState()

    def clone(self) -> RunState:
        """A copy whose nodes can be changed without touching this state."""
        nodes = {key: msgspec.structs.replace(value) for key, value in self.nodes.items()}
        return msgspec.structs.replace(self, nodes=nodes)


def fold(events: Iterable[RunEvent], state: RunState | None = None) -> RunState:
    """A new state: ``state`` (or an empty one) with ``events`` applied in order."""
    folded = RunState() if state is None else state.clone()
    for event in events:
        apply(folded, event)
    return folded


def apply(state: RunState, event: RunEvent) -> None:
    """Apply one event to ``state`` in place (a reader may keep one state per run so)."""
    if state.ref is None:
        state.ref = RunRef(
            tenant=event.tenant,
            run_id=event.run_id,
            workflow_id=event.workflow_id,
            version=event.version,
        )
        state.created_at = event.at
    if state.finished:
        return
    match event:
        case StepBatch(events=events):
            for step_event in events:
                _apply_step(state, step_event)
        case StepStarted() | StepSucceeded() | StepFailed() | StepRetrying() | StepSkipped():
            _apply_step(state, event)
        case StepLog() | RunClaimed():
            pass
        case _:
            _apply_run(state, event)


def _apply_run(state: RunState, event: RunEvent) -> None:
    match event:
        case RunQueued() | RunScheduled():
            if state.status in ("queued", "scheduled"):
                state.status = "queued" if isinstance(event, RunQueued) else "scheduled"
            state.trigger, state.input = event.trigger, event.input
            if isinstance(event, RunQueued):
                state.attempt, state.parent_run_id = event.attempt, event.parent_run_id
            else:
                state.run_at = event.run_at
        case RunWaiting(reason=reason, since=since):
            if state.status in ("queued", "scheduled"):
                state.waiting = Waiting(reason=reason, since=since)
        case RunStarted(at=at, nodes=nodes):
            _start(state, at)
            if nodes:
                _list_nodes(state, nodes)
        case RunSucceeded(at=at, output=output):
            _finish(state, "succeeded", at)
            state.output = output
        case RunFailed(at=at, error=error):
            _finish(state, "failed", at)
            state.error = error
        case RunCancelled(at=at, reason=reason):
            _finish(state, "cancelled", at)
            state.error = RunError(code=CANCELLED, message=reason or "the run was cancelled")
        case RunTimedOut(at=at):
            _finish(state, "timed_out", at)
            state.error = RunError(
                code=TIMED_OUT, message="the run did not finish within its timeout"
            )


def _start(state: RunState, at: datetime) -> None:
    state.waiting = None
    if state.status in ("queued", "scheduled"):
        state.status = "running"
    if state.started_at is None:
        state.started_at = at


def _list_nodes(state: RunState, node_ids: list[str]) -> None:
    """Every node of the version in ``nodes``, in definition order (a node seen before
    keeps its state; one the list does not name stays, after them)."""
    listed = {node_id: state.nodes.get(node_id) or NodeState() for node_id in node_ids}
    state.nodes = listed | {k: v for k, v in state.nodes.items() if k not in listed}


def _finish(state: RunState, status: TerminalRunStatus, at: datetime) -> None:
    state.status, state.finished_at, state.waiting = status, at, None
    for node in state.nodes.values():
        if node.status in ("running", "pending"):
            node.status = "skipped" if node.unstarted else "cancelled"
            node.finished_at, node.deadline, node.retry_at = at, None, None


def _apply_step(state: RunState, event: StepEvent) -> None:
    if isinstance(event, StepLog):
        return
    _start(state, event.at)
    node = state.nodes.get(event.node_id)
    if node is None:
        node = state.nodes[event.node_id] = NodeState()
    match event:
        case StepStarted(at=at, attempt=attempt, deadline=deadline):
            node.status, node.attempt = "running", max(node.attempt, attempt)
            node.started_at = node.started_at or at
            node.attempt_started_at, node.deadline = at, deadline
            node.retry_at = node.finished_at = None
        case StepSucceeded(at=at, attempt=attempt, reused=reused):
            if not reused:
                node.attempt = max(node.attempt, attempt)
            node.status, node.output, node.reused = "succeeded", event.output, reused
            node.started_at = node.started_at or event.started_at or at
            node.attempt_started_at = event.started_at or node.attempt_started_at or at
            node.finished_at, node.deadline, node.retry_at = at, None, None
            node.error_class = node.error = None
        case StepFailed(at=at, attempt=attempt, final=final):
            node.status = "failed" if final else "pending"
            node.attempt = max(node.attempt, attempt)
            node.error_class, node.error = event.error_class, event.message
            node.started_at = node.started_at or at
            node.finished_at = at if final else None
            node.deadline = node.retry_at = None
        case StepRetrying(at=at, delay_ms=delay_ms):
            node.status = "pending"
            node.retry_at = at + timedelta(milliseconds=delay_ms)
            state.retries += 1
        case StepSkipped(at=at):
            node.status, node.finished_at = "skipped", at
            node.deadline = node.retry_at = None
