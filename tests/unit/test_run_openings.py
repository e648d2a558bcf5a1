"""A run's opening event built from its request (``run_queued``, ``run_scheduled``): what
the gateway, the scheduler and the executor publish first, and its inverse ``request_of``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from flowmesh_proto.msgids import request_msg_id
from flowmesh_proto.runs import (
    CancelRequest,
    RunCancelled,
    RunQueued,
    RunRequest,
    RunScheduled,
    TriggerInfo,
    request_of,
    run_cancelled_before_start,
    run_queued,
    run_scheduled,
)
from flowmesh_proto.timers import delayed_run_timer, park_timer

AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
REQUEST = RunRequest(
    tenant="acme",
    run_id="0195525e-0000-7000-8000-000000000001",
    workflow_id="wf",
    version=3,
    trigger=TriggerInfo(kind="retry", data={"n": 1}),
    input={"n": 1},
    idempotency_key="k-1",
    parent_run_id="0195525e-0000-7000-8000-000000000000",
    attempt=2,
    requested_at=AT - timedelta(seconds=5),
)


def test_run_queued_carries_what_the_request_says_and_the_time_given() -> None:
    queued = run_queued(REQUEST, AT)
    assert queued == RunQueued(
        tenant="acme",
        run_id=REQUEST.run_id,
        workflow_id="wf",
        version=3,
        at=AT,
        trigger=REQUEST.trigger,
        input={"n": 1},
        attempt=2,
        parent_run_id=REQUEST.parent_run_id,
    )
    # request_of undoes it: the request published again to finish a start is the same one.
    again = request_of(queued, REQUEST.idempotency_key)
    assert again == msgspec.structs.replace(REQUEST, requested_at=AT)


def test_run_scheduled_needs_a_run_at_and_carries_it() -> None:
    with pytest.raises(ValueError, match="run_at"):
        run_scheduled(REQUEST, AT)
    delayed = msgspec.structs.replace(REQUEST, attempt=1, parent_run_id=None, run_at=AT)
    scheduled = run_scheduled(delayed, AT - timedelta(hours=1))
    assert isinstance(scheduled, RunScheduled) and scheduled.run_at == AT
    assert scheduled.at == AT - timedelta(hours=1) and scheduled.input == {"n": 1}
    again = request_of(scheduled, delayed.idempotency_key)
    assert again == msgspec.structs.replace(delayed, requested_at=scheduled.at)


def test_a_delayed_runs_timer_holds_its_request_under_the_first_requests_id() -> None:
    due = AT + timedelta(hours=1)
    timer = delayed_run_timer(REQUEST, due)
    assert (timer.id, timer.tenant, timer.purpose, timer.due) == (
        REQUEST.run_id,
        "acme",
        "delayed_run",
        due,
    )
    assert timer.request == REQUEST and timer.request_msg_id == request_msg_id(REQUEST.run_id)


def test_a_parked_runs_timer_is_named_by_the_park_and_resumes_it_once() -> None:
    due = AT + timedelta(hours=2)
    timer = park_timer(REQUEST, 41, due)
    name = f"{REQUEST.run_id}:41"
    assert (timer.id, timer.tenant, timer.purpose, timer.due) == (name, "acme", "resume", due)
    assert timer.request == REQUEST and timer.request_msg_id == f"resume:{name}"
    assert park_timer(REQUEST, 42, due).id != timer.id  # parked again: a new timer


def test_a_run_cancelled_before_start_names_the_scheduled_run_and_the_reason() -> None:
    scheduled = run_scheduled(msgspec.structs.replace(REQUEST, run_at=AT + timedelta(days=1)), AT)
    cancel = CancelRequest(tenant="acme", run_id=REQUEST.run_id, reason="no longer", by="user:a")
    ended = run_cancelled_before_start(scheduled, cancel, AT + timedelta(minutes=1))
    assert ended == RunCancelled(
        tenant="acme",
        run_id=REQUEST.run_id,
        workflow_id="wf",
        version=3,
        at=AT + timedelta(minutes=1),
        reason="no longer",
    )
