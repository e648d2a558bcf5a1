"""A 3-node NATS cluster from deploy/nats/cluster.conf; one node killed mid-run.

Three ``nats-server`` processes with routes to each other on loopback run the committed
cluster configuration (accounts, per-service users); the whole stack (``make dev``'s
scripts/dev.py: registry, executor, scheduler, gateway as processes) connects to all
three nodes, each service as its own NATS user, with every stream and bucket at 3
replicas. Runs are started through the HTTP API before, during and after the node
holding the run-events stream's leadership is killed with SIGKILL. Every accepted run
must finish, each with every event of its steps exactly once in the stream and in the
run history.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import nats
import pytest
import pytest_asyncio
from nats.js.api import DeliverPolicy

from flowmesh_devtools.localstack import until_jetstream_answers
from flowmesh_shared.natsconn import service_inbox
from tests.e2e.devstack import DevStack, dev_stack
from tests.helpers import until
from tests.natsdeploy import NatsNode, account_passwords, cluster, copy_config, urls_for

pytestmark = pytest.mark.integration
T = TypeVar("T")

SERVICES = ("registry", "gateway", "executor", "scheduler")
RUNS_BEFORE, RUNS_DURING, RUNS_AFTER = 12, 12, 12
NODES = ["prepare", "wait_a", "compute", "wait_b", "finish"]
WORKFLOW = {
    "name": "cluster-failover",
    "output": "finish",
    "nodes": [
        {
            "id": "prepare",
            "type": "transform",
            "parameters": {"output": {"n": "{{ trigger.data.n }}"}},
        },
        {"id": "wait_a", "type": "delay", "parameters": {"duration": "PT0.4S"}},
        {"id": "compute", "type": "transform", "parameters": {"output": {"ok": True}}},
        {"id": "wait_b", "type": "delay", "parameters": {"duration": "PT0.4S"}},
        {
            "id": "finish",
            "type": "transform",
            "parameters": {"output": {"n": "{{ trigger.data.n }}"}},
        },
    ],
    "edges": [
        {"from": "prepare", "to": "wait_a"},
        {"from": "wait_a", "to": "compute"},
        {"from": "compute", "to": "wait_b"},
        {"from": "wait_b", "to": "finish"},
    ],
}


class Cluster:
    def __init__(self, nodes: list[NatsNode], passwords: dict[str, str]) -> None:
        self.nodes, self.passwords = nodes, passwords

    def urls(self, user: str, nodes: list[NatsNode] | None = None) -> str:
        password = self.passwords[f"FM_NATS_{user.upper()}_PASSWORD"]
        return urls_for(self.nodes if nodes is None else nodes, user, password)

    async def connect(self, user: str, nodes: list[NatsNode] | None = None) -> Any:
        return await nats.connect(
            self.urls(user, nodes).split(","),
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.2,
            inbox_prefix=service_inbox(user),
        )


@pytest_asyncio.fixture(loop_scope="session")
async def nats_cluster(tmp_path: Path) -> AsyncIterator[Cluster]:
    config = copy_config(tmp_path)
    passwords = account_passwords()
    async with cluster(config, passwords) as nodes:
        running = Cluster(nodes, passwords)
        await until_jetstream_answers(  # a meta leader
            running.urls("registry"), 30, inbox_prefix=service_inbox("registry")
        )
        yield running


@pytest_asyncio.fixture(loop_scope="session")
async def replicated_stack(nats_cluster: Cluster, postgres_url: str) -> AsyncIterator[DevStack]:
    env: dict[str, str] = {}
    for service in SERVICES:
        prefix = f"FLOWMESH_{service.upper()}"
        env[f"{prefix}_NATS_URL"] = nats_cluster.urls(service)
        env[f"{prefix}_STREAMS_REPLICAS"] = "3"
    # dev.py itself (the demo tenant, over the registry's RPC) connects as the gateway
    async with dev_stack(
        nats_url=nats_cluster.urls("gateway"), database_url=postgres_url, env=env
    ) as running:
        yield running


class Api:
    def __init__(self, http: aiohttp.ClientSession, stack: DevStack) -> None:
        self.http = http
        self.base = f"{stack.gateway_url}/api/v1/{stack.info['tenant']}"
        self.headers = {"Authorization": f"Bearer {stack.info['api_key']}"}

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with self.http.request(
            method, self.base + path, json=body, headers=self.headers
        ) as response:
            return response.status, await response.json(content_type=None)

    async def start(self, workflow_id: str, n: int) -> str:
        """Start a run, retrying (same idempotency key) while the cluster fails over."""
        body = {"input": {"n": n}, "idempotency_key": f"failover-{n}"}
        for _ in range(100):
            with contextlib.suppress(aiohttp.ClientError):
                status, answer = await self.call("POST", f"/workflows/{workflow_id}/execute", body)
                if status == 202:
                    return str(answer["run_id"])
                assert status == 503, (status, answer)  # only "unavailable, try again"
            await asyncio.sleep(0.2)
        raise AssertionError(f"run {n} was never accepted")


async def test_every_run_completes_when_a_nats_node_dies(
    nats_cluster: Cluster, replicated_stack: DevStack
) -> None:
    service = await nats_cluster.connect("registry")
    async with aiohttp.ClientSession() as http:
        api = Api(http, replicated_stack)
        status, created = await api.call("POST", "/workflows", WORKFLOW)
        assert status == 201, created
        workflow_id = created["id"]
        js = service.jetstream()
        for stream in ("FM_RUN_REQUESTS", "FM_RUN_EVENTS", "FM_EVENTS", "FM_TIMERS"):
            info = await js.stream_info(stream)
            assert info.config.num_replicas == 3, stream
            assert info.cluster is not None and len(info.cluster.replicas or []) == 2, stream
        leader = (await js.stream_info("FM_RUN_EVENTS")).cluster.leader
        victim = next(node for node in nats_cluster.nodes if node.name == leader)
        # The test's own client watches from the nodes that stay (the services are the ones
        # that must fail over; nats-py drops a socket unclosed when it reconnects, and
        # pytest counts the garbage collector's warning about it against the test).
        await service.close()
        survivors = [node for node in nats_cluster.nodes if node is not victim]
        service = await nats_cluster.connect("registry", survivors)
        js = service.jetstream()

        run_ids = [await api.start(workflow_id, n) for n in range(RUNS_BEFORE)]
        during = asyncio.gather(
            *(api.start(workflow_id, n) for n in range(RUNS_BEFORE, RUNS_BEFORE + RUNS_DURING))
        )
        await asyncio.sleep(0.3)  # runs in flight, some mid-delay
        victim.kill()
        run_ids += await during
        total = RUNS_BEFORE + RUNS_DURING + RUNS_AFTER
        run_ids += [
            await api.start(workflow_id, n) for n in range(RUNS_BEFORE + RUNS_DURING, total)
        ]
        assert len(set(run_ids)) == total

        async def all_finished() -> bool:
            for run_id in run_ids:
                status, run = await api.call("GET", f"/runs/{run_id}")
                if status != 200 or run["status"] != "succeeded":
                    return False
            return True

        await until(all_finished, timeout=120, interval=0.5, message="every run succeeded")
        new_leader = (await _asked(lambda: js.stream_info("FM_RUN_EVENTS"))).cluster.leader
        assert new_leader != victim.name

        tenant = replicated_stack.info["tenant"]
        for n, run_id in enumerate(run_ids):
            kinds = await _asked(lambda r=run_id: _stream_events(service, tenant, r))
            assert kinds[0] == "run.queued" and kinds[-1] == "run.succeeded", kinds
            assert kinds.count("run.started") >= 1, kinds
            for node in NODES:
                assert kinds.count(f"step.succeeded:{node}") == 1, (node, kinds)
            status, run = await api.call("GET", f"/runs/{run_id}")
            assert run["output"] == {"n": n}
            steps = {step["node_id"]: step["status"] for step in run["steps"]}
            assert steps == dict.fromkeys(NODES, "succeeded"), run
    await service.close()
    log = replicated_stack.log.read_text(errors="replace")
    assert "Traceback" not in log, replicated_stack.output()
    assert "permissions violation" not in log.lower(), replicated_stack.output()
    assert victim.process is not None and victim.process.returncode is not None


async def _asked(call: Callable[[], Awaitable[T]]) -> T:
    """``call()``, asked again when a JetStream API request times out while the two nodes
    left settle (the meta layer lost a member), as any client would."""
    for _ in range(4):
        try:
            return await call()
        except nats.errors.TimeoutError:
            await asyncio.sleep(1)
    return await call()


async def _stream_events(nc: Any, tenant: str, run_id: str) -> list[str]:
    """Every event of the run in FM_RUN_EVENTS, as ``kind`` (``kind:node`` for steps)."""
    js = nc.jetstream()
    subject = f"fm.{tenant}.runs.{run_id}"
    last = (await js.stream_info("FM_RUN_EVENTS", subjects_filter=subject)).state
    pending = last.subjects.get(subject, 0) if last.subjects else 0
    sub = await js.subscribe(
        subject, stream="FM_RUN_EVENTS", ordered_consumer=True, deliver_policy=DeliverPolicy.ALL
    )
    kinds: list[str] = []
    try:
        for _ in range(pending):
            msg = await sub.next_msg(timeout=10)
            event = json.loads(msg.data)
            kinds += _kinds(event)
    finally:
        await sub.unsubscribe()
    return kinds


def _kinds(event: dict[str, Any]) -> list[str]:
    kind = str(event["kind"])
    if kind == "steps":  # a batch of step events in one message
        return [k for inner in event["events"] for k in _kinds(inner)]
    if kind.startswith("step."):
        return [f"{kind}:{event['node_id']}"]
    return [kind]
