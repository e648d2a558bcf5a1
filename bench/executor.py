"""Executor benchmark: the scenarios and budgets of DESIGN section 10.

Every service runs in its own process (registry, executor, gateway) over a fresh
nats-server 2.15 on loopback and the machine's PostgreSQL; this process is the client.
Each scenario runs twice: NATS with its default fsync, then with ``sync_interval: always``
(every acknowledged write is on disk).

- ``chain40_http``: a 40-step chain of ``noop`` nodes, triggered by
  ``POST /workflows/{id}/execute?wait=PT60S``: from sending the request to the response
  carrying the finished run (the gateway answers on the run's terminal event).
- ``per_step``: trigger-to-``run.succeeded`` of a chain of N steps minus that of a chain
  of 1, over N-1; for ``noop`` chains (instantaneous nodes, evaluated in one decision) and
  for ``delay PT0S`` chains (steps the shell runs: a ``step.started`` and a
  ``step.succeeded`` each, one fenced round trip per step).
- ``map1000``: one ``map`` over 1,000 items (a transform template), trigger to end.
- ``burst200``: 200 runs of a 5-step chain published at once over NATS; runs per second
  from the first publish to the last terminal event.

    uv run python bench/executor.py --out bench/results/executor.json

``--cluster``: the same scenarios on a 3-node nats-server cluster (three processes routed
to each other on loopback, on the same machine) with every stream and bucket at 3
replicas: each acknowledged publish is then on a majority of the nodes.

    uv run python bench/executor.py --cluster --out bench/results/executor-cluster.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from gateway import client, stack  # bench/gateway.py (scripts run from bench/)
from workload import summary, write_results

from flowmesh_proto import headers as h
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import TERMINAL_RUN_KINDS, RunQueued, RunRequest, TriggerInfo
from flowmesh_proto.subjects import Subjects

ENCODER = msgspec.json.Encoder()


def chain(name: str, n: int, kind: str = "noop") -> dict[str, Any]:
    parameters = {"duration": "PT0S"} if kind == "delay" else {}
    nodes = [{"id": f"n{i}", "type": kind, "parameters": parameters} for i in range(n)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(n - 1)]
    return {"name": name, "nodes": nodes, "edges": edges}


def mapping(name: str) -> dict[str, Any]:
    return {
        "name": name,
        "nodes": [
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "trigger.data.items",
                    "node": {"type": "transform", "parameters": {"output": "{{ item * 2 }}"}},
                    "concurrency": 100,
                },
            }
        ],
        "edges": [],
    }


class Runner:
    """Publishes runs as the gateway does and notes when each one's terminal event arrives."""

    def __init__(self, nc: Any, tenant: str) -> None:
        self.nc, self.js, self.tenant = nc, nc.jetstream(), tenant
        self.subjects = Subjects("fm")
        self.done: dict[str, tuple[float, str]] = {}
        self.waiters: dict[str, asyncio.Future[None]] = {}

    async def start(self) -> None:
        await self.nc.subscribe(f"fm.{self.tenant}.runs.*", cb=self._on_event)

    async def _on_event(self, msg: Any) -> None:
        kind = msg.data[9:40].split(b'"', 1)[0].decode()  # {"kind":"<kind>",...
        if kind not in TERMINAL_RUN_KINDS:
            return
        run_id = msg.subject.rsplit(".", 1)[1]
        self.done[run_id] = (time.perf_counter(), kind)
        waiter = self.waiters.pop(run_id, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def submit(self, workflow: dict[str, Any], data: Any = None) -> str:
        run_id = str(new_run_id())
        trigger = TriggerInfo(kind="api", data=data)
        ref = {
            "tenant": self.tenant,
            "run_id": run_id,
            "workflow_id": workflow["id"],
            "version": workflow["version"],
        }
        self.waiters[run_id] = asyncio.get_running_loop().create_future()
        queued = RunQueued(**ref, at=datetime.now(UTC), trigger=trigger, input=data)
        await self.js.publish(
            self.subjects.run_events(self.tenant, run_id),
            ENCODER.encode(queued),
            headers={h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: f"queued:{run_id}"},
        )
        request = RunRequest(**ref, trigger=trigger, input=data)
        await self.js.publish(
            self.subjects.run_requests(self.tenant),
            ENCODER.encode(request),
            headers={h.MSG_ID: run_id},
        )
        await self.nc.publish(self.subjects.intake(self.tenant), b"")  # the doorbell
        return run_id

    async def one(self, workflow: dict[str, Any], data: Any = None) -> float:
        began = time.perf_counter()
        run_id = await self.submit(workflow, data)
        waiter = self.waiters.get(run_id)
        if waiter is not None:
            await asyncio.wait_for(waiter, 60)
        finished, kind = self.done[run_id]
        if kind != "run.succeeded":
            raise SystemExit(f"run {run_id} ended {kind}")
        return finished - began


async def create(
    session: aiohttp.ClientSession, tenant: str, definition: dict[str, Any]
) -> dict[str, Any]:
    async with session.post(f"/api/v1/{tenant}/workflows", json=definition) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise SystemExit(f"creating {definition['name']} answered {resp.status}: {body}")
        return dict(body)


async def chain40_http(
    session: aiohttp.ClientSession, tenant: str, wf: dict[str, Any], n: int
) -> dict[str, Any]:
    # Waits as long as the gateway allows (60 s), as the NATS scenarios do: a run that
    # stalls until its lease runs out (30 s) is a sample, not the end of the benchmark.
    path = f"/api/v1/{tenant}/workflows/{wf['id']}/execute?wait=PT60S"
    patience = aiohttp.ClientTimeout(total=90)
    samples: list[float] = []
    for i in range(n + 10):
        began = time.perf_counter()
        async with session.post(path, json={"input": {"i": i}}, timeout=patience) as resp:
            body = await resp.json()
            if resp.status != 200 or body.get("status") != "succeeded":
                raise SystemExit(f"execute?wait answered {resp.status}: {body}")
        if i >= 10:  # the first ten warm up
            samples.append(time.perf_counter() - began)
    return summary(samples)


async def repeated(runner: Runner, wf: dict[str, Any], n: int, data: Any = None) -> list[float]:
    for _ in range(5):  # warm-up
        await runner.one(wf, data)
    return [await runner.one(wf, data) for _ in range(n)]


def median(samples: list[float]) -> float:
    ordered = sorted(samples)
    return ordered[len(ordered) // 2]


async def per_step(
    runner: Runner, one: dict[str, Any], many: dict[str, Any], steps: int, n: int
) -> dict[str, Any]:
    short = median(await repeated(runner, one, n))
    long = median(await repeated(runner, many, n))
    return {
        "chain_1_median_ms": round(short * 1000, 3),
        f"chain_{steps}_median_ms": round(long * 1000, 3),
        "per_step_ms": round((long - short) / (steps - 1) * 1000, 4),
    }


async def burst(runner: Runner, wf: dict[str, Any], runs: int) -> dict[str, Any]:
    began = time.perf_counter()
    ids = await asyncio.gather(*(runner.submit(wf, {"i": i}) for i in range(runs)))
    submitted = time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(*(runner.waiters[i] for i in ids if i in runner.waiters)), 120
    )
    last = max(runner.done[i][0] for i in ids)
    failed = [i for i in ids if runner.done[i][1] != "run.succeeded"]
    if failed:
        raise SystemExit(f"{len(failed)} runs of the burst did not succeed")
    seconds = last - began
    return {
        "runs": runs,
        "submit_ms": round((submitted - began) * 1000, 1),
        "total_ms": round(seconds * 1000, 1),
        "runs_per_s": round(runs / seconds, 1),
        "steps_per_s": round(runs * 5 / seconds, 1),
    }


CLUSTER_NODES = 3


async def scenarios(sync_always: bool, args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    replicas = CLUSTER_NODES if args.cluster else 1
    async with stack(executor=True, sync_always=sync_always, replicas=replicas) as fm:
        nc = await nats.connect(fm.nats_url.split(","))
        try:
            runner = Runner(nc, fm.tenant)
            await runner.start()
            async with client(fm.url, fm.key, 4) as session:
                wf = {
                    name: await create(session, fm.tenant, definition)
                    for name, definition in {
                        "chain40": chain("chain40", 40),
                        "chain1": chain("chain1", 1),
                        "chain200": chain("chain200", 200),
                        "delay1": chain("delay1", 1, "delay"),
                        "delay40": chain("delay40", 40, "delay"),
                        "chain5": chain("chain5", 5),
                        "map": mapping("map1000"),
                    }.items()
                }
                results["chain40_http"] = await chain40_http(
                    session, fm.tenant, wf["chain40"], args.runs
                )
                print("chain40_http", results["chain40_http"], flush=True)
            results["chain40_nats"] = summary(await repeated(runner, wf["chain40"], args.runs))
            print("chain40_nats", results["chain40_nats"], flush=True)
            results["per_step_noop"] = await per_step(
                runner, wf["chain1"], wf["chain200"], 200, args.runs
            )
            print("per_step_noop", results["per_step_noop"], flush=True)
            results["per_step_delay"] = await per_step(
                runner, wf["delay1"], wf["delay40"], 40, args.runs
            )
            print("per_step_delay", results["per_step_delay"], flush=True)
            items = {"items": list(range(1000))}
            results["map1000"] = summary(await repeated(runner, wf["map"], args.map_runs, items))
            print("map1000", results["map1000"], flush=True)
            results["burst200"] = await burst(runner, wf["chain5"], 200)
            print("burst200", results["burst200"], flush=True)
            results["fenced_runs"] = await fenced_runs(fm.executor_url)
            print("fenced_runs", results["fenced_runs"], flush=True)
        finally:
            await nc.close()
    return results


async def fenced_runs(executor_url: str) -> int:
    """How many times the executor stopped driving a run because its write was fenced.

    No other executor runs here, so each one is a stale read of the run's stream (its
    request is taken again when its lease runs out, ``lease_seconds`` later).
    """
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"{executor_url}/metrics") as resp,
    ):
        text = await resp.text()
    prefix = 'flowmesh_executor_runs_total{status="fenced"} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return sum(int(float(line.removeprefix(prefix))) for line in lines)


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results = {"default_fsync": await scenarios(False, args)}
    if not args.quick:
        results["sync_interval_always"] = await scenarios(True, args)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=200, help="runs per latency scenario")
    parser.add_argument("--map-runs", type=int, default=30)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--quick", action="store_true", help="default fsync only (while profiling)")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help=f"a {CLUSTER_NODES}-node nats-server cluster, streams at {CLUSTER_NODES} replicas",
    )
    args = parser.parse_args()
    began = datetime.now(UTC)
    results = asyncio.run(run(args))
    write_results("executor.py", began, results, args.out, note=setup(args.cluster))


def setup(cluster: bool) -> str:
    """What ran on the machine's cores, for the results document."""
    nats = (
        f"a {CLUSTER_NODES}-node nats-server cluster on loopback (streams and buckets at "
        f"{CLUSTER_NODES} replicas; the client and the services connect to any node)"
        if cluster
        else "one nats-server"
    )
    return f"registry, executor, gateway, {nats}, PostgreSQL and this client share them"


if __name__ == "__main__":
    main()
