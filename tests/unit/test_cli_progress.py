"""The CLI's pure fold of run events into a header and step rows (what ``watch`` shows)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmesh_cli.progress import Progress, RunHeader, StepRow
from flowmesh_cli.render import format_duration, line, step_status
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunScheduled,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    StepBatch,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
RUN = "0190f000-0000-7000-8000-000000000001"
WF = "7c1e0000-0000-4000-8000-000000000002"


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def common(seconds: float) -> dict[str, Any]:
    return {"tenant": "acme", "run_id": RUN, "workflow_id": WF, "version": 3, "at": at(seconds)}


def queued(s: float = 0) -> RunQueued:
    return RunQueued(**common(s), trigger=TriggerInfo(kind="api"))


def started(s: float = 0.1) -> RunStarted:
    return RunStarted(**common(s), executor="ex-1")


def step_started(node: str, s: float, attempt: int = 1) -> StepStarted:
    return StepStarted(**common(s), node_id=node, attempt=attempt)


def step_ok(node: str, s: float, attempt: int = 1, **kw: Any) -> StepSucceeded:
    return StepSucceeded(**common(s), node_id=node, attempt=attempt, **kw)


def step_failed(node: str, s: float, attempt: int = 1, *, final: bool = True) -> StepFailed:
    return StepFailed(
        **common(s),
        node_id=node,
        attempt=attempt,
        error_class="ConnectError",
        message=f"refused (attempt {attempt})",
        final=final,
    )


def retrying(node: str, s: float, attempt: int, delay_ms: int) -> StepRetrying:
    return StepRetrying(**common(s), node_id=node, attempt=attempt, delay_ms=delay_ms)


def fold(*events: RunEvent) -> Progress:
    progress = Progress(RUN)
    for event in events:
        progress.apply(event)
    return progress


def rows(progress: Progress) -> dict[str, tuple[str, int, float | None, str | None]]:
    """node -> (shown status, attempts, seconds, error) once the run's clock is ``clock``."""
    now = progress.clock or T0
    out = {}
    for row in progress.steps:
        took = row.duration(now)
        out[row.node_id] = (
            step_status(row),
            row.attempts,
            None if took is None else took.total_seconds(),
            row.error,
        )
    return out


# --- every event kind ---


def test_queued_names_the_run_and_started_runs_it() -> None:
    progress = fold(queued(0))
    assert progress.run == RunHeader(run_id=RUN, workflow_id=WF, version=3, queued_at=at(0))
    progress.apply(started(0.5))
    assert (progress.run.status, progress.run.started_at) == ("running", at(0.5))
    assert not progress.finished
    assert progress.run.elapsed(at(2)) == timedelta(seconds=1.5)


def test_scheduled_then_started() -> None:
    event = RunScheduled(**common(0), trigger=TriggerInfo(kind="delay"), run_at=at(60))
    progress = fold(event)
    assert (progress.run.status, progress.run.run_at) == ("scheduled", at(60))
    assert progress.run.elapsed(at(10)) == timedelta(seconds=10)  # waiting, since it was queued
    progress.apply(started(60))
    assert progress.run.status == "running"


def test_a_step_runs_and_succeeds() -> None:
    progress = fold(queued(), started(), step_started("fetch", 1), step_ok("fetch", 3.5))
    assert rows(progress) == {"fetch": ("succeeded", 1, 2.5, None)}
    assert progress.steps[0].finished_at == at(3.5)


def test_a_running_step_lasts_until_now() -> None:
    progress = fold(queued(), started(), step_started("fetch", 1))
    row = progress.steps[0]
    assert row.status == "running"
    assert row.duration(at(4)) == timedelta(seconds=3)
    assert row.duration(at(0)) == timedelta(0)  # a clock behind the events: never negative


def test_a_first_step_event_starts_a_run_without_run_started() -> None:
    progress = fold(queued(), step_started("a", 1))
    assert (progress.run.status, progress.run.started_at) == ("running", at(1))


def test_a_final_failure_and_a_skip() -> None:
    progress = fold(
        queued(),
        started(),
        step_started("a", 1),
        step_failed("a", 2),
        StepSkipped(**common(2.1), node_id="b"),
    )
    assert rows(progress) == {
        "a": ("failed", 1, 1.0, "ConnectError: refused (attempt 1)"),
        "b": ("skipped", 0, None, None),
    }


