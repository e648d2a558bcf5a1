"""Request/reply over real NATS: results, errors, bad input, headers, traces, bounds."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client
from opentelemetry import context as otel_context
from prometheus_client import CollectorRegistry

from flowmesh_devtools.localstack import NatsHandle
from flowmesh_proto import headers as h
from flowmesh_proto.errors import ErrorCode, Problem
from flowmesh_proto.operations import Request
from flowmesh_proto.subjects import Subjects
from flowmesh_shared.errors import FlowmeshError, NotFound, RemoteError, Unavailable
from flowmesh_shared.health import RpcMetrics
from flowmesh_shared.lifecycle import run_service
from flowmesh_shared.natsconn import connect, drain
from flowmesh_shared.rpc import CallContext, RpcClient, RpcService
from flowmesh_shared.telemetry import extract
from tests.helpers import until

pytestmark = pytest.mark.integration

SERVICE = "echo"
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE_ID}-b7ad6b7169203331-01"


class Inner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    count: int


class Echo(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    text: str
    inner: Inner | None = None


class Echoed(msgspec.Struct, frozen=True, kw_only=True):
    text: str
    tenant: str | None
    principal: str | None
    request_id: str
    trace_id: str | None


class EchoCall(Request[Echoed], frozen=True):
    """``echo`` as a typed operation: :meth:`RpcClient.call` needs no name nor reply type."""

    operation = "echo"

    text: str


def header(reply: Any, name: str) -> str | None:
    headers: dict[str, str] = reply.headers or {}
    return headers.get(name)


class Gate:
    """Holds ``hold`` requests until opened; counts who is waiting."""

    def __init__(self) -> None:
        self.open = asyncio.Event()
        self.waiting = 0


def echoed(request: Echo, ctx: CallContext) -> Echoed:
    return Echoed(
        text=request.text,
        tenant=ctx.tenant,
        principal=None if ctx.principal is None else str(ctx.principal),
        request_id=ctx.request_id,
        trace_id=ctx.trace_id,
    )


def build_service(nc: Client, subjects: Subjects, gate: Gate, **options: object) -> RpcService:
    service = RpcService(nc, subjects, service=options.pop("name", SERVICE), **options)  # type: ignore[arg-type]

    async def echo(request: Echo, ctx: CallContext) -> Echoed:
        return echoed(request, ctx)

    async def hold(request: Echo, ctx: CallContext) -> Echoed:
        gate.waiting += 1
        try:
            await gate.open.wait()
        finally:
            gate.waiting -= 1
        return echoed(request, ctx)

    async def missing(request: Echo, ctx: CallContext) -> Echoed:
        raise NotFound(f"workflow {request.text} was not found", code=ErrorCode.WORKFLOW_NOT_FOUND)

    async def crash(request: Echo, ctx: CallContext) -> Echoed:
        raise RuntimeError("database password is hunter2")

    for name, handler in [("echo", echo), ("hold", hold), ("missing", missing), ("crash", crash)]:
        service.add(name, Echo, handler)
    return service


class Served(msgspec.Struct, kw_only=True):
    client: RpcClient
    gate: Gate
    metrics: CollectorRegistry


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def served(nc: Client, subjects: Subjects) -> AsyncIterator[Served]:
    gate, registry = Gate(), CollectorRegistry()
    service = build_service(nc, subjects, gate, metrics=RpcMetrics(registry))
    await service.start()
    try:
        yield Served(client=RpcClient(nc, subjects, service=SERVICE), gate=gate, metrics=registry)
    finally:
        gate.open.set()
        await service.stop(5.0)


async def test_round_trip(served: Served) -> None:
    result = await served.client.call(EchoCall(text="hello"))
    assert isinstance(result, Echoed)
    assert result.text == "hello"
    count = served.metrics.get_sample_value(
        "flowmesh_rpc_requests_total", {"service": SERVICE, "operation": "echo", "outcome": "ok"}
    )
    assert count is not None
    assert count >= 1


async def test_headers_arrive_in_the_context(served: Served) -> None:
    result = await served.client.send(
        "echo",
        Echo(text="who"),
        Echoed,
        tenant="acme",
        principal="key:acme:k1",
        request_id="req-123",
    )
    assert (result.tenant, result.principal, result.request_id) == (
        "acme",
        "key:acme:k1",
        "req-123",
    )


async def test_a_request_id_is_made_up_when_absent(
    nc: Client, subjects: Subjects, served: Served
) -> None:
    reply = await nc.request(subjects.rpc(SERVICE, "echo"), b'{"text": "x"}', timeout=5)
    result = msgspec.json.decode(reply.data, type=Echoed)
    assert result.request_id
    assert header(reply, h.REQUEST_ID) == result.request_id


async def test_traceparent_continues_the_callers_trace(served: Served) -> None:
    token = otel_context.attach(extract({h.TRACEPARENT: TRACEPARENT}))
    try:
        result = await served.client.send("echo", Echo(text="traced"), Echoed)
    finally:
        otel_context.detach(token)
    assert result.trace_id == TRACE_ID


async def test_a_slow_request_does_not_block_a_fast_one(served: Served) -> None:
    served.gate.open.clear()
    slow = asyncio.create_task(served.client.send("hold", Echo(text="slow"), Echoed))
    try:
        await until(lambda: served.gate.waiting == 1, timeout=5)
        fast = await served.client.send("echo", Echo(text="fast"), Echoed, timeout=2)
        assert fast.text == "fast"
        assert not slow.done()
    finally:
        served.gate.open.set()
    assert (await slow).text == "slow"


async def test_flowmesh_error_becomes_its_problem(
    nc: Client, subjects: Subjects, served: Served
) -> None:
    with pytest.raises(RemoteError) as caught:
        await served.client.send("missing", Echo(text="w1"), Echoed, request_id="req-404")
    problem = caught.value.problem
    assert (problem.code, problem.status, problem.request_id) == (
        "WORKFLOW_NOT_FOUND",
        404,
        "req-404",
    )
    assert caught.value.code is ErrorCode.WORKFLOW_NOT_FOUND
    assert "w1" in problem.detail
    reply = await nc.request(subjects.rpc(SERVICE, "missing"), b'{"text": "w2"}', timeout=5)
    assert header(reply, h.SERVICE_ERROR_CODE) == "404"
    assert header(reply, h.SERVICE_ERROR) == problem.title


async def test_unexpected_exception_is_internal_without_details(
    nc: Client, subjects: Subjects, served: Served
) -> None:
    reply = await nc.request(subjects.rpc(SERVICE, "crash"), b'{"text": "x"}', timeout=5)
    assert header(reply, h.SERVICE_ERROR_CODE) == "500"
    problem = msgspec.json.decode(reply.data, type=Problem)
    assert problem.code == "INTERNAL"
    for leak in (b"hunter2", b"Traceback", b"RuntimeError"):
        assert leak not in reply.data
    assert (await served.client.send("echo", Echo(text="alive"), Echoed)).text == "alive"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        (b"{not json", ""),
        (b"", ""),
        (b"[]", ""),
        (b'{"text": "x", "surprise": 1}', "surprise"),
        (b'{"text": 5}', "text"),
        (b'{"text": "x", "inner": {"count": "many"}}', "inner.count"),
        (b'{"text": "x", "inner": {"count": 1, "extra": 2}}', "inner.extra"),
    ],
)
async def test_bad_bodies_are_validation_failed_with_a_path(
    nc: Client, subjects: Subjects, served: Served, body: bytes, path: str
) -> None:
    reply = await nc.request(subjects.rpc(SERVICE, "echo"), body, timeout=5)
    assert header(reply, h.SERVICE_ERROR_CODE) == "422"
    problem = msgspec.json.decode(reply.data, type=Problem)
    assert problem.code == "VALIDATION_FAILED"
    assert [item.path for item in problem.errors] == [path]


@pytest.mark.parametrize("tenant", ["a.>", "*", "rpc", "Upper"])
async def test_invalid_tenant_header_is_refused(served: Served, tenant: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await served.client.send("echo", Echo(text="x"), Echoed, tenant=tenant)
    assert caught.value.problem.code == "VALIDATION_FAILED"
    assert caught.value.problem.errors[0].path == h.TENANT


async def test_malformed_principal_is_refused(served: Served) -> None:
    with pytest.raises(RemoteError) as caught:
        await served.client.send("echo", Echo(text="x"), Echoed, principal="nobody-knows")
    assert caught.value.problem.code == "UNAUTHENTICATED"


async def test_no_service_is_unavailable_at_once(nc: Client, subjects: Subjects) -> None:
    client = RpcClient(nc, subjects, service="nobody", timeout=3.0)
    began = time.monotonic()
    with pytest.raises(Unavailable) as caught:
        await client.send("echo", Echo(text="x"), Echoed)
    assert time.monotonic() - began < 2.0
    assert caught.value.code is ErrorCode.UNAVAILABLE
    assert caught.value.to_problem().status == 503


async def test_a_silent_service_times_out_within_the_bound(nc: Client, subjects: Subjects) -> None:
    async def ignore(_msg: object) -> None:
        return None

    sub = await nc.subscribe(subjects.rpc("silent", "echo"), cb=ignore)
    try:
        client = RpcClient(nc, subjects, service="silent", timeout=0.3)
        began = time.monotonic()
        with pytest.raises(Unavailable):
            await client.send("echo", Echo(text="x"), Echoed)
        assert 0.25 <= time.monotonic() - began < 2.0
    finally:
        await sub.unsubscribe()


async def test_stop_answers_requests_it_had_to_cancel(nc: Client, subjects: Subjects) -> None:
    gate = Gate()
    service = build_service(nc, subjects, gate, name="stopping")
    await service.start()
    client = RpcClient(nc, subjects, service="stopping", timeout=5.0)
    held = asyncio.create_task(client.send("hold", Echo(text="x"), Echoed))
    await until(lambda: gate.waiting == 1, timeout=5)
    assert await service.stop(0.1) == 1
    with pytest.raises(RemoteError) as caught:
        await held
    assert caught.value.problem.code == "UNAVAILABLE"
    with pytest.raises(Unavailable):
        await client.send("echo", Echo(text="x"), Echoed, timeout=1.0)


async def test_error_classes_round_trip_through_remote_error(served: Served) -> None:
    with pytest.raises(RemoteError) as caught:
        await served.client.send("missing", Echo(text="w9"), Echoed)
    again = caught.value.to_problem("ignored-because-set")
    assert again == caught.value.problem
    assert isinstance(caught.value, FlowmeshError)


async def test_run_service_stops_intake_finishes_work_then_drains(
    nc: Client, nats_server: NatsHandle, subjects: Subjects
) -> None:
    gate, stop, serving = Gate(), asyncio.Event(), asyncio.Event()
    order: list[str] = []

    def recorded(
        name: str, close: Callable[[], Awaitable[object]]
    ) -> Callable[[], Awaitable[None]]:
        async def run() -> None:
            order.append(name)
            await close()

        return run

    async def start(stack: AsyncExitStack, _stop: asyncio.Event) -> None:
        conn = await connect(nats_server.url, "lifecycle-test")
        stack.push_async_callback(recorded("drain", lambda: drain(conn, 5.0)))
        service = build_service(conn, subjects, gate, name="lifecycle")
        await service.start()
        stack.push_async_callback(recorded("rpc", lambda: service.stop(5.0)))
        serving.set()

    runner = asyncio.create_task(run_service("lifecycle", start, shutdown_timeout=5.0, stop=stop))
    await until(serving.is_set, timeout=5)
    client = RpcClient(nc, subjects, service="lifecycle", timeout=5.0)
    held = asyncio.create_task(client.send("hold", Echo(text="in flight"), Echoed))
    await until(lambda: gate.waiting == 1, timeout=5)
    stop.set()

    async def intake_stopped() -> bool:
        try:
            await client.send("echo", Echo(text="late"), Echoed, timeout=0.5)
        except Unavailable:
            return True
        return False

    await until(intake_stopped, timeout=5)
    assert not held.done()
    assert order == ["rpc"]
    gate.open.set()
    assert (await held).text == "in flight"
    assert await runner == 0
    assert order == ["rpc", "drain"]
