"""The run-lifecycle contract: the NATS implementation (on the session's nats-server, read
directly and through the stream leader) and its in-memory twin start, schedule, wake,
park, cancel, read and await runs the same way."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import errors as js_errors
from nats.js.api import RawStreamMsg
from nats.js.kv import KeyValue

from flowmesh_proto import headers as h
from flowmesh_proto.msgids import park_timer_id, request_msg_id, resume_msg_id, wake_msg_id
from flowmesh_proto.runs import (
    CancelRequest,
    RunEvent,
    RunQueued,
    RunRequest,
    RunScheduled,
    RunStarted,
    RunSucceeded,
    TriggerInfo,
    cancel_request_decoder,
    control_key,
    run_request_decoder,
    run_scheduled,
)
from flowmesh_proto.subjects import StreamNames, Subjects, stream_names
from flowmesh_proto.timers import Timer, delayed_run_timer, park_timer
from flowmesh_shared.jetstream import (
    CONTROL_TTL,
    StreamLimits,
    ensure_bucket,
    provision_streams,
    stream_configs,
)
from flowmesh_shared.runlife import Opening, RunLifecycle, RunTooLarge
from flowmesh_shared.runlife_memory import MemoryRunLifecycle
from flowmesh_shared.runlife_nats import NatsRunLifecycle

pytestmark = pytest.mark.integration

WORKFLOW = "0190f3c2-0000-7000-8000-000000000000"
LIMIT = 64 * 1024


class World(Protocol):
    """A lifecycle and what its messages left behind."""

    life: RunLifecycle

    async def append(self, event: RunEvent) -> int: ...
    async def requests(self, tenant: str) -> list[tuple[str, RunRequest]]: ...
    async def timers(self, tenant: str) -> list[Timer]: ...
    async def recorded_cancel(self, tenant: str, run_id: str) -> CancelRequest | None: ...
    def published_cancels(self) -> list[CancelRequest]: ...


@dataclass
class MemoryWorld:
    life: MemoryRunLifecycle

    async def append(self, event: RunEvent) -> int:
        seq = await self.life.append(event)
        assert seq is not None
        return seq

    async def requests(self, tenant: str) -> list[tuple[str, RunRequest]]:
        return [(r.msg_id, r.request) for r in self.life.requests if r.request.tenant == tenant]

    async def timers(self, tenant: str) -> list[Timer]:
        return [t for t in self.life.timers if t.tenant == tenant]

    async def recorded_cancel(self, tenant: str, run_id: str) -> CancelRequest | None:
        return self.life.control.get(control_key(tenant, run_id))

    def published_cancels(self) -> list[CancelRequest]:
        return list(self.life.cancels)


@dataclass
class NatsWorld:
    life: NatsRunLifecycle
    nc: Client
    subjects: Subjects
    streams: StreamNames
    control: KeyValue
    cancels: list[CancelRequest] = field(default_factory=list)

    async def append(self, event: RunEvent) -> int:
        js = self.nc.jetstream()
        ack = await js.publish(
            self.subjects.run_events(event.tenant, event.run_id),
            msgspec.json.encode(event),
            stream=self.streams.run_events,
        )
        return ack.seq

    async def _read(self, stream: str, subject: str) -> list[RawStreamMsg]:
        """The messages stored on ``subject`` (work queues too: direct gets, no consumer)."""
        js = self.nc.jetstream()
        found: list[RawStreamMsg] = []
        seq = 0
        while True:
            try:
                msg = await js.get_msg(stream, seq=seq + 1, subject=subject, next=True, direct=True)
            except js_errors.NotFoundError:
                return found
            found.append(msg)
            seq = msg.seq or 0

    async def requests(self, tenant: str) -> list[tuple[str, RunRequest]]:
        msgs = await self._read(self.streams.run_requests, self.subjects.run_requests(tenant))
        return [
            ((m.headers or {})[h.MSG_ID], run_request_decoder.decode(m.data or b"")) for m in msgs
        ]

    async def timers(self, tenant: str) -> list[Timer]:
        msgs = await self._read(self.streams.timers, self.subjects.timers(tenant, "delayed_run"))
        msgs += await self._read(self.streams.timers, self.subjects.timers(tenant, "resume"))
        return [msgspec.json.decode(m.data or b"", type=Timer) for m in msgs]

    async def recorded_cancel(self, tenant: str, run_id: str) -> CancelRequest | None:
        try:
            entry = await self.control.get(control_key(tenant, run_id))
        except js_errors.KeyNotFoundError:
            return None
        return cancel_request_decoder.decode(entry.value or b"")

    def published_cancels(self) -> list[CancelRequest]:
        return list(self.cancels)


@dataclass
class Place:
    """Streams of this module's own, so that no executor of another test takes its
    requests (an executor started by an earlier test keeps consuming the session's)."""

    subjects: Subjects
    streams: StreamNames
    control: KeyValue


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def place(nc: Client) -> AsyncIterator[Place]:
    token = secrets.token_hex(4)
    subjects, streams = Subjects(prefix=f"fmrl{token}"), stream_names(f"FMRL{token.upper()}")
    js = nc.jetstream()
    await provision_streams(js, subjects, streams, StreamLimits())
    control = await ensure_bucket(js, streams.run_control, CONTROL_TTL, StreamLimits())
    yield Place(subjects, streams, control)
    for config in stream_configs(subjects, streams, StreamLimits()):
        with contextlib.suppress(js_errors.NotFoundError):
            await js.delete_stream(config.name or "")
    with contextlib.suppress(js_errors.NotFoundError):
        await js.delete_key_value(streams.run_control)


@pytest_asyncio.fixture(params=["nats", "nats-leader", "memory"])
async def world(request: pytest.FixtureRequest, nc: Client, place: Place) -> AsyncIterator[World]:
    if request.param == "memory":
        yield MemoryWorld(MemoryRunLifecycle(max_message_bytes=LIMIT))
        return
    js = nc.jetstream()
    subjects, streams = place.subjects, place.streams
    direct = request.param != "nats-leader"  # reads through the stream leader, as replicated
    life = NatsRunLifecycle(
        nc, js, subjects, streams, place.control, max_message_bytes=LIMIT, direct=direct
    )
    nats_world = NatsWorld(life, nc, subjects, streams, place.control)

    async def heard(msg: Msg) -> None:
        nats_world.cancels.append(cancel_request_decoder.decode(msg.data))

    sub = await nc.subscribe(f"{subjects.prefix}.*.control.*", cb=heard)
    yield nats_world
    await sub.unsubscribe()


def _request(tenant: str, run_id: str | None = None, **extra: Any) -> RunRequest:
    return RunRequest(
        tenant=tenant,
        run_id=run_id or secrets.token_hex(8),
        workflow_id=WORKFLOW,
        version=1,
        trigger=TriggerInfo(kind="api"),
        requested_at=datetime.now(UTC),
        **{"input": {"n": 1}, **extra},
    )


def _tenant() -> str:
    return f"t{secrets.token_hex(4)}"


def _started(request: RunRequest) -> RunStarted:
    return RunStarted(
        tenant=request.tenant,
        run_id=request.run_id,
        workflow_id=WORKFLOW,
        version=1,
        at=datetime.now(UTC),
    )


def _succeeded(request: RunRequest) -> RunSucceeded:
    return RunSucceeded(
        tenant=request.tenant,
        run_id=request.run_id,
        workflow_id=WORKFLOW,
        version=1,
        at=datetime.now(UTC),
        output={"ok": True},
    )


async def test_start_opens_the_run_then_sends_its_request(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)
    assert await world.life.start(request, datetime.now(UTC)) is Opening.OPENED
    last = await world.life.last(tenant, request.run_id)
    assert last is not None and isinstance(last.event, RunQueued) and last.seq > 0
    assert last.event.input == request.input
    assert await world.requests(tenant) == [(request_msg_id(request.run_id), request)]


async def test_a_taken_subject_resends_the_request_while_the_run_is_only_queued(
    world: World,
) -> None:
    tenant = _tenant()
    request = _request(tenant)
    await world.life.start(request, datetime.now(UTC))
    again = _request(tenant, request.run_id, idempotency_key="k")
    assert await world.life.start(again, datetime.now(UTC)) is Opening.RESENT
    # The same message id: the stored request stays the only one.
    assert [msg_id for msg_id, _ in await world.requests(tenant)] == [request.run_id]

    await world.append(_started(request))
    assert await world.life.start(again, datetime.now(UTC)) is Opening.TAKEN
    last = await world.life.last(tenant, request.run_id)
    assert last is not None and isinstance(last.event, RunStarted)


async def test_a_start_too_large_for_nats_opens_nothing(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant, input={"blob": "x" * LIMIT})
    with pytest.raises(RunTooLarge):
        await world.life.start(request, datetime.now(UTC))
    assert await world.life.last(tenant, request.run_id) is None
    assert await world.requests(tenant) == []


async def test_a_schedule_too_large_for_its_timer_opens_nothing(world: World) -> None:
    tenant = _tenant()
    run_at = datetime.now(UTC) + timedelta(hours=1)
    small = _request(tenant, run_at=run_at, input={"blob": ""})
    opening = len(msgspec.json.encode(run_scheduled(small, run_at)))
    timer = len(msgspec.json.encode(delayed_run_timer(small, run_at)))
    assert timer > opening  # a blob that fits the opening but not the timer:
    blob = "x" * (LIMIT - (opening + timer) // 2)
    request = _request(tenant, small.run_id, run_at=run_at, input={"blob": blob})
    with pytest.raises(RunTooLarge):
        await world.life.schedule(request, datetime.now(UTC))
    assert await world.life.last(tenant, request.run_id) is None
    assert await world.timers(tenant) == []


async def test_schedule_opens_the_run_then_sets_its_timer(world: World) -> None:
    tenant = _tenant()
    run_at = datetime.now(UTC) + timedelta(hours=1)
    request = _request(tenant, run_at=run_at)
    assert await world.life.schedule(request, datetime.now(UTC)) is Opening.OPENED
    last = await world.life.last(tenant, request.run_id)
    assert last is not None and isinstance(last.event, RunScheduled)
    timers = await world.timers(tenant)
    assert [(t.id, t.due, t.request) for t in timers] == [(request.run_id, run_at, request)]
    assert await world.requests(tenant) == []


async def test_wake_sends_the_request_again_under_the_callers_id(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)
    assert not await world.life.wake(tenant, request.run_id, "wake:nothing")
    await world.life.start(request, datetime.now(UTC))
    seq = await world.append(_started(request))
    assert await world.life.wake(tenant, request.run_id, wake_msg_id(request.run_id, seq))
    assert await world.life.wake(tenant, request.run_id, wake_msg_id(request.run_id, seq))
    sent = await world.requests(tenant)
    assert [msg_id for msg_id, _ in sent] == [request.run_id, wake_msg_id(request.run_id, seq)]
    assert sent[1][1].run_id == request.run_id and sent[1][1].input == request.input


async def test_park_sets_one_timer_per_park_that_resumes_the_run_once(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)
    await world.life.start(request, datetime.now(UTC))
    first = await world.append(_started(request))
    due = datetime.now(UTC) + timedelta(hours=1)
    await world.life.park(request, first, due)
    await world.life.park(request, first, due)  # the same park again: stored once
    later = await world.append(_started(request))
    await world.life.park(request, later, due + timedelta(hours=1))
    timers = await world.timers(tenant)
    names = [park_timer_id(request.run_id, first), park_timer_id(request.run_id, later)]
    assert [(t.id, t.purpose, t.request, t.request_msg_id) for t in timers] == [
        (names[0], "resume", request, resume_msg_id(names[0])),
        (names[1], "resume", request, resume_msg_id(names[1])),
    ]
    assert [t.due for t in timers] == [due, due + timedelta(hours=1)]
    # Parking sends no request: the timer does, when due.
    assert [msg_id for msg_id, _ in await world.requests(tenant)] == [request.run_id]


async def test_a_park_too_large_for_its_timer_sets_nothing(world: World) -> None:
    tenant = _tenant()
    due = datetime.now(UTC) + timedelta(hours=1)
    small = _request(tenant, input={"blob": ""})
    sizes = len(msgspec.json.encode(small)), len(msgspec.json.encode(park_timer(small, 7, due)))
    request = _request(tenant, small.run_id, input={"blob": "x" * (LIMIT - sum(sizes) // 2)})
    assert len(msgspec.json.encode(request)) < LIMIT  # the request fits, its timer does not
    with pytest.raises(RunTooLarge):
        await world.life.park(request, 7, due)
    assert await world.timers(tenant) == []


async def test_cancel_is_recorded_then_published(world: World) -> None:
    tenant = _tenant()
    cancel = CancelRequest(tenant=tenant, run_id="r1", reason="enough", by="user:a")
    await world.life.cancel(cancel)
    assert await world.recorded_cancel(tenant, "r1") == cancel
    for _ in range(100):
        if cancel in world.published_cancels():
            break
        await asyncio.sleep(0.01)
    assert cancel in world.published_cancels()


async def test_a_run_only_scheduled_is_cancelled_fenced_on_its_opening(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant, run_at=datetime.now(UTC) + timedelta(hours=1))
    await world.life.schedule(request, datetime.now(UTC))
    scheduled = await world.life.last(tenant, request.run_id)
    assert scheduled is not None
    cancel = CancelRequest(tenant=tenant, run_id=request.run_id, reason="no longer")
    assert await world.life.cancel_scheduled(scheduled, cancel)
    last = await world.life.last(tenant, request.run_id)
    assert last is not None and last.final_status == "cancelled"
    assert not await world.life.cancel_scheduled(scheduled, cancel)  # it moved on


async def test_last_and_replay_follow_the_stream(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)
    assert await world.life.last(tenant, request.run_id) is None
    await world.life.start(request, datetime.now(UTC))
    started = await world.append(_started(request))
    ended = await world.append(_succeeded(request))
    last = await world.life.last(tenant, request.run_id)
    assert last is not None and last.seq == ended and last.final_status == "succeeded"
    kinds = [type(e) for e in await world.life.replay(tenant, request.run_id, started)]
    assert kinds == [RunQueued, RunStarted]
    kinds = [type(e) for e in await world.life.replay(tenant, request.run_id, ended)]
    assert kinds == [RunQueued, RunStarted, RunSucceeded]


async def test_history_is_every_event_and_the_last_sequence(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)
    assert await world.life.history(tenant, request.run_id) == ([], 0)
    await world.life.start(request, datetime.now(UTC))
    events, seq = await world.life.history(tenant, request.run_id)
    assert [type(e) for e in events] == [RunQueued] and seq > 0
    ended = await world.append(_started(request))
    events, seq = await world.life.history(tenant, request.run_id)
    assert [type(e) for e in events] == [RunQueued, RunStarted] and seq == ended


async def test_await_end_returns_the_stored_terminal_event_or_none(world: World) -> None:
    tenant = _tenant()
    request = _request(tenant)

    async def begin() -> None:
        await world.life.start(request, datetime.now(UTC))

    assert await world.life.await_end(tenant, request.run_id, 0.2, before=begin) is None

    async def finish_soon() -> None:
        await asyncio.sleep(0.05)
        await world.append(_succeeded(request))

    task = asyncio.create_task(finish_soon())
    last = await world.life.await_end(tenant, request.run_id, 5)
    await task
    assert last is not None and isinstance(last.event, RunSucceeded)
    # An ended run answers at once, even without a deadline.
    again = await asyncio.wait_for(world.life.await_end(tenant, request.run_id, None), 1)
    assert again == last
