"""Hostile tenants on the committed NATS configuration (DESIGN section 12, first bullet).

The services sign in with their users and inbox prefixes (``_INBOX_<service>``); two
tenants get a publisher, a reader and a task worker each from ``flowmesh nats-user``.
Eavesdroppers holding every tenant credential hear nothing of the other tenant nor any
service's reply while the services' RPCs (tenant creation, API keys, secrets) and both
tenants' traffic flow; a forged reply to a service inbox is refused; a worker fetches and
answers only its own tenant's tasks, and serves them end to end. The RPCs are served by
the RPC machinery the registry uses (``RpcService``), with stand-in handlers whose
answers carry a marker no eavesdropper may ever see.
"""

from __future__ import annotations

import asyncio
import gc
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import msgspec
import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client
from nats.errors import TimeoutError as NatsTimeout

from flowmesh_executor.nodes import task
from flowmesh_executor.nodes.base import StepCall, StepServices
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_proto.tasks import REPLY_TO, TaskResult
from flowmesh_proto.workflow import TaskNode, TaskParameters
from flowmesh_shared.natsconn import SERVICES, connect, service_inbox
from flowmesh_shared.rpc import RpcClient, RpcService
from flowmesh_worker import TaskContext, Worker
from tests.helpers import until
from tests.natsdeploy import (
    Deployed,
    Violations,
    deployment,
    event_body,
)

pytestmark = pytest.mark.integration

TENANTS = ("acme", "globex")
QUEUE = "jobs"
MARKER = "SECRET-"
#: What a hostile client tries to hear: everything, every inbox, the JetStream API.
SNOOPED = ("_INBOX.>", *(f"_INBOX_{s}.>" for s in SERVICES), "$JS.>", ">")


class Anything(msgspec.Struct, frozen=True, kw_only=True):
    value: str = ""


@pytest_asyncio.fixture(loop_scope="session")
async def deployed(tmp_path: Path) -> AsyncIterator[Deployed]:
    users = [(t, role) for t in TENANTS for role in ("publisher", "reader")]
    users += [(t, "worker", "--queue", QUEUE) for t in TENANTS]
    limits = ("--max-connections", "2", "--max-subscriptions", "3", "--max-payload", "2048")
    users.append(("initech", "publisher", *limits))
    async with deployment(tmp_path, users) as made:  # with the events ingress
        yield made


async def service(deployed: Deployed, name: str) -> Client:
    """``name`` signed in as a Flowmesh service does: its user, its inbox prefix."""
    return await connect(
        deployed.url(name), f"test-{name}", inbox_prefix=service_inbox(name), initial_timeout=5
    )


def services_for(nc: Client) -> StepServices:
    stand_in = cast(Any, None)  # what task steps never use
    return StepServices(
        nc=nc,
        js=nc.jetstream(),
        subjects=Subjects(),
        streams=stream_names(),
        settings=ExecutorSettings(),
        http=stand_in,
        waits=stand_in,
        children=stand_in,
        definitions=stand_in,
        event_ids=stand_in,
    )


def step(tenant: str, **parameters: Any) -> StepCall:
    run_id = f"run-{secrets.token_hex(6)}"
    return StepCall(
        tenant=tenant,
        run_id=run_id,
        workflow_id="wf-1",
        version=1,
        node=TaskNode(id="work", parameters=TaskParameters(queue=QUEUE)),
        attempt=1,
        idempotency_key=f"{run_id}:work",
        parameters={"queue": QUEUE, **parameters},
        variables={},
        started_at=datetime.now(UTC),
        deadline=None,
        secrets={},
    )


class Eavesdropper:
    """A tenant user subscribed to everything it dares; what it heard, what was refused."""

    def __init__(self, user: str) -> None:
        self.user = user
        self.violations = Violations()
        self.heard: list[tuple[str, bytes]] = []
        self.nc: Client | None = None

    async def start(self, deployed: Deployed) -> None:
        self.nc = await deployed.connect(self.user, self.violations)
        for subject in SNOOPED:
            await self.nc.subscribe(subject, cb=self._hear)
        await self.nc.flush()

    async def _hear(self, msg: Any) -> None:
        self.heard.append((msg.subject, msg.data))

    def refused(self, subject: str) -> bool:
        return self.violations.about(subject)