def test_logs_change_nothing() -> None:
    progress = fold(queued(), started(), step_started("a", 1))
    before = progress.steps
    assert progress.apply(StepLog(**common(2), node_id="a", message="hello")) == []
    assert progress.steps == before


@pytest.mark.parametrize(
    ("terminal", "status", "error"),
    [
        (RunSucceeded(**common(9), output={"ok": True}), "succeeded", None),
        (
            RunFailed(**common(9), error=RunError(code="STEP_FAILED", message="a", node_id="a")),
            "failed",
            "STEP_FAILED: a (step a)",
        ),
        (RunCancelled(**common(9), reason="by ops"), "cancelled", "CANCELLED: by ops"),
        (RunCancelled(**common(9)), "cancelled", "CANCELLED: the run was cancelled"),
        (
            RunTimedOut(**common(9)),
            "timed_out",
            "TIMED_OUT: the run did not finish within its timeout",
        ),
    ],
)
def test_terminal_events_end_the_run(terminal: RunEvent, status: str, error: str | None) -> None:
    progress = fold(queued(), started(1), terminal)
    assert progress.finished
    assert (progress.run.status, progress.run.error) == (status, error)
    assert progress.run.elapsed(at(100)) == timedelta(seconds=8)


def test_the_end_cancels_running_and_retrying_steps_and_nothing_comes_after() -> None:
    progress = fold(
        queued(),
        started(),
        step_started("done", 1),
        step_ok("done", 2),
        step_started("busy", 1),
        step_started("flaky", 1),
        step_failed("flaky", 2, final=False),
        retrying("flaky", 2, 2, 5000),
        RunCancelled(**common(4), reason="stop"),
    )
    assert rows(progress) == {
        "done": ("succeeded", 1, 1.0, None),
        "busy": ("cancelled", 1, 3.0, None),
        "flaky": ("cancelled", 1, 3.0, "ConnectError: refused (attempt 1)"),
    }
    assert progress.steps[2].retry_at is None
    assert progress.apply(step_ok("busy", 5)) == []
    assert progress.apply(RunSucceeded(**common(6))) == []
    assert progress.run.status == "cancelled"


# --- batches, retries, resuming ---


def test_a_batch_is_its_events_in_order_and_reports_each_row_once() -> None:
    progress = fold(queued(), started())
    batch = StepBatch(
        **common(1),
        events=[
            step_ok("a", 1.2, started_at=at(1)),
            StepSkipped(**common(1.2), node_id="b"),
            step_started("c", 1.3),
            step_started("d", 1.3),
            StepLog(**common(1.3), node_id="c", message="go"),
            step_ok("d", 1.8),
        ],
    )
    changes = progress.apply(batch, seq=3)
    assert [c.node_id for c in changes if isinstance(c, StepRow)] == ["a", "b", "c", "d"]
    assert rows(progress) == {
        "a": ("succeeded", 1, 0.2, None),
        "b": ("skipped", 0, None, None),
        "c": ("running", 1, 0.5, None),  # the clock is the batch's latest time, 1.8
        "d": ("succeeded", 1, 0.5, None),
    }
    assert progress.clock == at(1.8)


def test_retries_count_attempts_span_the_step_and_clear_the_error() -> None:
    progress = fold(
        queued(), started(), step_started("fetch", 1), step_failed("fetch", 2, 1, final=False)
    )
    assert rows(progress)["fetch"] == ("retrying", 1, 1.0, "ConnectError: refused (attempt 1)")
    progress.apply(retrying("fetch", 2, 2, 1500))
    assert progress.steps[0].retry_at == at(3.5)
    assert progress.retries == 1
    progress.apply(step_started("fetch", 3.5, 2))
    assert rows(progress)["fetch"] == ("running", 2, 2.5, "ConnectError: refused (attempt 1)")
    assert progress.steps[0].retry_at is None
    progress.apply(step_failed("fetch", 4, 2, final=False))
    progress.apply(retrying("fetch", 4, 3, 1000))
    progress.apply(step_started("fetch", 5, 3))
    progress.apply(step_ok("fetch", 6, 3))
    assert rows(progress)["fetch"] == ("succeeded", 3, 5.0, None)
    assert progress.retries == 2


def test_a_reused_step_keeps_its_attempts() -> None:
    progress = fold(queued(), started(), step_ok("a", 1, attempt=2, reused=True))
    row = progress.steps[0]
    assert (row.status, row.attempts, row.reused) == ("succeeded", 0, True)


