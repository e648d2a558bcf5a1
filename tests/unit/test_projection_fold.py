"""The projection's pure parts: folding batches onto stored runs, decoding, rows, cursors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from flowmesh_proto.runs import (
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunWaiting,
    StepBatch,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)
from flowmesh_registry.batchfold import Delivery, Gap, Stored, find_gap, fold_run, in_order
from flowmesh_registry.deliveries import Refused, decode_delivery, fence_of, run_subject_parts
from flowmesh_registry.run_rows import run_of, upsert_arguments
from flowmesh_shared.runview import run_view

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
RUN = "0190f5a4-0000-7000-8000-000000000001"
WORKFLOW = "0190f5a4-0000-7000-8000-0000000000ff"
LONG_AGO = T0 - timedelta(days=365)


def at(ms: float) -> datetime:
    return T0 + timedelta(milliseconds=ms)


def base(ms: float) -> dict[str, Any]:
    return {"tenant": "acme", "run_id": RUN, "workflow_id": WORKFLOW, "version": 2, "at": at(ms)}


def a_run() -> list[RunEvent]:
    """Queued, started, a batch of two steps, a failed attempt retried, then success."""
    return [
        RunQueued(**base(0), trigger=TriggerInfo(kind="api", data={"n": 1}), input={"n": 1}),
        RunStarted(**base(1)),
        StepBatch(
            **base(2),
            events=[
                StepSucceeded(**base(2), node_id="a", started_at=at(1.5), output={"x": 1}),
                StepSucceeded(**base(2), node_id="b", output=[1, 2]),
            ],
        ),
        StepStarted(**base(3), node_id="c"),
        StepFailed(**base(4), node_id="c", attempt=1, error_class="E", message="no", final=False),
        StepRetrying(**base(4), node_id="c", attempt=2, delay_ms=5),
        StepStarted(**base(10), node_id="c", attempt=2),
        StepSucceeded(**base(12), node_id="c", attempt=2, output="ok"),
        RunSucceeded(**base(13), output={"c": "ok"}),
    ]


def delivered(events: list[RunEvent], first_seq: int = 1, step: int = 3) -> list[Delivery]:
    """Each event at a stream sequence ``step`` apart, fenced on the one before."""
    out, previous = [], 0
    for i, event in enumerate(events):
        seq = first_seq + i * step
        out.append(Delivery(seq=seq, previous=previous, event=event))
        previous = seq
    return out


def stored_after(deliveries: list[Delivery]) -> Stored:
    projected = fold_run(None, deliveries, keep_after=LONG_AGO)
    assert projected is not None
    return Stored(view=projected.view, last_seq=projected.last_seq)


def test_folding_in_batches_gives_the_view_of_all_events() -> None:
    events = a_run()
    deliveries = delivered(events)
    whole = fold_run(None, deliveries, keep_after=LONG_AGO)
    assert whole is not None and whole.view == run_view(events)
    assert whole.last_seq == deliveries[-1].seq
    for cut in range(1, len(deliveries)):
        first = stored_after(deliveries[:cut])
        rest = fold_run(first, deliveries[cut:], keep_after=LONG_AGO)
        assert rest is not None and rest.view == whole.view, cut
        assert rest.last_seq == whole.last_seq


def test_only_changed_steps_are_written() -> None:
    deliveries = delivered(a_run())
    first = stored_after(deliveries[:3])  # a and b succeeded
    after = fold_run(first, deliveries[3:5], keep_after=LONG_AGO)  # c started, failed once
    assert after is not None
    assert [(position, step.node_id) for position, step in after.steps] == [(2, "c")]
    assert after.steps[0][1].status == "pending" and after.steps[0][1].attempts == 1


def test_redelivered_and_replayed_events_change_nothing() -> None:
    deliveries = delivered(a_run())
    stored = stored_after(deliveries)
    assert fold_run(stored, deliveries, keep_after=LONG_AGO) is None
    assert fold_run(stored, deliveries[2:4], keep_after=LONG_AGO) is None
    partial = stored_after(deliveries[:4])
    again = fold_run(partial, in_order(deliveries[:6] + deliveries[2:5]), keep_after=LONG_AGO)
    assert again is not None and again.view == stored_after(deliveries[:6]).view


def test_in_order_sorts_and_drops_redeliveries() -> None:
    deliveries = delivered(a_run())
    mixed = [deliveries[3], deliveries[0], deliveries[3], deliveries[1]]
    assert [d.seq for d in in_order(mixed)] == [1, 4, 10]


def test_a_gap_names_the_missing_sequences() -> None:
    deliveries = delivered(a_run())
    assert find_gap(0, deliveries) is None
    assert find_gap(0, deliveries[2:]) == Gap(after=0, before=deliveries[2].seq)
    assert find_gap(deliveries[1].seq, deliveries[2:]) is None
    assert find_gap(deliveries[0].seq, [deliveries[0], deliveries[2]]) == Gap(
        after=deliveries[0].seq, before=deliveries[2].seq
    )
    # Without fences, stream order is trusted.
    unfenced = [msgspec.structs.replace(d, previous=None) for d in deliveries[2:]]
    assert find_gap(0, unfenced) is None


def test_a_new_run_older_than_the_retention_is_not_stored() -> None:
    deliveries = delivered(a_run())
    assert fold_run(None, deliveries, keep_after=T0 + timedelta(days=1)) is None
    stored = stored_after(deliveries[:3])
    kept = fold_run(stored, deliveries[3:], keep_after=T0 + timedelta(days=1))
    assert kept is not None  # a stored run goes on; retention deletes it, not the fold


def test_events_after_the_end_change_nothing_but_the_sequence() -> None:
    deliveries = delivered(a_run())
    stored = stored_after(deliveries)
    late = RunFailed(**base(20), error=RunError(code="X", message="late"))
    after = fold_run(
        stored, [Delivery(seq=99, previous=stored.last_seq, event=late)], keep_after=LONG_AGO
    )
    assert after is not None and after.view == stored.view and after.steps == []
    assert after.last_seq == 99


@given(st.lists(st.integers(min_value=1, max_value=8), min_size=1, max_size=8))
def test_any_split_into_batches_gives_the_same_rows(cuts: list[int]) -> None:
    events = a_run()
    deliveries = delivered(events)
    stored: Stored | None = None
    start = 0
    for size in [*cuts, len(deliveries)]:
        chunk = deliveries[start : start + size]
        if not chunk:
            break
        result = fold_run(stored, chunk, keep_after=LONG_AGO)
        assert result is not None
        stored = Stored(view=result.view, last_seq=result.last_seq)
        start += size
    assert stored is not None and stored.view == run_view(events)


# --- rows ------------------------------------------------------------------------------


def rows_of(arguments: list[list[Any]]) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """What PostgreSQL would give back for one run written by ``upsert_arguments``."""
    run_names = [
        *("id", "workflow_id", "version", "status", "trigger", "input", "output", "error"),
        *("attempt", "parent_run_id", "created_at", "started_at", "finished_at"),
        *("duration_ms", "metrics", "last_seq"),
    ]
    step_names = [
        *("run_id", "node_id", "position", "status", "attempts", "started_at", "finished_at"),
        *("duration_ms", "output", "error", "reused", "last_seq"),
    ]
    json_columns = {"trigger", "input", "output", "error", "metrics"}

    def value(name: str, raw: Any) -> Any:
        return msgspec.json.decode(raw) if name in json_columns and raw is not None else raw

    run = {
        name: value(name, column[0]) for name, column in zip(run_names, arguments[:16], strict=True)
    }
    run["tenant_id"] = "acme"
    steps = [
        {
            name: value(name, column[i])
            for name, column in zip(step_names, arguments[16:], strict=True)
        }
        for i in range(len(arguments[16]))
    ]
    return run, steps


def test_rows_read_back_as_the_view_written() -> None:
    deliveries = delivered(a_run())
    projected = fold_run(None, deliveries, keep_after=LONG_AGO)
    assert projected is not None
    run, steps = rows_of(upsert_arguments([projected]))
    assert run["last_seq"] == projected.last_seq
    assert run_of(run, sorted(steps, key=lambda s: s["position"])) == projected.view


def test_a_waiting_run_is_stored_queued_without_its_wait() -> None:
    """The projection accepts ``run.waiting`` and keeps the run queued; why it waits is
    the gateway's to read live (the stored view, and its rows, have no ``waiting``)."""
    queued = a_run()[0]
    wait = RunWaiting(**base(1), reason="concurrency_key", since=at(1))
    projected = fold_run(None, delivered([queued, wait]), keep_after=LONG_AGO)
    assert projected is not None and projected.last_seq == 4
    assert projected.view.status == "queued" and projected.view.waiting is None
    assert run_view([queued, wait]).waiting is not None  # the fold itself says it
    run, steps = rows_of(upsert_arguments([projected]))
    assert run_of(run, steps) == projected.view
    stored = Stored(view=projected.view, last_seq=4)
    started = Delivery(seq=5, previous=4, event=a_run()[1])
    later = fold_run(stored, [started], keep_after=LONG_AGO)
    assert later is not None and later.view.status == "running"