async def test_no_tenant_user_hears_another_tenant_or_a_service_reply(deployed: Deployed) -> None:
    spies = [Eavesdropper(f"{t}-{role}") for t in TENANTS for role in ("publisher", "reader")]
    spies += [Eavesdropper(f"{t}-worker") for t in TENANTS]
    registry, gateway, executor = [
        await service(deployed, name) for name in ("registry", "gateway", "executor")
    ]
    publisher = await deployed.connect("globex-publisher")
    served = RpcService(registry, Subjects(), "registry")

    async def answer(request: Anything, context: Any) -> Anything:
        return Anything(value=f"{MARKER}{request.value}")

    for operation in ("tenant_create", "apikey_create", "secret_put", "secret_resolve"):
        served.add(operation, Anything, answer)
    try:
        for spy in spies:
            await spy.start(deployed)
        for spy in spies:
            for subject in SNOOPED[1:]:  # a service's inbox, the JetStream API, everything
                await until(lambda s=subject, spy=spy: spy.refused(s), timeout=5)
        await served.start()
        calls = RpcClient(gateway, Subjects()), RpcClient(executor, Subjects())
        for n, operation in enumerate(("tenant_create", "apikey_create", "secret_put")):
            reply = await calls[0].send(operation, Anything(value=str(n)), Anything)
            assert reply.value == f"{MARKER}{n}"
        reply = await calls[1].send("secret_resolve", Anything(value="db"), Anything, tenant="acme")
        assert reply.value == f"{MARKER}db"
        for tenant in TENANTS:  # JetStream acks to the services' inboxes
            await gateway.jetstream().publish(f"fm.{tenant}.events.order.created", b"{}")
            await executor.jetstream().publish(f"fm.{tenant}.runs.r-{tenant}", b"{}")
        ack = await publisher.jetstream().publish(
            "fm.globex.events.hello", event_body("globex", "hello", "e1", globex=1)
        )
        assert ack.stream == "FM_EVENTS"
        for nc in (registry, gateway, executor, publisher):
            await nc.flush()
        await asyncio.sleep(0.3)  # time for a wrongly routed message to arrive too
    finally:
        await served.stop(grace=1)
        for nc in (registry, gateway, executor, publisher, *(s.nc for s in spies)):
            if nc is not None:
                await nc.close()
    for spy in spies:
        tenant = spy.user.split("-")[0]
        other = next(t for t in TENANTS if t != tenant)
        for subject, data in spy.heard:
            assert MARKER.encode() not in data, (spy.user, subject)
            assert other not in subject and other.encode() not in data, (spy.user, subject)
            assert not subject.startswith(tuple(service_inbox(s) for s in SERVICES))


async def test_a_forged_reply_to_a_service_inbox_is_refused(deployed: Deployed) -> None:
    gateway = await service(deployed, "gateway")
    heard: list[bytes] = []

    async def hear(msg: Any) -> None:
        heard.append(msg.data)

    inbox = f"{service_inbox('gateway')}.forged"
    await gateway.subscribe(inbox, cb=hear)
    await gateway.flush()
    forgers = {}
    try:
        for user in ("acme-worker", "acme-publisher", "globex-reader", "registry", "executor"):
            violations = Violations()
            forgers[user] = (await deployed.connect(user, violations), violations)
        for user, (nc, violations) in forgers.items():
            # An apikey_verify answer the gateway would cache, and JetStream's own inbox.
            await nc.publish(inbox, b'{"tenant": "acme", "valid": true}')
            await nc.publish("_INBOX.forged", b"{}")
            await nc.flush()
            await until(lambda v=violations: v.about(inbox), timeout=5, message=user)
        await asyncio.sleep(0.2)
        assert heard == []
    finally:
        for nc, _ in forgers.values():
            await nc.close()
        await gateway.close()


async def test_the_registry_answers_a_request_but_publishes_to_no_inbox_unasked(
    deployed: Deployed,
) -> None:
    violations = Violations()
    registry = await deployed.connect("registry", violations)
    gateway = await service(deployed, "gateway")
    try:

        async def respond(msg: Any) -> None:
            await msg.respond(b"answer")

        await registry.subscribe("fm.rpc.registry.echo", cb=respond)
        await registry.flush()
        reply = await gateway.request("fm.rpc.registry.echo", b"q", timeout=5)
        assert reply.data == b"answer"
        assert reply.subject.startswith("_INBOX_gateway.")
        await registry.publish("_INBOX_gateway.unasked", b"x")
        await registry.flush()
        await until(lambda: violations.about("_INBOX_gateway.unasked"), timeout=5)
    finally:
        await registry.close()
        await gateway.close()


