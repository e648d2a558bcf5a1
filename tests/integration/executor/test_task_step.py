"""``task`` steps against real NATS, served by the worker SDK."""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, cast

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client

from flowmesh_devtools.localstack import NatsHandle
from flowmesh_executor.nodes import task
from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.tasks import (
    REPLY_TO,
    TaskHeartbeat,
    TaskRequest,
    TaskResult,
    task_reply_decoder,
)
from flowmesh_proto.workflow import TaskNode, TaskParameters
from flowmesh_shared.jetstream import StreamLimits, provision_streams
from flowmesh_shared.natsconn import connect, drain
from flowmesh_worker import TaskContext, Worker
from tests.helpers import until

TENANT = "acme"


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def services(nc: Client, subjects: Subjects, streams: StreamNames) -> StepServices:
    js = nc.jetstream()
    await provision_streams(js, subjects, streams, StreamLimits())
    stand_in = cast(Any, None)  # what task steps never use
    return StepServices(
        nc=nc,
        js=js,
        subjects=subjects,
        streams=streams,
        settings=ExecutorSettings(),
        http=stand_in,
        waits=stand_in,
        children=stand_in,
        definitions=stand_in,
        event_ids=stand_in,
    )


@pytest.fixture
def queue() -> str:
    return f"q-{secrets.token_hex(4)}"


def step(queue: str, *, attempt: int = 1, **parameters: Any) -> StepCall:
    run_id = f"run-{secrets.token_hex(6)}"
    return StepCall(
        tenant=TENANT,
        run_id=run_id,
        workflow_id="wf-1",
        version=3,
        node=TaskNode(id="ship", parameters=TaskParameters(queue=queue)),
        attempt=attempt,
        idempotency_key=f"{run_id}:ship",
        parameters={"queue": queue, **parameters},
        variables={},
        started_at=datetime.now(UTC),
        deadline=None,
        secrets={},
    )


def worker_for(nc: Client, subjects: Subjects, streams: StreamNames, **options: Any) -> Worker:
    options.setdefault("poll_interval", 0.2)
    return Worker(nc, tenant=TENANT, prefix=subjects.prefix, stream=streams.tasks, **options)


async def queued(nc: Client, streams: StreamNames, subject: str) -> int:
    """Messages waiting in the tasks stream on ``subject``."""
    info = await nc.jetstream().stream_info(streams.tasks, subjects_filter=subject)
    return int((info.state.subjects or {}).get(subject, 0))


async def empty(nc: Client, streams: StreamNames, subject: str) -> bool:
    return await queued(nc, streams, subject) == 0


@pytest_asyncio.fixture(loop_scope="session")
async def second_nc(nats_server: NatsHandle) -> AsyncIterator[Client]:
    client = await connect(nats_server.url, "flowmesh-tests-worker")
    try:
        yield client
    finally:
        await drain(client, 5.0)


