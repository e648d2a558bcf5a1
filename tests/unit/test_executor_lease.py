"""The executor's own view of its lease, its pause watch, and the claim every fold ignores."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from flowmesh_cli.progress import Progress
from flowmesh_executor.lease import LeaseLost, RunLease, lease_term
from flowmesh_executor.pauses import MIN_PAUSE, PauseWatch, pause_threshold
from flowmesh_executor.state import fold
from flowmesh_proto.runs import (
    RunClaimed,
    RunEvent,
    RunQueued,
    RunStarted,
    RunSucceeded,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
    run_event_decoder,
)
from flowmesh_shared.runview import run_view

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def test_a_lease_holds_for_its_term_after_the_last_confirmed_heartbeat() -> None:
    lease = RunLease(term=25.0, granted_at=100.0)
    assert lease.held(124.9)
    assert lease.renewed(110.0)  # a heartbeat sent at 110, confirmed
    assert lease.held(134.9)
    lease.check(134.9)
    assert not lease.held(135.1)


def test_a_lapsed_lease_stays_lost_whatever_heartbeat_comes_late() -> None:
    """SIGCONT after a pause past the lease: the heartbeat loop wakes up and its ping is
    answered, but the request may be another executor's by now."""
    lease = RunLease(term=25.0, granted_at=100.0)
    assert not lease.renewed(126.0)  # sent after the term: revives nothing
    assert not lease.held(126.5)
    with pytest.raises(LeaseLost, match="no heartbeat confirmed for"):
        lease.check(127.0)
    assert not lease.renewed(127.0)


def test_a_heartbeat_confirmed_late_renews_from_when_it_was_sent() -> None:
    lease = RunLease(term=25.0, granted_at=100.0)
    assert lease.renewed(120.0)
    assert lease.renewed(110.0)  # an older round confirmed after: no step back
    assert lease.renewed_at == 120.0


def test_the_term_keeps_a_margin_for_a_publish_in_flight() -> None:
    assert lease_term(30.0) == pytest.approx(25.0)
    assert lease_term(3.0) == pytest.approx(2.5)
    assert RunLease.unbounded().held(math.inf / 2)


def test_a_pause_is_a_tick_that_comes_late_by_more_than_the_threshold() -> None:
    watch = PauseWatch(threshold=1.0, tick=0.1, now=0.0)
    for tick in range(1, 10):
        assert watch.ticked(tick / 10) is None  # a loop that keeps up
    assert watch.ticked(1.5) is None  # 0.6 s late: slowness, not a pause
    assert not watch.paused_since(0.0, 1.6)
    assert watch.ticked(4.0) == pytest.approx(2.5)
    assert watch.pauses == 1
    assert watch.paused_since(3.9, 4.1)  # a step running through the pause
    assert not watch.paused_since(4.0, 4.1)  # a step started after it


def test_a_pause_not_yet_ticked_counts_already() -> None:
    """On SIGCONT a step's timer may fire before the watch's own tick."""
    watch = PauseWatch(threshold=1.0, tick=0.1, now=10.0)
    assert watch.paused_since(9.0, 12.0)
    assert not watch.paused_since(9.0, 10.5)


def test_the_pause_threshold_follows_the_lease_with_a_floor() -> None:
    assert pause_threshold(30.0) == pytest.approx(3.0)
    assert pause_threshold(2.0) == MIN_PAUSE


def _base(seconds: float) -> dict[str, Any]:
    at = T0 + timedelta(seconds=seconds)
    return {"tenant": "acme", "run_id": "r1", "workflow_id": "wf", "version": 1, "at": at}


def _run(claims: bool) -> list[RunEvent]:
    claim = RunClaimed(**_base(2.5), executor="host:2", delivery=2)
    events: list[RunEvent] = [
        RunQueued(**_base(0), trigger=TriggerInfo(kind="api"), input={}),
        RunStarted(**_base(1), executor="host:1"),
        StepStarted(**_base(2), node_id="call"),
        *([claim] if claims else []),
        StepSucceeded(**_base(3), node_id="call", output={"ok": True}),
        RunSucceeded(**_base(4), output={"call": {"ok": True}}),
    ]
    return events


def test_a_claim_changes_nothing_in_any_fold() -> None:
    claimed, plain = _run(claims=True), _run(claims=False)
    assert fold(claimed) == fold(plain)
    assert fold(claimed[:4]) == fold(plain[:3])  # the claim of a running step
    assert run_view(claimed) == run_view(plain)
    with_claim, without = Progress("r1"), Progress("r1")
    for event in claimed:
        with_claim.apply(event)
    for event in plain:
        without.apply(event)
    assert (with_claim.run, with_claim.steps) == (without.run, without.steps)


def test_a_claim_is_a_run_event_on_the_wire() -> None:
    claim = RunClaimed(**_base(1), executor="host:7", delivery=3)
    wire = msgspec.json.encode(claim)
    assert b'"kind":"run.claimed"' in wire
    assert run_event_decoder.decode(wire) == claim
