"""The run resource folded from run events (flowmesh_shared.runview): pure, no server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_proto.runfold import CANCELLED, TIMED_OUT
from flowmesh_proto.runs import (
    ErrorInfo,
    Run,
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunScheduled,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    RunWaiting,
    StepBatch,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
    Waiting,
    run_event_decoder,
)
from flowmesh_shared.runview import RunFold, run_view

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
RUN = "0190f5a4-0000-7000-8000-000000000001"
PARENT = "0190f5a4-0000-7000-8000-000000000000"


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def base(ms: float) -> dict[str, Any]:
    return {"tenant": "acme", "run_id": RUN, "workflow_id": "wf-1", "version": 3, "at": at(ms)}


def queued(ms: float = 0, **extra: Any) -> RunQueued:
    trigger = extra.pop("trigger", TriggerInfo(kind="api", data={"total": 5}))
    return RunQueued(**base(ms), trigger=trigger, input={"total": 5}, **extra)


def started(node: str, ms: float, attempt: int = 1) -> StepStarted:
    return StepStarted(**base(ms), node_id=node, attempt=attempt)


def succeeded(node: str, ms: float, output: Any = None, **extra: Any) -> StepSucceeded:
    return StepSucceeded(**base(ms), node_id=node, output=output, **extra)


def failed(node: str, ms: float, attempt: int = 1, final: bool = True) -> StepFailed:
    return StepFailed(
        **base(ms),
        node_id=node,
        attempt=attempt,
        error_class="HttpError",
        message=f"attempt {attempt} failed",
        final=final,
    )


def a_failed_run_with_a_retry() -> list[RunEvent]:
    return [
        queued(),
        RunStarted(**base(1)),
        started("fetch", 2),
        failed("fetch", 5, attempt=1, final=False),
        StepRetrying(**base(5), node_id="fetch", attempt=2, delay_ms=100),
        started("fetch", 105, attempt=2),
        StepLog(**base(106), node_id="fetch", message="trying again"),
        failed("fetch", 110, attempt=2, final=True),
        StepSkipped(**base(110), node_id="notify"),
        RunFailed(
            **base(111),
            error=RunError(code="STEP_FAILED", message="fetch failed", node_id="fetch"),
        ),
    ]


def test_a_queued_run() -> None:
    run = run_view([queued(attempt=2, parent_run_id=PARENT)])
    assert run.id == RUN and run.tenant_id == "acme"
    assert (run.workflow_id, run.version) == ("wf-1", 3)
    assert run.status == "queued" and run.created_at == T0
    assert run.trigger == TriggerInfo(kind="api", data={"total": 5})
    assert run.input == {"total": 5} and run.output is None and run.error is None
    assert (run.attempt, run.parent_run_id) == (2, PARENT)
    assert run.started_at is None and run.finished_at is None and run.duration_ms is None
    assert run.steps == [] and run.metrics.nodes_executed == 0


def test_a_scheduled_run_then_queued() -> None:
    scheduled = RunScheduled(
        **base(0), trigger=TriggerInfo(kind="cron", trigger_id="nightly"), run_at=at(60_000)
    )
    assert run_view([scheduled]).status == "scheduled"
    assert run_view([scheduled, queued(60_000)]).status == "queued"
    assert run_view([scheduled, queued(60_000)]).created_at == T0


def waiting(ms: float, since: float = 0) -> RunWaiting:
    return RunWaiting(**base(ms), reason="concurrency_key", since=at(since))


def test_a_run_waiting_for_a_concurrency_slot_stays_queued_until_it_starts() -> None:
    run = run_view([queued(), waiting(3, since=2)])
    assert run.status == "queued" and run.started_at is None
    assert run.waiting == Waiting(reason="concurrency_key", since=at(2))
    again = run_view([queued(), waiting(3, since=2), waiting(9, since=8)])
    assert again.waiting == Waiting(reason="concurrency_key", since=at(8))  # the latest says
    for moved_on in (RunStarted(**base(10)), started("a", 10), RunCancelled(**base(10))):
        run = run_view([queued(), waiting(3), moved_on])
        assert run.waiting is None and run.status != "queued", moved_on
    late = run_view([queued(), RunStarted(**base(1)), waiting(3)])  # a run that has started
    assert late.status == "running" and late.waiting is None
    scheduled = RunScheduled(**base(0), trigger=TriggerInfo(kind="api"), run_at=at(5))
    run = run_view([scheduled, waiting(6, since=6)])
    assert run.status == "scheduled" and run.waiting == Waiting(
        reason="concurrency_key", since=at(6)
    )


def test_a_waiting_event_reads_back_from_json() -> None:
    wire = msgspec.json.encode(waiting(3, since=2))
    assert msgspec.json.decode(wire)["kind"] == "run.waiting"
    assert run_event_decoder.decode(wire) == waiting(3, since=2)
    document = msgspec.json.decode(msgspec.json.encode(run_view([queued(), waiting(3, 2)])))
    since = "2026-01-02T03:04:05.002000Z"
    assert document["waiting"] == {"reason": "concurrency_key", "since": since}


def test_a_succeeded_run_with_instant_and_timed_steps() -> None:
    events: list[RunEvent] = [
        queued(),
        RunStarted(**base(1)),
        succeeded("prepare", 1.5, {"total": 5}, started_at=at(1.5)),
        started("charge", 2),
        succeeded("charge", 12, {"ok": True}),
        RunSucceeded(**base(13), output={"ok": True}),
    ]
    run = run_view(events)
    assert run.status == "succeeded" and run.output == {"ok": True} and run.error is None
    assert (run.started_at, run.finished_at, run.duration_ms) == (at(1), at(13), 12.0)
    assert [step.node_id for step in run.steps] == ["prepare", "charge"]
    prepare, charge = run.steps
    assert prepare.status == "succeeded" and prepare.attempts == 1
    assert prepare.duration_ms == 0.0 and prepare.output == {"total": 5}
    assert charge.started_at == at(2) and charge.finished_at == at(12)
    assert charge.duration_ms == 10.0 and charge.error is None
    assert run.metrics.nodes_executed == 2 and run.metrics.nodes_succeeded == 2
    assert run.metrics.retries == 0


def test_a_failed_step_retried_then_failed_for_good() -> None:
    run = run_view(a_failed_run_with_a_retry())
    assert run.status == "failed"
    assert run.error == ErrorInfo(code="STEP_FAILED", message="fetch failed", node_id="fetch")
    fetch, notify = run.steps
    assert fetch.status == "failed" and fetch.attempts == 2
    assert fetch.started_at == at(2) and fetch.finished_at == at(110)
    assert fetch.duration_ms == 108.0  # from the first attempt's start, retries included
    assert fetch.error == ErrorInfo(code="HttpError", message="attempt 2 failed", node_id="fetch")
    assert notify.status == "skipped" and notify.attempts == 0 and notify.duration_ms is None
    assert msgspec.structs.asdict(run.metrics) == {
        "nodes_executed": 1,
        "nodes_succeeded": 0,
        "nodes_failed": 1,
        "nodes_skipped": 1,
        "nodes_reused": 0,
        "retries": 1,
    }


def test_between_attempts_a_step_is_pending_with_its_last_error() -> None:
    run = run_view(a_failed_run_with_a_retry()[:5])
    (fetch,) = run.steps
    assert run.status == "running"
    assert fetch.status == "pending" and fetch.attempts == 1 and fetch.finished_at is None
    assert fetch.error is not None and fetch.error.message == "attempt 1 failed"
    assert run.metrics.retries == 1


def test_a_retry_that_succeeds_clears_the_step_error() -> None:
    events = [*a_failed_run_with_a_retry()[:6], succeeded("fetch", 120, 7, attempt=2)]
    (fetch,) = run_view(events).steps
    assert fetch.status == "succeeded" and fetch.error is None and fetch.attempts == 2
    assert fetch.output == 7 and fetch.duration_ms == 118.0


def test_a_batch_is_its_events_in_order() -> None:
    batch = StepBatch(
        **base(3),
        events=[
            succeeded("a", 2, 1, started_at=at(2)),
            started("b", 2.5),
            succeeded("b", 3, 2),
            StepSkipped(**base(3), node_id="c"),
        ],
    )
    flat = [queued(), RunStarted(**base(1)), *batch.events]
    batched = [queued(), RunStarted(**base(1)), batch]
    assert run_view(batched) == run_view(flat)
    assert [(s.node_id, s.status) for s in run_view(batched).steps] == [
        ("a", "succeeded"),
        ("b", "succeeded"),
        ("c", "skipped"),
    ]


def test_steps_are_listed_in_first_seen_order() -> None:
    events = [queued(), started("z", 1), started("a", 2), succeeded("z", 3), succeeded("a", 4)]
    assert [step.node_id for step in run_view(events).steps] == ["z", "a"]


def test_a_step_event_without_run_started_starts_the_run() -> None:
    run = run_view([queued(), started("a", 4)])
    assert run.status == "running" and run.started_at == at(4)


def test_cancelling_cancels_running_and_waiting_steps() -> None:
    events: list[RunEvent] = [
        queued(),
        RunStarted(**base(1)),
        started("slow", 2),
        started("flaky", 2),
        failed("flaky", 3, final=False),
        StepRetrying(**base(3), node_id="flaky", attempt=2, delay_ms=1000),
        succeeded("quick", 4, 1, started_at=at(4)),
        RunCancelled(**base(50), reason="operator asked"),
    ]
    run = run_view(events)
    assert run.status == "cancelled"
    assert run.error == ErrorInfo(code=CANCELLED, message="operator asked")
    statuses = {step.node_id: (step.status, step.finished_at) for step in run.steps}
    assert statuses == {
        "slow": ("cancelled", at(50)),
        "flaky": ("cancelled", at(50)),
        "quick": ("succeeded", at(4)),
    }
    assert run.duration_ms == 49.0


def test_cancelled_before_it_started_and_timed_out() -> None:
    run = run_view([queued(), RunCancelled(**base(5))])
    assert run.status == "cancelled" and run.started_at is None and run.duration_ms is None
    assert run.error is not None and run.error.message == "the run was cancelled"
    run = run_view([queued(), RunStarted(**base(1)), started("a", 1), RunTimedOut(**base(9))])
    assert run.status == "timed_out" and run.error is not None
    assert run.error.code == TIMED_OUT and run.steps[0].status == "cancelled"


def test_nothing_changes_after_the_run_ended() -> None:
    events = [*a_failed_run_with_a_retry()]
    after = [
        RunSucceeded(**base(200), output="late"),
        started("late", 201),
        RunStarted(**base(202)),
    ]
    assert run_view([*events, *after]) == run_view(events)


def test_reused_outputs_are_not_executions() -> None:
    events: list[RunEvent] = [
        queued(attempt=2, parent_run_id=PARENT, trigger=TriggerInfo(kind="retry", data=1)),
        RunStarted(**base(1)),
        succeeded("prepare", 1, {"total": 5}, reused=True, started_at=at(1)),
        started("charge", 2),
        succeeded("charge", 4, "ok"),
        RunSucceeded(**base(5), output="ok"),
    ]
    run = run_view(events)
    prepare = run.steps[0]
    assert prepare.reused and prepare.status == "succeeded" and prepare.attempts == 0
    assert msgspec.structs.asdict(run.metrics) == {
        "nodes_executed": 1,
        "nodes_succeeded": 1,
        "nodes_failed": 0,
        "nodes_skipped": 0,
        "nodes_reused": 1,
        "retries": 0,
    }
    assert run.trigger is not None and run.trigger.kind == "retry" and run.attempt == 2


def test_no_events_is_no_run() -> None:
    with pytest.raises(ValueError, match="at least one event"):
        run_view([])


def test_the_view_is_json_with_every_field() -> None:
    encoded = msgspec.json.encode(run_view(a_failed_run_with_a_retry()))
    document = msgspec.json.decode(encoded)
    assert set(document) == {
        "id",
        "tenant_id",
        "workflow_id",
        "version",
        "status",
        "trigger",
        "input",
        "output",
        "error",
        "attempt",
        "parent_run_id",
        "created_at",
        "started_at",
        "finished_at",
        "duration_ms",
        "metrics",
        "steps",
        "waiting",
    }
    assert document["waiting"] is None
    assert document["error"] == {
        "code": "STEP_FAILED",
        "message": "fetch failed",
        "node_id": "fetch",
    }
    assert document["finished_at"].endswith("Z")
    assert set(document["steps"][0]) == {
        "node_id",
        "status",
        "attempts",
        "started_at",
        "finished_at",
        "duration_ms",
        "output",
        "error",
        "reused",
    }
    assert msgspec.json.decode(encoded, type=Run) == run_view(a_failed_run_with_a_retry())


SCRIPTS = [
    a_failed_run_with_a_retry(),
    [queued(), waiting(1), waiting(2, 1), RunStarted(**base(3)), RunSucceeded(**base(4))],
    [
        queued(),
        RunStarted(**base(1)),
        StepBatch(**base(2), events=[succeeded("a", 2, 1, started_at=at(2)), started("b", 2)]),
        failed("b", 3, final=False),
        StepRetrying(**base(3), node_id="b", attempt=2, delay_ms=10),
        started("b", 13, attempt=2),
        succeeded("b", 14, 2, attempt=2),
        RunSucceeded(**base(15), output=2),
    ],
]


@given(script=st.sampled_from(SCRIPTS), data=st.data())
def test_resuming_from_a_view_gives_the_same_view(script: list[RunEvent], data: Any) -> None:
    """A projection stores a view and folds what came since: the same as folding it all."""
    split = data.draw(st.integers(min_value=1, max_value=len(script)))
    stored = run_view(script[:split])
    through_json = msgspec.json.decode(msgspec.json.encode(stored), type=Run)
    fold = RunFold.resume(through_json)
    for event in script[split:]:
        fold.apply(event)
    assert fold.view() == run_view(script)


def test_events_through_json_fold_the_same() -> None:
    script = a_failed_run_with_a_retry()
    decoded = [run_event_decoder.decode(msgspec.json.encode(event)) for event in script]
    assert run_view(decoded) == run_view(script)
