"""A run's progress as ``watch`` shows it, folded from its events. Pure: no I/O, no clock.

``Progress.apply(event, seq)`` folds one event (a ``steps`` batch is its events in order)
and returns what it changed: the run's header and the step rows that differ from before,
so a line-per-change display prints exactly those. Rules (those of the run resource,
DESIGN section 7, so the table agrees with ``GET /runs/{id}``):

- an event whose stream sequence is not after the last one folded changes nothing (a
  reconnect that replays what was seen is not counted twice);
- the run is ``running`` from ``run.started`` or its first step event, and ends at its
  first terminal event; steps still running or waiting for a retry then become
  ``cancelled``; later events change nothing;
- a step's ``started_at`` is its first attempt's start, so its duration spans every
  attempt; ``attempts`` is the latest attempt's number; a failed attempt that will be
  retried leaves the step ``pending`` with that attempt's error until the next starts;
  ``step.retrying`` says when (``retry_at``); a success clears the error;
- ``step.log`` changes nothing.

Time is an argument: ``clock`` is the latest event time seen, which line displays use as
"now" so their output depends on the events alone.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import msgspec

from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    RunCancelled,
    RunClaimed,
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
    """One run's header and steps (in first-seen order), one event at a time."""

    def __init__(self, run_id: str) -> None:
        self.run = RunHeader(run_id=run_id)
        self.last_seq: int | None = None
        self.clock: datetime | None = None
        self.retries = 0
        self._steps: dict[str, StepRow] = {}

    @property
    def steps(self) -> list[StepRow]:
        return list(self._steps.values())

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
        before_run, before_steps = self.run, dict(self._steps)
        self.clock = max(self.clock, event.at) if self.clock else event.at
        if not self.run.workflow_id:
            self.run = msgspec.structs.replace(
                self.run,
                workflow_id=event.workflow_id,
                version=event.version,
                queued_at=event.at,
            )
        match event:
            case StepBatch(events=events):
                for step_event in events:
                    self.clock = max(self.clock, step_event.at)
                    self._step(step_event)
            case StepStarted() | StepSucceeded() | StepFailed() | StepRetrying() | StepSkipped():
                self._step(event)
            case StepLog() | RunClaimed():
                pass
            case _:
                self._run(event)
        changes: list[Change] = [self.run] if self.run != before_run else []
        changes.extend(row for key, row in self._steps.items() if before_steps.get(key) != row)
        return changes

    # --- run events ---

    def _run(self, event: RunEvent) -> None:
        match event:
            case RunQueued():
                self._set_run(status="queued")
            case RunScheduled(run_at=run_at):
                self._set_run(status="scheduled", run_at=run_at)
            case RunStarted(at=at):
                self._start(at)
            case RunSucceeded(at=at):
                self._finish("succeeded", at, None)
            case RunFailed(at=at, error=error):
                where = f" (step {error.node_id})" if error.node_id else ""
                self._finish("failed", at, f"{error.code}: {error.message}{where}")
            case RunCancelled(at=at, reason=reason):
                self._finish("cancelled", at, f"CANCELLED: {reason or 'the run was cancelled'}")
            case RunTimedOut(at=at):
                self._finish("timed_out", at, "TIMED_OUT: the run did not finish in time")

    def _set_run(self, **changes: object) -> None:
        if self.run.status in ("queued", "scheduled"):
            self.run = msgspec.structs.replace(self.run, **changes)

    def _start(self, at: datetime) -> None:
        if self.run.status in ("queued", "scheduled"):
            self.run = msgspec.structs.replace(self.run, status="running")
        if self.run.started_at is None:
            self.run = msgspec.structs.replace(self.run, started_at=at)

    def _finish(self, status: RunStatus, at: datetime, error: str | None) -> None:
        self.run = msgspec.structs.replace(self.run, status=status, finished_at=at, error=error)
        for node_id, row in self._steps.items():
            if row.status == "running" or row.retrying:
                self._steps[node_id] = msgspec.structs.replace(
                    row, status="cancelled", finished_at=at, retry_at=None
                )

    # --- step events ---

    def _step(self, event: StepEvent) -> None:
        if isinstance(event, StepLog):
            return
        self._start(event.at)
        row = self._steps.get(event.node_id) or StepRow(node_id=event.node_id)
        self._steps[event.node_id] = _fold_step(row, event)
        if isinstance(event, StepRetrying):
            self.retries += 1


def _fold_step(row: StepRow, event: StepEvent) -> StepRow:
    replace = msgspec.structs.replace
    match event:
        case StepStarted(at=at, attempt=attempt):
            return replace(
                row,
                status="running",
                attempts=max(row.attempts, attempt),
                started_at=row.started_at or at,
                finished_at=None,
                retry_at=None,
            )
        case StepSucceeded(at=at, attempt=attempt, reused=reused):
            return replace(
                row,
                status="succeeded",
                attempts=row.attempts if reused else max(row.attempts, attempt),
                started_at=row.started_at or event.started_at or at,
                finished_at=at,
                error=None,
                retry_at=None,
                reused=reused,
            )
        case StepFailed(at=at, attempt=attempt, final=final):
            return replace(
                row,
                status="failed" if final else "pending",
                attempts=max(row.attempts, attempt),
                started_at=row.started_at or at,
                finished_at=at if final else None,
                error=f"{event.error_class}: {event.message}",
                retry_at=None,
            )
        case StepRetrying(at=at, delay_ms=delay_ms):
            return replace(row, status="pending", retry_at=at + timedelta(milliseconds=delay_ms))
        case StepSkipped(at=at):
            return replace(row, status="skipped", finished_at=at, retry_at=None)
    return row