async def test_the_shared_worker_user_is_gone(deployed: Deployed) -> None:
    client = Client()
    try:
        with pytest.raises(nats.errors.Error, match="Authorization Violation"):
            await client.connect(
                deployed.node.url_for("worker", "p" + secrets.token_hex(16)),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
    finally:
        await client.close()
        gc.collect()  # nats-py leaves a refused connection's socket open


async def test_a_worker_serves_its_own_tenants_task_end_to_end(deployed: Deployed) -> None:
    executor = await service(deployed, "executor")
    worker = await Worker.connect(
        deployed.url("acme-worker"), tenant="acme", poll_interval=0.2, name="acme-jobs"
    )
    seen: list[TaskContext] = []

    @worker.task(QUEUE)
    async def work(input: Any, ctx: TaskContext) -> Any:
        seen.append(ctx)
        return {"done": input}

    try:
        async with worker:
            output = await asyncio.wait_for(
                task.run(step("acme", input={"n": 1}), services_for(executor)), 15
            )
        assert output == {"done": {"n": 1}}
        assert [ctx.tenant for ctx in seen] == ["acme"]
    finally:
        await executor.close()


async def test_a_worker_can_neither_fetch_nor_answer_another_tenants_task(
    deployed: Deployed,
) -> None:
    executor = await service(deployed, "executor")
    violations = Violations()
    thief = await deployed.connect("globex-worker", violations)
    services = services_for(executor)
    running = asyncio.create_task(task.run(step("acme", input="acme's"), services))
    subject = "fm.acme.tasks.jobs"
    try:

        async def queued() -> Any:
            info = await executor.jetstream().stream_info("FM_TASKS", subjects_filter=subject)
            return (info.state.subjects or {}).get(subject)

        await until(queued, timeout=5, message="acme's task is queued")
        stored = await executor.jetstream().get_last_msg("FM_TASKS", subject)
        reply_to = (stored.headers or {})[REPLY_TO]
        assert reply_to.startswith("fm.acme.task-replies.")
        attempts = [
            "$JS.API.CONSUMER.MSG.NEXT.FM_TASKS.tasks_acme_jobs",  # fetch acme's queue
            "$JS.API.CONSUMER.CREATE.FM_TASKS.tasks_globex_x.fm.acme.tasks.jobs",  # a consumer
            "$JS.API.CONSUMER.INFO.FM_TASKS.tasks_acme_jobs",
        ]
        for attempt in attempts:
            with pytest.raises((NatsTimeout, nats.errors.NoRespondersError)):
                await thief.request(attempt, b'{"batch": 1}', timeout=0.5)
            await until(lambda s=attempt: violations.about(s), timeout=5)
        forged = TaskResult(idempotency_key="x", attempt=1, output="forged")
        await thief.publish(reply_to, msgspec.json.encode(forged))  # answer acme's task
        await thief.subscribe("fm.acme.tasks.>")
        await thief.flush()
        await until(lambda: violations.about(reply_to), timeout=5)
        await until(lambda: violations.about("fm.acme.tasks.>"), timeout=5)
        assert not running.done()
        assert await queued() == 1  # still there for acme's own worker
        worker = await Worker.connect(deployed.url("acme-worker"), tenant="acme", poll_interval=0.2)

        @worker.task(QUEUE)
        async def work(input: Any, ctx: TaskContext) -> Any:
            return f"served {input}"

        async with worker:
            assert await asyncio.wait_for(running, 15) == "served acme's"
    finally:
        running.cancel()
        await thief.close()
        await executor.close()


async def test_a_tenant_account_is_held_to_its_limits(deployed: Deployed) -> None:
    """initech: at most 2 connections, 3 subscriptions and 2048-byte messages."""
    first = await deployed.connect("initech-publisher")
    second = await deployed.connect("initech-publisher")
    third = Client()
    try:
        with pytest.raises(nats.errors.Error, match="maximum account active connections"):
            await third.connect(
                deployed.url("initech-publisher"),
                allow_reconnect=False,
                max_reconnect_attempts=0,
                connect_timeout=2,
            )
        for n in range(4):
            await first.subscribe(f"_INBOX.{n}")
        await first.flush()
        # The server refuses the fourth, and nats-py closes the connection on that error.
        await until(lambda: "maximum subscriptions" in str(first.last_error).lower(), timeout=5)
        small = event_body("initech", "small", "e1", blob="x" * 1400)
        ack = await second.jetstream().publish("fm.initech.events.small", small)
        assert ack.stream == "FM_EVENTS"
        # The client knows only the server's limit (8 MB): the server closes the connection.
        await second.publish("fm.initech.events.big", b"x" * 4096)
        await until(lambda: "maximum payload" in str(second.last_error).lower(), timeout=5)
        assert second.is_closed
    finally:
        for nc in (first, second, third):
            await nc.close()
        gc.collect()


async def test_no_tenant_user_hears_or_rings_the_intake_doorbell(deployed: Deployed) -> None:
    """The doorbell (``fm.sys.intake.<t>``) would tell who has runs queued, and a rung bell
    costs every executor a fetch: tenant users neither hear it nor ring it."""
    spies = [Eavesdropper(f"{t}-{role}") for t in TENANTS for role in ("publisher", "reader")]
    spies += [Eavesdropper(f"{t}-worker") for t in TENANTS]
    executor = await service(deployed, "executor")
    gateway = await service(deployed, "gateway")
    bells: list[str] = []

    async def heard(msg: Any) -> None:
        bells.append(msg.subject)

    try:
        await executor.subscribe(Subjects().all_intake, cb=heard)
        await executor.flush()
        for spy in spies:
            await spy.start(deployed)
        for spy in spies:
            assert spy.nc is not None
            await spy.nc.publish("fm.sys.intake.globex", b"")
            await spy.nc.publish("fm.sys.intake.acme", b"")
            await spy.nc.flush()
        await gateway.publish(Subjects().intake("acme"), b"")  # a bell a service rings
        await gateway.flush()
        await until(lambda: bells == ["fm.sys.intake.acme"], timeout=5, message=str(bells))
        await asyncio.sleep(0.2)  # time for a wrongly routed bell to arrive too
        assert bells == ["fm.sys.intake.acme"]
        for spy in spies:
            assert not [s for s, _ in spy.heard if "intake" in s], (spy.user, spy.heard)
    finally:
        for nc in [executor, gateway, *(spy.nc for spy in spies if spy.nc is not None)]:
            await nc.close()
