"""Run requests (``<prefix>.<t>.requests.runs``) and run events (``<prefix>.<t>.runs.<run_id>``).

Every message carries ``tenant``; run and step messages carry ``run_id`` (UUIDv7),
``workflow_id`` and ``version``. Events are a tagged union on ``kind``; each event's
JetStream stream sequence is its public id.
"""

from __future__ import annotations

from datetime import datetime
from types import MappingProxyType
from typing import Any, Literal, get_args

import msgspec

TriggerKind = Literal["api", "cron", "event", "webhook", "retry", "workflow", "delay"]
RunStatus = Literal[
    "queued", "scheduled", "running", "succeeded", "failed", "cancelled", "timed_out"
]
StepStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
#: The statuses a run ends in: once in one, nothing changes it any more.
TerminalRunStatus = Literal["succeeded", "failed", "cancelled", "timed_out"]
TERMINAL_RUN_STATUSES: frozenset[TerminalRunStatus] = frozenset(get_args(TerminalRunStatus))


class TriggerInfo(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    kind: TriggerKind
    trigger_id: str | None = None
    data: Any = None
    headers: dict[str, str] = {}
    event: Any = None


class RunRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    tenant: str
    run_id: str
    workflow_id: str
    version: int
    trigger: TriggerInfo
    input: Any = None
    idempotency_key: str | None = None
    parent_run_id: str | None = None
    attempt: int = 1
    requested_at: datetime | None = None
    run_at: datetime | None = None


class RunError(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    code: str
    message: str
    node_id: str | None = None


class _RunEvent(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind", omit_defaults=True):
    tenant: str
    run_id: str
    workflow_id: str
    version: int
    at: datetime


class RunQueued(_RunEvent, frozen=True, kw_only=True, tag="run.queued"):
    trigger: TriggerInfo
    input: Any = None
    attempt: int = 1
    parent_run_id: str | None = None


class RunScheduled(_RunEvent, frozen=True, kw_only=True, tag="run.scheduled"):
    trigger: TriggerInfo
    run_at: datetime
    input: Any = None


class RunStarted(_RunEvent, frozen=True, kw_only=True, tag="run.started"):
    """An executor started the run. ``nodes``: the node ids of the run's pinned version, in
    definition order; from here on the run's steps list each of them (``pending`` until it
    runs). Empty in runs started before the field existed: their steps appear as they start."""

    executor: str = ""
    nodes: list[str] = []


class RunClaimed(_RunEvent, frozen=True, kw_only=True, tag="run.claimed"):
    """An executor took over a run that had started elsewhere or earlier (a lapsed lease, a
    parked run woken): its first write, fenced on the last event it read, so a previous
    holder that still believes it owns the run is refused its next write. Changes nothing
    in the run's state."""

    executor: str
    #: How many times the run's request had been delivered (JetStream's count), this one
    #: included.
    delivery: int = 1


WaitingReason = Literal["tenant_max_running", "concurrency_key", "capacity"]


class Waiting(msgspec.Struct, frozen=True, kw_only=True):
    """Why a queued run has not started (DESIGN section 13), and since when:

    - ``tenant_max_running``: the tenant holds as many runs as its ``max_running``;
    - ``concurrency_key``: an executor took the run, and its workflow's concurrency limit
      for the run's key is reached (the run waits for a slot);
    - ``capacity``: the executors are busy with other runs (or about to take this one).
    """

    reason: WaitingReason
    since: datetime


class RunWaiting(_RunEvent, frozen=True, kw_only=True, tag="run.waiting"):
    """An executor took a queued run that must wait before it starts (``concurrency_key``:
    for a slot of its workflow's concurrency key), since ``since``. The run stays queued;
    the event that starts or ends it ends the wait."""

    reason: WaitingReason
    since: datetime


class StepStarted(_RunEvent, frozen=True, kw_only=True, tag="step.started"):
    node_id: str
    attempt: int = 1
    deadline: datetime | None = None  # when this attempt times out (the node's ``timeout``)


class StepSucceeded(_RunEvent, frozen=True, kw_only=True, tag="step.succeeded"):
    node_id: str
    attempt: int = 1
    started_at: datetime | None = None
    output: Any = None
    reused: bool = False  # retry-from-failed: the output of the parent run's step, not run again


class StepFailed(_RunEvent, frozen=True, kw_only=True, tag="step.failed"):
    node_id: str
    attempt: int
    error_class: str
    message: str
    final: bool = True


class StepRetrying(_RunEvent, frozen=True, kw_only=True, tag="step.retrying"):
    node_id: str
    attempt: int  # the attempt that will run next, ``delay_ms`` after ``at``
    delay_ms: int


class StepSkipped(_RunEvent, frozen=True, kw_only=True, tag="step.skipped"):
    node_id: str


class StepLog(_RunEvent, frozen=True, kw_only=True, tag="step.log"):
    node_id: str
    message: str
    level: str = "info"


class RunSucceeded(_RunEvent, frozen=True, kw_only=True, tag="run.succeeded"):
    output: Any = None


class RunFailed(_RunEvent, frozen=True, kw_only=True, tag="run.failed"):
    error: RunError


class RunCancelled(_RunEvent, frozen=True, kw_only=True, tag="run.cancelled"):
    reason: str = ""


class RunTimedOut(_RunEvent, frozen=True, kw_only=True, tag="run.timed_out"):
    pass


StepEvent = StepStarted | StepSucceeded | StepFailed | StepRetrying | StepSkipped | StepLog


class StepBatch(_RunEvent, frozen=True, kw_only=True, tag="steps"):
    """Several step events published as one message (one fenced round trip, DESIGN section 5).

    Folding a batch is folding its events in order; each carries its own ``at``.
    """

    events: list[StepEvent]


RunEvent = (
    RunQueued
    | RunScheduled
    | RunStarted
    | RunClaimed
    | RunWaiting
    | StepStarted
    | StepSucceeded
    | StepFailed
    | StepRetrying
    | StepSkipped
    | StepLog
    | StepBatch
    | RunSucceeded
    | RunFailed
    | RunCancelled
    | RunTimedOut
)

#: The events that end a run, each with the status it ends the run in (the first one seen
#: ends it; whatever follows changes nothing).
TERMINAL_RUN_EVENTS: MappingProxyType[type[RunEvent], TerminalRunStatus] = MappingProxyType(
    {
        RunSucceeded: "succeeded",
        RunFailed: "failed",
        RunCancelled: "cancelled",
        RunTimedOut: "timed_out",
    }
)
#: Their ``kind`` tags, for a shell that reads only an event's kind.
TERMINAL_RUN_KINDS: frozenset[str] = frozenset(
    str(event_type.__struct_config__.tag) for event_type in TERMINAL_RUN_EVENTS
)


def final_status(event: RunEvent) -> TerminalRunStatus | None:
    """The status ``event`` ends its run in, or None when it is not a run's end."""
    return TERMINAL_RUN_EVENTS.get(type(event))


class CancelRequest(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """Asked on ``<prefix>.<t>.control.<run_id>`` (and kept in the run-control bucket under
    ``<tenant>.<run_id>``, so a run no executor holds at that moment is cancelled when one
    picks it up)."""

    tenant: str
    run_id: str
    reason: str = ""
    by: str = ""
    at: datetime | None = None


def control_key(tenant: str, run_id: str) -> str:
    """The run-control bucket key of a run."""
    return f"{tenant}.{run_id}"


def request_of(first: RunQueued | RunScheduled, idempotency_key: str | None = None) -> RunRequest:
    """The request a run's opening event (``run.queued`` or ``run.scheduled``) stands for:
    what to publish again to finish a start, or to wake a parked run."""
    return RunRequest(
        tenant=first.tenant,
        run_id=first.run_id,
        workflow_id=first.workflow_id,
        version=first.version,
        trigger=first.trigger,
        input=first.input,
        idempotency_key=idempotency_key,
        parent_run_id=first.parent_run_id if isinstance(first, RunQueued) else None,
        attempt=first.attempt if isinstance(first, RunQueued) else 1,
        requested_at=first.at,
        run_at=first.run_at if isinstance(first, RunScheduled) else None,
    )


def run_queued(request: RunRequest, at: datetime) -> RunQueued:
    """The ``run.queued`` that opens the run ``request`` asks for, written at ``at`` (the
    inverse of :func:`request_of`, but for the idempotency key, which no event carries)."""
    return RunQueued(
        **_opening(request, at), attempt=request.attempt, parent_run_id=request.parent_run_id
    )


def run_scheduled(request: RunRequest, at: datetime) -> RunScheduled:
    """The ``run.scheduled`` that opens the delayed run ``request`` asks for (its
    ``run_at`` set), written at ``at``."""
    if request.run_at is None:
        raise ValueError("a scheduled run needs the request's run_at")
    return RunScheduled(**_opening(request, at), run_at=request.run_at)


def _opening(request: RunRequest, at: datetime) -> dict[str, Any]:
    """The fields every event that opens a run takes from its request."""
    return {
        "tenant": request.tenant,
        "run_id": request.run_id,
        "workflow_id": request.workflow_id,
        "version": request.version,
        "at": at,
        "trigger": request.trigger,
        "input": request.input,
    }


def run_cancelled_before_start(
    scheduled: RunScheduled, request: CancelRequest, at: datetime
) -> RunCancelled:
    """The ``run.cancelled`` that ends a run that is only scheduled (its ``run.scheduled``),
    asked by ``request``, written at ``at``."""
    return RunCancelled(
        tenant=scheduled.tenant,
        run_id=scheduled.run_id,
        workflow_id=scheduled.workflow_id,
        version=scheduled.version,
        at=at,
        reason=request.reason,
    )


run_request_decoder = msgspec.json.Decoder(RunRequest)
cancel_request_decoder = msgspec.json.Decoder(CancelRequest)
run_event_decoder = msgspec.json.Decoder(RunEvent)


# --- The run resource (DESIGN section 7): a view folded from a run's events -------------


class ErrorInfo(msgspec.Struct, frozen=True, kw_only=True):
    """An error as the run resource shows it (``node_id`` is null for a run-level error)."""

    code: str
    message: str
    node_id: str | None = None


class RunStep(msgspec.Struct, frozen=True, kw_only=True):
    """One node of a run. ``started_at`` is its first attempt's start, so ``duration_ms``
    spans every attempt and the delays between them; ``attempts`` is the latest attempt's
    number; ``error`` is the latest failed attempt's, cleared when a later one succeeds.
    ``reused``: a retry run took the parent run's output instead of running the node."""

    node_id: str
    status: StepStatus
    attempts: int
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    output: Any
    error: ErrorInfo | None
    reused: bool = False


class RunMetrics(msgspec.Struct, frozen=True, kw_only=True):
    """Counts over a run's steps: ``nodes_executed`` ran at least one attempt in this run
    (``nodes_reused`` did not: their output came from the parent run); ``retries`` counts
    the attempts scheduled again after a failure."""

    nodes_executed: int = 0
    nodes_succeeded: int = 0
    nodes_failed: int = 0
    nodes_skipped: int = 0
    nodes_reused: int = 0
    retries: int = 0


class Run(msgspec.Struct, frozen=True, kw_only=True):
    """The run resource: what a run's events say so far. ``steps``: every node of the pinned
    version in definition order once the run has started (``pending`` until it runs,
    ``skipped`` or ``cancelled`` once the run is over if it never finished); a run started
    without its node list (an older ``run.started``) lists its nodes in first-seen order.
    ``waiting``: why a queued run has not started yet (null once it has, and for a run
    that is not queued)."""

    id: str
    tenant_id: str
    workflow_id: str
    version: int
    status: RunStatus
    trigger: TriggerInfo | None
    input: Any
    output: Any
    error: ErrorInfo | None
    attempt: int
    parent_run_id: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None
    metrics: RunMetrics
    steps: list[RunStep]
    waiting: Waiting | None = None
