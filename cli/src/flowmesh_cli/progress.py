"""A run's progress as ``watch`` shows it, folded from its events. Pure: no I/O, no clock.

The events are folded by :mod:`flowmesh_proto.runfold`, the fold behind ``GET /runs/{id}``
and the executor's decisions (its docstring has the rules), so the table agrees with both.
``Progress.apply(event, seq)`` folds one event and returns what it changed: the run's
header and the step rows that differ from before, so a line-per-change display prints
exactly those. An event whose stream sequence is not after the last one folded changes
nothing (a reconnect that replays what was seen is not counted twice).

Time is an argument: ``clock`` is the latest event time seen, which line displays use as
"now" so their output depends on the events alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from flowmesh_proto import runfold
from flowmesh_proto.runfold import NodeState, RunState
from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    RunError,
    RunEvent,
    RunStatus,
    StepBatch,
    StepStatus,
)

__all__ = ["Change", "Progress", "RunHeader", "StepRow", "elapsed"]


class StepRow(msgspec.Struct, frozen=True, kw_only=True):
    """One step of the table."""

    node_id: str
    status: StepStatus = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    error: str | None = None  # "<error class>: <message>" of the latest failed attempt
    retry_at: datetime | None = None  # when the next attempt is due (a retry is waiting)
    reused: bool = False  # a retry run took the parent run's output

    @property
    def retrying(self) -> bool:
        """A failed attempt will be followed by another."""
        return self.status == "pending" and self.attempts > 0

    def duration(self, now: datetime) -> timedelta | None:
        """From the first attempt's start to the end (or ``now`` while it goes on)."""
        return elapsed(self.started_at, self.finished_at, now)


class RunHeader(msgspec.Struct, frozen=True, kw_only=True):
    """The run itself: the header line."""

    run_id: str
    workflow_id: str = ""
    version: int = 0
    status: RunStatus = "queued"
    queued_at: datetime | None = None  # its first event
    started_at: datetime | None = None
    finished_at: datetime | None = None
    run_at: datetime | None = None  # a scheduled run's start time
    error: str | None = None  # "<code>: <message>" of a run that did not succeed

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    def elapsed(self, now: datetime) -> timedelta | None:
        """Since it started (since it was queued, before that), until it ended or ``now``."""
        return elapsed(self.started_at or self.queued_at, self.finished_at, now)


Change = RunHeader | StepRow


def elapsed(start: datetime | None, end: datetime | None, now: datetime) -> timedelta | None:
    """``end - start`` (``now - start`` without an end), never negative; None without a start."""
    if start is None:
        return None
    return max(timedelta(0), (end or now) - start)


class Progress:
    """One run's header and steps (the run resource's: every node in definition order once
    the run has started), one event at a time."""

    def __init__(self, run_id: str) -> None:
        self.run = RunHeader(run_id=run_id)
        self.last_seq: int | None = None
        self.clock: datetime | None = None
        self._state = RunState()
        self._steps: dict[str, StepRow] = {}

    @property
    def steps(self) -> list[StepRow]:
        return list(self._steps.values())

    @property
    def retries(self) -> int:
        return self._state.retries

    @property
    def finished(self) -> bool:
        return self.run.finished

    def apply(self, event: RunEvent, seq: int | None = None) -> list[Change]:
        """Fold ``event`` (stream sequence ``seq``, when known); what changed, in order."""
        if seq is not None:
            if self.last_seq is not None and seq <= self.last_seq:
                return []
            self.last_seq = seq
        if self.finished:
            return []
        self.clock = max(self.clock, event.at) if self.clock else event.at
        if isinstance(event, StepBatch):
            for step_event in event.events:
                self.clock = max(self.clock, step_event.at)
        runfold.apply(self._state, event)
        changes: list[Change] = []
        header = _header(self.run.run_id, self._state)
        if header != self.run:
            self.run = header
            changes.append(header)
        for node_id, node in self._state.nodes.items():
            row = _row(node_id, node)
            if self._steps.get(node_id) != row:
                self._steps[node_id] = row
                changes.append(row)
        return changes


def _header(run_id: str, state: RunState) -> RunHeader:
    ref = state.ref
    return RunHeader(
        run_id=run_id,
        workflow_id="" if ref is None else ref.workflow_id,
        version=0 if ref is None else ref.version,
        status=state.status,
        queued_at=state.created_at,
        started_at=state.started_at,
        finished_at=state.finished_at,
        run_at=state.run_at,
        error=None if state.error is None else _error_line(state.error),
    )


def _error_line(error: RunError) -> str:
    where = f" (step {error.node_id})" if error.node_id else ""
    return f"{error.code}: {error.message}{where}"


def _row(node_id: str, node: NodeState) -> StepRow:
    return StepRow(
        node_id=node_id,
        status=node.status,
        attempts=node.attempt,
        started_at=node.started_at,
        finished_at=node.finished_at,
        error=None if node.error_class is None else f"{node.error_class}: {node.error}",
        retry_at=node.retry_at,
        reused=node.reused,
    )