def test_steps_keep_their_first_seen_order() -> None:
    progress = fold(
        queued(),
        started(),
        step_started("zeta", 1),
        step_started("alpha", 1),
        step_ok("zeta", 2),
        StepSkipped(**common(2), node_id="mid"),
        step_ok("alpha", 3),
    )
    assert [row.node_id for row in progress.steps] == ["zeta", "alpha", "mid"]


STORY: list[RunEvent] = [
    queued(0),
    started(0.1),
    step_started("fetch", 1),
    step_failed("fetch", 2, final=False),
    retrying("fetch", 2, 2, 500),
    step_started("fetch", 2.5, 2),
    step_ok("fetch", 3),
    StepBatch(**common(3.2), events=[step_started("a", 3.2), step_started("b", 3.2)]),
    step_ok("a", 4),
    step_failed("b", 4.5, 1, final=False),
    retrying("b", 4.5, 2, 100),
    step_started("b", 4.6, 2),
    step_ok("b", 5),
    RunSucceeded(**common(5.1)),
]


def folded(pairs: list[tuple[int, RunEvent]]) -> Progress:
    progress = Progress(RUN)
    for seq, event in pairs:
        progress.apply(event, seq)
    return progress


def snapshot(progress: Progress) -> tuple[object, ...]:
    return (progress.run, progress.steps, progress.retries, progress.last_seq)


@pytest.mark.parametrize("cut", range(len(STORY) + 1))
def test_a_replay_after_a_reconnect_is_not_counted_twice(cut: int) -> None:
    numbered = list(enumerate(STORY, start=1))
    once = folded(numbered)
    # The stream dropped after ``cut`` events; the next connection starts over from the top.
    again = folded(numbered[:cut] + numbered)
    assert snapshot(again) == snapshot(once)
    assert once.retries == 2
    assert rows(once)["fetch"] == ("succeeded", 2, 2.0, None)


def test_a_seen_sequence_changes_nothing_and_reports_nothing() -> None:
    progress = Progress(RUN)
    assert progress.apply(queued(), seq=1) == [progress.run]
    assert progress.apply(started(), seq=2) != []
    assert progress.apply(retrying("x", 1, 2, 10), seq=2) == []
    assert progress.apply(retrying("x", 1, 2, 10), seq=1) == []
    assert (progress.retries, progress.steps, progress.last_seq) == (0, [], 2)


def test_changes_are_the_run_and_the_rows_that_differ() -> None:
    progress = fold(queued(), started(), step_started("a", 1), step_started("b", 1))
    changes = progress.apply(step_ok("b", 2))
    assert changes == [progress.steps[1]]
    changes = progress.apply(RunSucceeded(**common(3)))
    assert changes == [progress.run, progress.steps[0]]  # "a" was still running: cancelled
    assert progress.steps[0].status == "cancelled"


# --- what a line display prints ---


def test_lines_for_each_change() -> None:
    progress = Progress(RUN)
    printed = []
    for seq, event in enumerate(STORY, start=1):
        for change in progress.apply(event, seq):
            printed.append(line(change, progress.clock or T0))
    assert printed == [
        f"run {RUN} queued (workflow {WF} v3)",
        f"run {RUN} running",
        "step fetch running (attempt 1)",
        "step fetch retrying after attempt 1: ConnectError: refused (attempt 1)",
        "step fetch retrying after attempt 1: ConnectError: refused (attempt 1); "
        "attempt 2 in 500ms",
        "step fetch running (attempt 2)",
        "step fetch succeeded in 2.0s (2 attempts)",
        "step a running (attempt 1)",
        "step b running (attempt 1)",
        "step a succeeded in 800ms (1 attempt)",
        "step b retrying after attempt 1: ConnectError: refused (attempt 1)",
        "step b retrying after attempt 1: ConnectError: refused (attempt 1); attempt 2 in 100ms",
        "step b running (attempt 2)",
        "step b succeeded in 1.8s (2 attempts)",
        f"run {RUN} succeeded in 5.0s",
    ]


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(0.0004, "0ms"), (0.34, "340ms"), (12.34, "12.3s"), (125, "2m05s"), (3720, "1h02m")],
)
def test_durations_read_well(seconds: float, text: str) -> None:
    assert format_duration(timedelta(seconds=seconds)) == text
    assert format_duration(None) == ""
