"""The scheduler's fires start runs through the run lifecycle, on its in-memory twin
(:class:`~flowmesh_shared.runlife_memory.MemoryRunLifecycle`): every replica firing the
same tick names the same run, and the run gets one request."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flowmesh_proto.msgids import cron_fire_name, request_msg_id
from flowmesh_proto.runs import RunQueued, RunStarted, TriggerInfo
from flowmesh_proto.timers import derived_run_id
from flowmesh_scheduler.firing import Fire, Starter
from flowmesh_shared.runlife_memory import MemoryRunLifecycle

AT = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
WF = "0190f3c2-0000-7000-8000-000000000001"


def _fire(at: datetime = AT) -> Fire:
    return Fire(
        tenant="acme",
        workflow_id=WF,
        version=2,
        name=cron_fire_name(WF, "nightly", at),
        at=at,
        trigger=TriggerInfo(kind="cron", data={"scheduled_for": at.isoformat()}),
        input={"n": 1},
    )


async def test_replicas_firing_one_tick_start_one_run_with_one_request() -> None:
    life = MemoryRunLifecycle()
    first, second = Starter(life), Starter(life)  # two replicas, one stream
    trace = {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}
    run_id = await first.start(_fire(), trace)
    assert run_id == derived_run_id(_fire().name, AT)
    assert await second.start(_fire()) == run_id  # the subject is taken, the request resent
    assert [(s.msg_id, s.request.run_id) for s in life.requests] == [
        (request_msg_id(run_id), run_id)
    ]
    assert life.requests[0].trace == trace
    sent = life.requests[0].request
    assert (sent.workflow_id, sent.version, sent.input) == (WF, 2, {"n": 1})
    assert sent.trigger == _fire().trigger
    opened = await life.last("acme", run_id)
    assert opened is not None and isinstance(opened.event, RunQueued)
    assert opened.event.trigger.kind == "cron" and opened.event.input == {"n": 1}


async def test_a_tick_fired_after_its_run_moved_on_sends_nothing() -> None:
    life = MemoryRunLifecycle()
    starter = Starter(life)
    run_id = await starter.start(_fire())
    await life.append(RunStarted(tenant="acme", run_id=run_id, workflow_id=WF, version=2, at=AT))
    assert await starter.start(_fire()) == run_id
    assert len(life.requests) == 1
    later = await starter.start(_fire(AT + timedelta(days=1)))  # the next tick: a new run
    assert later != run_id and [s.request.run_id for s in life.requests] == [run_id, later]
