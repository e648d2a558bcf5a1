"""A run's state, folded from its events in stream order. Pure: no I/O, no clock.

Folding needs no definition: every event says what it changed (a ``step.started`` carries
its attempt's deadline, a ``step.retrying`` its delay), so replaying the same events always
rebuilds an equal state. A node that has no event yet is ``pending`` (absent from
``nodes``).
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
    StepBatch,
    StepEvent,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepStatus,
    StepSucceeded,
    TriggerInfo,
)

__all__ = ["NodeState", "RunRef", "RunState", "apply", "fold", "reused_outputs"]


class RunRef(msgspec.Struct, frozen=True, kw_only=True):
    """What every event of a run repeats."""

    tenant: str
    run_id: str
    workflow_id: str
    version: int


class NodeState(msgspec.Struct, kw_only=True):
    status: StepStatus = "pending"
    attempt: int = 0  # the latest attempt started (or completed instantly); 0: none yet
    output: Any = None
    error_class: str | None = None
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    deadline: datetime | None = None  # while running: when this attempt times out
    retry_at: datetime | None = None  # while pending after a failed attempt: when to retry
    reused: bool = False


class RunState(msgspec.Struct, kw_only=True):
    ref: RunRef | None = None
    status: RunStatus = "queued"
    trigger: TriggerInfo | None = None
    input: Any = None
    attempt: int = 1
    parent_run_id: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    nodes: dict[str, NodeState] = {}
    output: Any = None
    error: RunError | None = None

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
    """Apply one event to ``state`` in place (the shell keeps one state per run this way)."""
    if state.ref is None:
        state.ref = RunRef(
            tenant=event.tenant,
            run_id=event.run_id,
            workflow_id=event.workflow_id,
            version=event.version,
        )
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
            state.status = "queued" if isinstance(event, RunQueued) else "scheduled"
            state.trigger = event.trigger
            state.input = event.input
            if isinstance(event, RunQueued):
                state.attempt = event.attempt
                state.parent_run_id = event.parent_run_id
        case RunStarted(at=at):
            state.status = "running"
            state.started_at = at
        case RunSucceeded(at=at, output=output):
            _finish(state, "succeeded", at)
            state.output = output
        case RunFailed(at=at, error=error):
            _finish(state, "failed", at)
            state.error = error
        case RunCancelled(at=at):
            _finish(state, "cancelled", at)
        case RunTimedOut(at=at):
            _finish(state, "timed_out", at)


def _finish(state: RunState, status: RunStatus, at: datetime) -> None:
    state.status = status
    state.finished_at = at
    for node in state.nodes.values():
        if node.status == "running":
            node.status = "cancelled"
            node.finished_at = at
            node.deadline = None


def _apply_step(state: RunState, event: StepEvent) -> None:
    if isinstance(event, StepLog):
        return
    node = state.nodes.get(event.node_id)
    if node is None:
        node = state.nodes[event.node_id] = NodeState()
    match event:
        case StepStarted(at=at, attempt=attempt, deadline=deadline):
            node.status, node.attempt, node.started_at = "running", attempt, at
            node.deadline, node.retry_at, node.finished_at = deadline, None, None
        case StepSucceeded(at=at, attempt=attempt):
            node.status, node.attempt, node.output = "succeeded", attempt, event.output
            node.started_at = event.started_at or node.started_at or at
            node.finished_at, node.deadline, node.retry_at = at, None, None
            node.error_class = node.error = None
            node.reused = event.reused
        case StepFailed(at=at, attempt=attempt, final=final):
            node.status = "failed" if final else "pending"
            node.attempt, node.error_class, node.error = attempt, event.error_class, event.message
            node.finished_at, node.deadline = at, None
        case StepRetrying(at=at, delay_ms=delay_ms):
            node.status = "pending"
            node.retry_at = at + timedelta(milliseconds=delay_ms)
        case StepSkipped(at=at):
            node.status, node.finished_at = "skipped", at


def reused_outputs(parent: RunState) -> dict[str, Any]:
    """Retry-from-failed: the outputs of the parent run's succeeded steps, to run no again."""
    return {
        node_id: node.output for node_id, node in parent.nodes.items() if node.status == "succeeded"
    }