# --- decoding --------------------------------------------------------------------------


def encoded(event: RunEvent) -> bytes:
    return msgspec.json.encode(event)


def test_a_good_message_decodes_with_its_fence() -> None:
    event = a_run()[1]
    tenant, delivery = decode_delivery(
        "fm",
        f"fm.acme.runs.{RUN}",
        encoded(event),
        {"Nats-Expected-Last-Subject-Sequence": "7"},
        9,
    )
    assert tenant == "acme" and delivery == Delivery(seq=9, previous=7, event=event)
    assert fence_of(None) is None and fence_of({"Nats-Expected-Last-Subject-Sequence": "x"}) is None
    assert run_subject_parts("a.b", f"a.b.acme.runs.{RUN}") == ("acme", RUN)


@pytest.mark.parametrize(
    ("subject", "data", "why"),
    [
        (f"fm.acme.runs.{RUN}", b"not json", "not a run event"),
        (f"fm.acme.runs.{RUN}", b'{"kind": "run.exploded"}', "not a run event"),
        (f"fm.other.runs.{RUN}", None, "not its subject's"),
        ("fm.acme.runs.0190f5a4-0000-7000-8000-000000000002", None, "not its subject's"),
        (f"fm.acme.events.{RUN}", None, "not a run subject"),
        (f"xx.acme.runs.{RUN}", None, "not a run subject"),
    ],
)
def test_bad_messages_are_refused(subject: str, data: bytes | None, why: str) -> None:
    payload = data if data is not None else encoded(a_run()[0])
    with pytest.raises(Refused, match=why):
        decode_delivery("fm", subject, payload, None, 1)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"run_id": RUN.upper()}, "canonical"),
        ({"workflow_id": "wf-1"}, "workflow id"),
        ({"version": 0}, "version"),
        ({"version": 2**40}, "version"),
        ({"attempt": 2**40}, "attempt"),
        ({"parent_run_id": "nope"}, "parent run id"),
    ],
)
def test_values_that_cannot_be_stored_are_refused(change: dict[str, Any], why: str) -> None:
    event = msgspec.structs.replace(a_run()[0], **change)
    subject = f"fm.acme.runs.{event.run_id}"
    with pytest.raises(Refused, match=why):
        decode_delivery("fm", subject, encoded(event), None, 1)
