"""Message ids and idempotency keys (flowmesh_proto.msgids): the names a repeat is known by.

They are pinned: a message id that changed between two versions of a service would let a
rolling upgrade publish the same run, request or timer twice.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flowmesh_proto import msgids
from flowmesh_proto.msgids import idempotency_key
from flowmesh_proto.runs import RunQueued, RunScheduled, TriggerInfo

AT = datetime(2025, 3, 1, 12, 30, tzinfo=UTC)
RUN = "0195525e-0000-7000-8000-000000000001"


def test_idempotency_keys_are_hashed_per_tenant_and_workflow() -> None:
    key = idempotency_key("acme", "wf-1", "order 42 / ✓")
    assert key.startswith("acme.wf-1.") and len(key.rsplit(".", 1)[1]) == 64
    assert key == idempotency_key("acme", "wf-1", "order 42 / ✓")
    assert key != idempotency_key("acme", "wf-2", "order 42 / ✓")
    assert key != idempotency_key("beta", "wf-1", "order 42 / ✓")


def test_a_runs_opening_event_is_named_by_its_kind_and_run() -> None:
    common = {"tenant": "acme", "run_id": RUN, "workflow_id": "wf", "version": 1, "at": AT}
    trigger = TriggerInfo(kind="api")
    assert msgids.opening_msg_id(RunQueued(**common, trigger=trigger)) == f"queued:{RUN}"
    scheduled = RunScheduled(**common, trigger=trigger, run_at=AT)
    assert msgids.opening_msg_id(scheduled) == f"scheduled:{RUN}"


def test_requests_timers_and_resumptions_are_pinned() -> None:
    assert msgids.request_msg_id(RUN) == RUN
    assert msgids.wake_msg_id(RUN, 7) == f"wake:{RUN}:7"
    assert msgids.rerequest_msg_id("slot:3", RUN) == f"slot:3:{RUN}"
    assert msgids.timer_msg_id(RUN) == f"timer:{RUN}"
    timer = msgids.park_timer_id(RUN, 9)
    assert (timer, msgids.resume_msg_id(timer)) == (f"{RUN}:9", f"resume:{RUN}:9")
    assert msgids.timer_msg_id(timer) == f"timer:{RUN}:9"
    resumed = msgids.event_resume_msg_id(RUN, "approve", 9, "evt-1")
    assert resumed == f"resume:{RUN}:approve:9:evt-1"


def test_fires_are_named_by_workflow_trigger_and_what_fired() -> None:
    assert msgids.event_fire_name("wf", "on-order", "evt-1") == "event:wf:on-order:evt-1"
    assert msgids.cron_fire_name("wf", "nightly", AT) == "cron:wf:nightly:2025-03-01T12:30:00Z"
    paris = AT.astimezone(timezone(timedelta(hours=1))) + timedelta(microseconds=250_000)
    assert msgids.fire_stamp(paris) == "2025-03-01T12:30:00.25Z"
