"""Why a queued run waits, as the gateway tells it (flowmesh_gateway.waiting): the pure
decision, the computed SSE events of a queued run's stream, and the tenant's intake read
once for a burst of questions (flowmesh_gateway.runs.Runs.tenant_runs). No server."""

from __future__ import annotations

import asyncio
import math
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, cast

import msgspec
import pytest
from nats.js import errors as js_errors

from flowmesh_gateway.runs import Runs
from flowmesh_gateway.sse import notice
from flowmesh_gateway.waiting import WaitingNotices, waiting_reason
from flowmesh_proto.http import TenantRuns
from flowmesh_proto.runs import RunQueued, RunWaiting, TriggerInfo, Waiting, run_event_decoder
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.errors import FlowmeshError, Unavailable
from flowmesh_shared.jetstream import CONSUMER_NOT_FOUND

T0 = datetime(2026, 5, 6, 7, 8, 9, tzinfo=UTC)
QUEUED = RunQueued(
    tenant="acme",
    run_id="0190f5a4-0000-7000-8000-000000000001",
    workflow_id="0190f5a4-0000-7000-8000-0000000000ff",
    version=2,
    at=T0,
    trigger=TriggerInfo(kind="api"),
)


def test_a_tenant_at_its_max_running_waits_for_itself_else_for_capacity() -> None:
    assert waiting_reason(0, None, T0) == Waiting(reason="capacity", since=T0)
    assert waiting_reason(10**6, None, T0).reason == "capacity"  # no limit of its own
    assert waiting_reason(2, 3, T0).reason == "capacity"
    assert waiting_reason(3, 3, T0) == Waiting(reason="tenant_max_running", since=T0)
    assert waiting_reason(4, 3, T0).reason == "tenant_max_running"  # lowered meanwhile


def test_a_notice_is_an_event_with_no_id() -> None:
    assert notice("run.waiting", b'{"a":1}') == b'event: run.waiting\ndata: {"a":1}\n\n'
    assert notice("run.waiting", b"{\n}") == b"event: run.waiting\ndata: {\ndata: }\n\n"


class Probe:
    def __init__(self, *answers: Waiting | FlowmeshError) -> None:
        self.answers = list(answers)
        self.asked = 0

    async def __call__(self) -> Waiting:
        answer = self.answers[min(self.asked, len(self.answers) - 1)]
        self.asked += 1
        if isinstance(answer, FlowmeshError):
            raise answer
        return answer


def said(chunk: bytes) -> RunWaiting:
    lines = chunk.decode().split("\n")
    assert lines[0] == "event: run.waiting" and not any(line.startswith("id:") for line in lines)
    event = run_event_decoder.decode(lines[1].removeprefix("data: "))
    assert isinstance(event, RunWaiting)
    return event


async def test_notices_say_why_after_the_run_queued_and_again_when_it_changes() -> None:
    capacity = Waiting(reason="capacity", since=T0)
    held = Waiting(reason="tenant_max_running", since=T0)
    probe = Probe(capacity, capacity, held, Unavailable("no JetStream"), held, capacity)
    notices = WaitingNotices(QUEUED, 7, probe, every=2.0)
    assert notices.due == 0.0
    assert await notices.next(0, 100.0) == b""  # its run.queued is not sent yet
    assert notices.due == math.inf and probe.asked == 0
    first = said(await notices.next(7, 100.0))
    assert (first.reason, first.since, first.run_id) == ("capacity", T0, QUEUED.run_id)
    assert (first.workflow_id, first.version, first.tenant) == (QUEUED.workflow_id, 2, "acme")
    assert notices.due == 102.0
    assert await notices.next(7, 101.0) == b"" and probe.asked == 1  # not due: not asked
    assert await notices.next(7, 102.0) == b"" and probe.asked == 2  # the same reason
    assert said(await notices.next(7, 104.0)).reason == "tenant_max_running"
    assert await notices.next(7, 106.0) == b""  # a failed look says nothing
    assert await notices.next(7, 108.0) == b"" and probe.asked == 5  # nor does the same again
    assert said(await notices.next(7, 110.0)).reason == "capacity"
    assert await notices.next(8, 200.0) == b""  # the run moved on: its events say the rest
    assert notices.due == math.inf and probe.asked == 6