async def test_the_worker_result_is_the_output(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    seen: list[TaskContext] = []
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def echo(input: Any, ctx: TaskContext) -> Any:
        seen.append(ctx)
        return {"echo": input, "key": ctx.idempotency_key}

    call = step(queue, input={"order": 42}, attempt=2)
    async with worker:
        output = await task.run(call, services)

    assert output == {"echo": {"order": 42}, "key": call.idempotency_key}
    [ctx] = seen
    assert (ctx.tenant, ctx.queue, ctx.run_id, ctx.node_id) == (TENANT, queue, call.run_id, "ship")
    assert (ctx.workflow_id, ctx.version, ctx.attempt, ctx.delivery) == ("wf-1", 3, 2, 1)
    await until(lambda: empty(nc, streams, subjects.tasks(TENANT, queue)), message="acked")


async def test_a_worker_exception_fails_the_step_with_its_class(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def refuse(input: Any, ctx: TaskContext) -> Any:
        raise LookupError(f"no such order {input['order']}")

    async with worker:
        with pytest.raises(StepError) as failure:
            await task.run(step(queue, input={"order": 7}), services)

    assert failure.value.error_class == "LookupError"
    assert failure.value.message == "no such order 7"


async def test_an_output_that_is_not_json_fails_the_step(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def opaque(input: Any, ctx: TaskContext) -> Any:
        return {"thing": object()}

    async with worker:
        with pytest.raises(StepError) as failure:
            await task.run(step(queue), services)

    assert failure.value.error_class == "OutputNotJson"


async def test_a_slow_worker_times_the_task_out(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    started, release = asyncio.Event(), asyncio.Event()
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def slow(input: Any, ctx: TaskContext) -> Any:
        started.set()
        await release.wait()
        return "too late"

    loop = asyncio.get_running_loop()
    async with worker:
        began = loop.time()
        with pytest.raises(StepError) as failure:
            await task.run(step(queue, timeout="PT0.5S"), services)
        elapsed = loop.time() - began
        assert started.is_set()  # the worker had it: the timeout cut a running task
        release.set()

    assert failure.value.error_class == "TaskTimeout"
    assert 0.5 <= elapsed < 3.0


@pytest.mark.parametrize(
    ("parameters", "problem"),
    [
        ({"queue": "a.b"}, "queue"),
        ({"queue": ""}, "queue"),
        ({"queue": "fine", "timeout": "5 seconds"}, "ISO 8601"),
    ],
)
async def test_invalid_parameters_fail_before_anything_is_queued(
    services: StepServices, parameters: dict[str, Any], problem: str
) -> None:
    call = dataclasses.replace(step("fine"), parameters=parameters)

    with pytest.raises(StepError) as failure:
        await task.run(call, services)

    assert failure.value.error_class == "InvalidParameters"
    assert problem in failure.value.message


async def test_a_task_waits_in_the_queue_for_a_worker_that_comes_later(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    running = asyncio.create_task(task.run(step(queue, input=5), services))
    subject = subjects.tasks(TENANT, queue)
    try:
        await until(lambda: queued(nc, streams, subject), message="the task is queued")
        assert not running.done()
        worker = worker_for(nc, subjects, streams)

        @worker.task(queue)
        async def double(input: Any, ctx: TaskContext) -> Any:
            return input * 2

        async with worker:
            assert await asyncio.wait_for(running, 5) == 10
    finally:
        running.cancel()


async def test_a_re_run_of_one_attempt_reaches_a_worker_again(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    """An executor died waiting (its request still queued): the next one's request is not
    deduplicated against it, so it gets an answer on its own inbox."""
    call = step(queue)
    first = asyncio.create_task(task.run(call, services))
    subject = subjects.tasks(TENANT, queue)
    await until(lambda: queued(nc, streams, subject), message="the first request is queued")
    first.cancel()
    served: list[str] = []
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def record(input: Any, ctx: TaskContext) -> Any:
        served.append(ctx.idempotency_key)
        return len(served)

    async with worker:
        output = await asyncio.wait_for(task.run(call, services), 5)
        await until(lambda: len(served) == 2, message="both requests served")

    assert output in (1, 2)
    assert served == [call.idempotency_key] * 2  # at least once: both executions' requests


async def test_heartbeats_keep_a_task_longer_than_ack_wait_with_its_worker(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    services = dataclasses.replace(services, settings=ExecutorSettings(task_ack_wait=1.0))
    deliveries: list[int] = []
    worker = worker_for(nc, subjects, streams, heartbeat_interval=0.3)

    @worker.task(queue)
    async def long(input: Any, ctx: TaskContext) -> Any:
        deliveries.append(ctx.delivery)
        await asyncio.sleep(2.5)  # the work itself: longer than ack_wait
        return "done"

    async with worker:
        output = await task.run(step(queue), services)

    assert output == "done"
    assert deliveries == [1]  # never redelivered while it ran


async def test_the_worker_heartbeats_to_the_reply_subject_then_answers(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    release = asyncio.Event()
    worker = worker_for(nc, subjects, streams, heartbeat_interval=0.1)

    @worker.task(queue)
    async def held(input: Any, ctx: TaskContext) -> Any:
        await release.wait()
        return "ok"

    inbox = nc.new_inbox()
    replies: list[Any] = []

    async def collect(msg: Any) -> None:
        replies.append(task_reply_decoder.decode(msg.data))

    sub = await nc.subscribe(inbox, cb=collect)
    subject = subjects.tasks(TENANT, queue)
    await task.ensure_consumer(services, TENANT, queue, subject)
    request = TaskRequest(
        tenant=TENANT,
        queue=queue,
        run_id="r1",
        workflow_id="wf",
        version=1,
        node_id="ship",
        attempt=1,
        idempotency_key="r1:ship",
    )
    try:
        async with worker:
            await nc.jetstream().publish(
                subject,
                msgspec.json.encode(request),
                headers={REPLY_TO: inbox},
            )
            await until(lambda: len(replies) >= 3, message="heartbeats arrive")
            release.set()
            await until(lambda: any(isinstance(r, TaskResult) for r in replies))
    finally:
        await sub.unsubscribe()

    *beats, result = replies
    assert all(isinstance(b, TaskHeartbeat) and b.idempotency_key == "r1:ship" for b in beats)
    assert result == TaskResult(idempotency_key="r1:ship", attempt=1, output="ok")


async def test_two_workers_share_a_queue_and_serve_each_task_once(
    nc: Client,
    second_nc: Client,
    subjects: Subjects,
    streams: StreamNames,
    services: StepServices,
    queue: str,
) -> None:
    gate = asyncio.Event()
    served: dict[str, list[str]] = {"a": [], "b": []}
    workers = []
    for name, client in (("a", nc), ("b", second_nc)):
        worker = worker_for(client, subjects, streams, concurrency=1)

        @worker.task(queue)
        async def serve(input: Any, ctx: TaskContext, name: str = name) -> Any:
            served[name].append(ctx.idempotency_key)
            await gate.wait()
            return name

        workers.append(worker)

    calls = [step(queue) for _ in range(6)]
    async with workers[0], workers[1]:
        running = [asyncio.create_task(task.run(call, services)) for call in calls]
        # One task at a time each: two are running only if both workers took one.
        await until(lambda: served["a"] and served["b"], message="both workers busy")
        gate.set()
        outputs = await asyncio.wait_for(asyncio.gather(*running), 10)

    keys = served["a"] + served["b"]
    assert sorted(keys) == sorted(call.idempotency_key for call in calls)  # each once
    assert outputs == ["a" if call.idempotency_key in served["a"] else "b" for call in calls]


async def test_stopping_a_worker_hands_its_running_task_to_another(
    nc: Client,
    second_nc: Client,
    subjects: Subjects,
    streams: StreamNames,
    services: StepServices,
    queue: str,
) -> None:
    started, cancelled = asyncio.Event(), asyncio.Event()
    first = worker_for(nc, subjects, streams, stop_grace=0.1)  # ack_wait stays 30 s

    @first.task(queue)
    async def stuck(input: Any, ctx: TaskContext) -> Any:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    running = asyncio.create_task(task.run(step(queue), services))
    try:
        await first.start()
        await until(started.is_set, message="the first worker runs it")
        await first.stop()
        assert cancelled.is_set()
        deliveries: list[int] = []
        second = worker_for(second_nc, subjects, streams)

        @second.task(queue)
        async def finish(input: Any, ctx: TaskContext) -> Any:
            deliveries.append(ctx.delivery)
            return "finished elsewhere"

        async with second:
            # Well within ack_wait: only the nak explains a redelivery this soon.
            assert await asyncio.wait_for(running, 5) == "finished elsewhere"
        assert deliveries == [2]
    finally:
        running.cancel()


async def test_an_undecodable_request_is_dropped_without_stopping_the_queue(
    nc: Client, subjects: Subjects, streams: StreamNames, services: StepServices, queue: str
) -> None:
    subject = subjects.tasks(TENANT, queue)
    await nc.jetstream().publish(subject, b"not json", headers={REPLY_TO: nc.new_inbox()})
    worker = worker_for(nc, subjects, streams)

    @worker.task(queue)
    async def fine(input: Any, ctx: TaskContext) -> Any:
        return "fine"

    async with worker:
        assert await task.run(step(queue), services) == "fine"
        await until(lambda: empty(nc, streams, subject), message="the bad request is gone")
