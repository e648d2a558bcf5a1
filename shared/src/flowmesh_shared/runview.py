"""The run resource (DESIGN section 7) folded from a run's events. Pure: no I/O, no clock.

``run_view(events)`` folds a whole run; a :class:`RunFold` folds event by event and can
resume from a view it produced (``RunFold.resume(view)``), so a projection may store views
and apply only the events that came since: folding a prefix, resuming from its view and
folding the rest gives the same view as folding everything.

Rules, in event order:

- the first event names the run (tenant, id, workflow, version) and its ``created_at``;
  ``run.queued``/``run.scheduled`` give trigger, input, attempt and parent run;
- ``run.started`` (or, failing that, the first step event) starts it;
- a step's ``started_at`` is its first attempt's start; a failed attempt that will be
  retried leaves the step ``pending`` with that attempt's error; ``step.retrying`` counts a
  retry; a ``steps`` batch is its events in order; ``step.log`` changes nothing;
- the first terminal event ends the run: steps still running (or waiting to retry) become
  ``cancelled``; later events change nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import msgspec

from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    ErrorInfo,
    Run,
    RunCancelled,
    RunClaimed,
    RunEvent,
    RunFailed,
    RunMetrics,
    RunQueued,
    RunScheduled,
    RunStarted,
    RunStatus,
    RunStep,
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

__all__ = ["CANCELLED", "TIMED_OUT", "RunFold", "run_view"]

#: Error codes of a run that did not fail but was stopped.
CANCELLED = "CANCELLED"
TIMED_OUT = "TIMED_OUT"


class _Step(msgspec.Struct, kw_only=True):
    status: StepStatus = "pending"
    attempts: int = 0
    started_at: datetime | None = None
    finished_at: datetime | None = None
    output: Any = None
    error: ErrorInfo | None = None
    reused: bool = False


class _Identity(msgspec.Struct, frozen=True, kw_only=True):
    run_id: str
    tenant: str
    workflow_id: str
    version: int
    created_at: datetime


class RunFold:
    """A run view built one event at a time."""

    def __init__(self) -> None:
        self._identity: _Identity | None = None
        self.status: RunStatus = "queued"
        self._trigger: TriggerInfo | None = None
        self._input: Any = None
        self._output: Any = None
        self._error: ErrorInfo | None = None
        self._attempt = 1
        self._parent_run_id: str | None = None
        self._started_at: datetime | None = None
        self._finished_at: datetime | None = None
        self._retries = 0
        self._steps: dict[str, _Step] = {}  # first-seen order

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES

    @classmethod
    def resume(cls, run: Run) -> RunFold:
        """A fold in the state that produced ``run``, ready for the events after it."""
        fold = cls()
        fold._identity = _Identity(
            run_id=run.id,
            tenant=run.tenant_id,
            workflow_id=run.workflow_id,
            version=run.version,
            created_at=run.created_at,
        )
        fold.status, fold._trigger, fold._input = run.status, run.trigger, run.input
        fold._output, fold._error = run.output, run.error
        fold._attempt, fold._parent_run_id = run.attempt, run.parent_run_id
        fold._started_at, fold._finished_at = run.started_at, run.finished_at
        fold._retries = run.metrics.retries
        fold._steps = {
            step.node_id: _Step(
                status=step.status,
                attempts=step.attempts,
                started_at=step.started_at,
                finished_at=step.finished_at,
                output=step.output,
                error=step.error,
                reused=step.reused,
            )
            for step in run.steps
        }
        return fold

    def apply(self, event: RunEvent) -> None:
        """Fold one event (in stream order) into the view."""
        if self._identity is None:
            self._identity = _Identity(
                run_id=event.run_id,
                tenant=event.tenant,
                workflow_id=event.workflow_id,
                version=event.version,
                created_at=event.at,
            )
        if self.finished:
            return
        match event:
            case StepBatch(events=events):
                for step_event in events:
                    self._apply_step(step_event)
            case StepLog() | RunClaimed():
                pass
            case StepStarted() | StepSucceeded() | StepFailed() | StepRetrying() | StepSkipped():
                self._apply_step(event)
            case _:
                self._apply_run(event)

    def view(self) -> Run:
        """The run resource as the events so far describe it."""
        if self._identity is None:
            raise ValueError("a run view needs at least one event")
        ident = self._identity
        return Run(
            id=ident.run_id,
            tenant_id=ident.tenant,
            workflow_id=ident.workflow_id,
            version=ident.version,
            status=self.status,
            trigger=self._trigger,
            input=self._input,
            output=self._output,
            error=self._error,
            attempt=self._attempt,
            parent_run_id=self._parent_run_id,
            created_at=ident.created_at,
            started_at=self._started_at,
            finished_at=self._finished_at,
            duration_ms=_duration_ms(self._started_at, self._finished_at),
            metrics=self._metrics(),
            steps=[_step_view(node_id, step) for node_id, step in self._steps.items()],
        )

    # --- run events ---

    def _apply_run(self, event: RunEvent) -> None:
        match event:
            case RunQueued() | RunScheduled():
                if self.status in ("queued", "scheduled"):
                    self.status = "queued" if isinstance(event, RunQueued) else "scheduled"
                self._trigger, self._input = event.trigger, event.input
                if isinstance(event, RunQueued):
                    self._attempt, self._parent_run_id = event.attempt, event.parent_run_id
            case RunStarted(at=at):
                self._start(at)
            case RunSucceeded(at=at, output=output):
                self._finish("succeeded", at)
                self._output = output
            case RunFailed(at=at, error=error):
                self._finish("failed", at)
                self._error = ErrorInfo(
                    code=error.code, message=error.message, node_id=error.node_id
                )
            case RunCancelled(at=at, reason=reason):
                self._finish("cancelled", at)
                self._error = ErrorInfo(code=CANCELLED, message=reason or "the run was cancelled")
            case RunTimedOut(at=at):
                self._finish("timed_out", at)
                self._error = ErrorInfo(
                    code=TIMED_OUT, message="the run did not finish within its timeout"
                )

    def _start(self, at: datetime) -> None:
        if self.status in ("queued", "scheduled"):
            self.status = "running"
        if self._started_at is None:
            self._started_at = at

    def _finish(self, status: RunStatus, at: datetime) -> None:
        self.status, self._finished_at = status, at
        for step in self._steps.values():
            if step.status == "running" or (step.status == "pending" and step.attempts):
                step.status, step.finished_at = "cancelled", at

    # --- step events ---

    def _apply_step(self, event: StepEvent) -> None:
        if isinstance(event, StepLog):
            return
        self._start(event.at)
        step = self._steps.get(event.node_id)
        if step is None:
            step = self._steps[event.node_id] = _Step()
        match event:
            case StepStarted(at=at, attempt=attempt):
                step.status, step.attempts = "running", max(step.attempts, attempt)
                step.started_at = step.started_at or at
                step.finished_at = None
            case StepSucceeded(at=at, attempt=attempt):
                if not event.reused:
                    step.attempts = max(step.attempts, attempt)
                step.status, step.output, step.error = "succeeded", event.output, None
                step.started_at = step.started_at or event.started_at or at
                step.finished_at, step.reused = at, event.reused
            case StepFailed(at=at, attempt=attempt):
                step.attempts = max(step.attempts, attempt)
                step.error = ErrorInfo(
                    code=event.error_class, message=event.message, node_id=event.node_id
                )
                step.started_at = step.started_at or at
                step.status = "failed" if event.final else "pending"
                step.finished_at = at if event.final else None
            case StepRetrying():
                step.status = "pending"
                self._retries += 1
            case StepSkipped(at=at):
                step.status, step.finished_at = "skipped", at

    def _metrics(self) -> RunMetrics:
        steps = self._steps.values()
        return RunMetrics(
            nodes_executed=sum(1 for s in steps if s.attempts > 0 and not s.reused),
            nodes_succeeded=sum(1 for s in steps if s.status == "succeeded" and not s.reused),
            nodes_failed=sum(1 for s in steps if s.status == "failed"),
            nodes_skipped=sum(1 for s in steps if s.status == "skipped"),
            nodes_reused=sum(1 for s in steps if s.reused),
            retries=self._retries,
        )


def run_view(events: Iterable[RunEvent]) -> Run:
    """The run resource of ``events`` (one run's, in stream order; at least one)."""
    fold = RunFold()
    for event in events:
        fold.apply(event)
    return fold.view()


def _step_view(node_id: str, step: _Step) -> RunStep:
    return RunStep(
        node_id=node_id,
        status=step.status,
        attempts=step.attempts,
        started_at=step.started_at,
        finished_at=step.finished_at,
        duration_ms=_duration_ms(step.started_at, step.finished_at),
        output=step.output,
        error=step.error,
        reused=step.reused,
    )


def _duration_ms(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return round((finished - started).total_seconds() * 1000, 3)