class Intake:
    """A JetStream context whose consumer info is counted, slow, and scripted."""

    def __init__(self, *answers: Any) -> None:
        self.answers = list(answers)
        self.calls = 0

    async def consumer_info(self, stream: str, name: str) -> Any:
        answer = self.answers[min(self.calls, len(self.answers) - 1)]
        self.calls += 1
        await asyncio.sleep(0.01)
        if isinstance(answer, Exception):
            raise answer
        return answer


def runs_over(js: Intake, intake_cache: float = 1.0) -> Runs:
    nothing = cast(Any, None)
    return Runs(
        nothing,
        cast(Any, js),
        Subjects("fm"),
        stream_names("FM"),
        nothing,
        nothing,
        read_timeout=1.0,
        max_message_bytes=1 << 20,
        life=nothing,
        intake_cache=intake_cache,
    )


def info(pending: int, ack_pending: int, limit: int = -1) -> Any:
    config = SimpleNamespace(max_ack_pending=limit)
    return SimpleNamespace(num_pending=pending, num_ack_pending=ack_pending, config=config)


async def test_a_burst_of_questions_asks_jetstream_once() -> None:
    js = Intake(info(5, 2, limit=2), info(1, 3))
    runs = runs_over(js, intake_cache=60.0)
    answers = await asyncio.gather(*(runs.tenant_runs("acme", fresh=60.0) for _ in range(50)))
    assert set(answers) == {TenantRuns(queued=5, running=2, max_running=2)} and js.calls == 1
    waits = await asyncio.gather(*(runs.waiting("acme", T0) for _ in range(20)))
    assert {w.reason for w in waits} == {"tenant_max_running"} and js.calls == 1
    assert await runs.tenant_runs("acme") == TenantRuns(queued=1, running=3)  # fresh: asks
    assert js.calls == 2
    await runs.tenant_runs("other", fresh=60.0)
    assert js.calls == 3  # per tenant


async def test_no_consumer_is_no_run_and_failures_are_not_kept() -> None:
    missing = js_errors.NotFoundError(err_code=CONSUMER_NOT_FOUND, description="not found")
    stream_gone = js_errors.NotFoundError(err_code=10059, description="stream not found")
    js = Intake(missing, stream_gone, TimeoutError(), info(0, 1))
    runs = runs_over(js)
    assert await runs.tenant_runs("acme") == TenantRuns(queued=0, running=0)
    with pytest.raises(Unavailable):
        await runs.tenant_runs("acme")
    with pytest.raises(Unavailable):  # a failure is not an answer to use again
        await runs.tenant_runs("acme", fresh=60.0)
    assert await runs.tenant_runs("acme", fresh=60.0) == TenantRuns(queued=0, running=1)
    assert js.calls == 4


async def test_a_caller_that_leaves_does_not_cancel_the_others_answer() -> None:
    js = Intake(info(2, 0))
    runs = runs_over(js)
    first = asyncio.create_task(runs.tenant_runs("acme", fresh=1.0))
    second = asyncio.create_task(runs.tenant_runs("acme", fresh=1.0))
    await asyncio.sleep(0)
    first.cancel()
    assert await second == TenantRuns(queued=2, running=0) and js.calls == 1


def test_a_waiting_event_is_json_of_its_kind() -> None:
    event = RunWaiting(
        tenant="acme",
        run_id=QUEUED.run_id,
        workflow_id=QUEUED.workflow_id,
        version=2,
        at=T0 + timedelta(seconds=1),
        reason="capacity",
        since=T0,
    )
    document = msgspec.json.decode(msgspec.json.encode(event))
    assert document["kind"] == "run.waiting" and document["reason"] == "capacity"
