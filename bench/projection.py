"""Projection benchmark: run events into PostgreSQL (DESIGN section 10: at least 10,000
events/s, lag under 1 s).

Every service runs in its own process (``python -m flowmesh_registry``, ``python -m
flowmesh_executor``) over a fresh nats-server 2.15 on loopback and the machine's
PostgreSQL (a fresh database each phase); this process is the client.

- ``throughput``: N runs' worth of realistic run events are published first, fenced like
  an executor's (``Nats-Expected-Last-Subject-Sequence``), many runs interleaved: half
  are 5-step chains of instant nodes (queued, started, one ``steps`` batch, succeeded: 4
  messages), 4 in 10 are 5-step chains of steps the shell runs (each ``step.succeeded``
  shares a batch with the next ``step.started``: 9 messages), 1 in 10 fails after a
  retry (8 messages). Then the registry starts with its projection on, and the time is
  taken from its durable consumer's creation to the moment every message is acked.
  Figures: messages/s (each a stream sequence, the projection's unit) and the step events
  they carry; the CPU each process used; where the registry's time went (its
  ``..._batch_phase_seconds`` metrics).
- ``lag``: the registry (projection on) and an executor run together while
  ``bench/executor.py``'s burst (200 runs of a 5-step chain at once) is submitted, several
  times. The lag of each event (publish to the commit that projected it) comes from the
  registry's histogram; the lag of each run's end is also observed from outside: this
  process notes when it sees the terminal event and polls PostgreSQL (every 5 ms) for the
  run's row turning terminal. Run twice: NATS with its default fsync and with
  ``sync_interval: always``.

    uv run python bench/projection.py --out bench/results/projection.json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import os
import re
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import asyncpg
import msgspec
import nats
from executor import Runner, burst, chain  # bench/executor.py (scripts run from bench/)
from gateway import process_cpu, profile  # bench/gateway.py
from nats.js import errors as js_errors
from workload import summary, wait_ready, write_results

from flowmesh_devtools.localstack import ensure_nats, ensure_postgres, free_port
from flowmesh_proto import headers as h
from flowmesh_proto import registry as r
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import (
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    StepBatch,
    StepFailed,
    StepRetrying,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.rpc import RpcClient

ENCODER = msgspec.json.Encoder()
SUBJECTS = Subjects("fm")
STREAMS = stream_names("FM")
CONSUMER = "registry-projection"
SERVICE = "service:bench"
TARGETS = {"events_per_s": 10_000, "lag_s": 1.0}


class Stack(NamedTuple):
    db_url: str
    database: str
    admin_db: asyncpg.Connection
    nats_url: str
    nats_pid: int | None
    registry_port: int


@contextlib.asynccontextmanager
async def infrastructure(sync_always: bool = False) -> AsyncIterator[Stack]:
    """A fresh database and a fresh nats-server (no services yet)."""
    home = Path.cwd() / ".flowmesh"
    pg = await ensure_postgres(
        home / "bench",
        os.environ.get("DATABASE_URL") or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    database = f"fm_bench_{secrets.token_hex(4)}"
    admin = await asyncpg.connect(pg.url)
    await admin.execute(f'CREATE DATABASE "{database}"')
    db_url = pg.url.rsplit("/", 1)[0] + f"/{database}"
    store = Path(tempfile.mkdtemp(prefix="fm-bench-nats-"))
    server = await ensure_nats(store, sync_always=sync_always)
    admin_db = await asyncpg.connect(db_url)
    try:
        pid = server.process.pid if server.process is not None else None
        yield Stack(db_url, database, admin_db, server.url, pid, free_port())
    finally:
        await admin_db.close()
        await server.stop()
        shutil.rmtree(store, ignore_errors=True)
        await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
        await pg.stop()


async def start_registry(fm: Stack, *, projection: bool) -> asyncio.subprocess.Process:
    env = {
        **os.environ,
        "FLOWMESH_REGISTRY_DATABASE_URL": fm.db_url,
        "FLOWMESH_REGISTRY_NATS_URL": fm.nats_url,
        "FLOWMESH_REGISTRY_HTTP_PORT": str(fm.registry_port),
        "FLOWMESH_REGISTRY_LOG_LEVEL": "warning",
        "FLOWMESH_REGISTRY_POOL_MAX_SIZE": "10",
        "FLOWMESH_REGISTRY_PROJECTION_ENABLED": "true" if projection else "false",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmesh_registry", env=env
    )
    await wait_ready(f"http://127.0.0.1:{fm.registry_port}/readyz", process, "registry")
    return process


async def start_executor(fm: Stack) -> asyncio.subprocess.Process:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": fm.nats_url,
        "FLOWMESH_EXECUTOR_HTTP_PORT": str(port),
        "FLOWMESH_EXECUTOR_LOG_LEVEL": "warning",
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmesh_executor", env=env
    )
    await wait_ready(f"http://127.0.0.1:{port}/readyz", process, "executor")
    return process


async def stop(process: asyncio.subprocess.Process) -> None:
    if process.returncode is None:
        process.terminate()
        await process.wait()


async def tenant_and_workflow(nc: Any, definition: dict[str, Any]) -> tuple[str, r.Workflow]:
    client = RpcClient(nc, SUBJECTS, timeout=10.0)
    tenant = f"bench-{secrets.token_hex(3)}"
    await client.send(
        "tenant_create", r.TenantCreate(id=tenant), r.TenantCreated, principal=SERVICE
    )
    workflow = await client.send(
        "workflow_create",
        r.WorkflowCreate(definition=definition),
        r.Workflow,
        tenant=tenant,
        principal=SERVICE,
    )
    return tenant, workflow


# --- realistic run events ----------------------------------------------------------------


def plan(tenant: str, workflow_id: str, i: int, start: datetime) -> list[RunEvent]:
    """The events of run ``i``: an instant chain, a chain of shell steps, or a failure."""
    run_id = str(new_run_id())
    clock = itertools.count()

    def ref() -> dict[str, Any]:
        at = start + timedelta(microseconds=150 * next(clock))
        return {"tenant": tenant, "run_id": run_id, "workflow_id": workflow_id, "version": 1,
                "at": at}  # fmt: skip

    data = {"order": f"o-{i}", "total": i % 1000, "customer": {"id": i % 97, "tier": "gold"}}
    events: list[RunEvent] = [
        RunQueued(**ref(), trigger=TriggerInfo(kind="api", data=data), input=data),
        RunStarted(**ref(), executor="bench"),
    ]
    nodes = [f"n{k}" for k in range(5)]
    shape = i % 10
    if shape < 5:  # instant nodes: every step in one batch
        events.append(
            StepBatch(**ref(), events=[
                StepSucceeded(**ref(), node_id=n, output={"node": n, "ok": True}) for n in nodes
            ])
        )  # fmt: skip
        events.append(RunSucceeded(**ref(), output={"n4": {"node": "n4", "ok": True}}))
    elif shape < 9:  # shell steps: each success shares a message with the next start
        events.append(StepStarted(**ref(), node_id=nodes[0]))
        for k, node in enumerate(nodes):
            output = {"status": 200, "body": {"id": f"{node}-{i}", "items": [1, 2, 3]}}
            done = StepSucceeded(**ref(), node_id=node, output=output)
            if k + 1 < len(nodes):
                nxt = StepStarted(**ref(), node_id=nodes[k + 1])
                events.append(StepBatch(**ref(), events=[done, nxt]))
            else:
                events.append(done)
        events.append(RunSucceeded(**ref(), output={"n4": {"status": 200}}))
    else:  # a failure, retried once, then for good
        events += [
            StepStarted(**ref(), node_id="n0"),
            StepFailed(**ref(), node_id="n0", attempt=1, error_class="HTTPError",
                       message="503 from upstream", final=False),
            StepRetrying(**ref(), node_id="n0", attempt=2, delay_ms=200),
            StepStarted(**ref(), node_id="n0", attempt=2),
            StepFailed(**ref(), node_id="n0", attempt=2, error_class="HTTPError",
                       message="503 from upstream"),
            RunFailed(**ref(), error=RunError(code="HTTPError", message="503", node_id="n0")),
        ]  # fmt: skip
    return events


def step_events(events: list[RunEvent]) -> int:
    """Events folded: a ``steps`` batch counts as the events it carries."""
    return sum(len(e.events) if isinstance(e, StepBatch) else 1 for e in events)


async def prepublish(
    js: Any, tenant: str, workflow_id: str, runs: int, concurrency: int
) -> dict[str, Any]:
    """Publish ``runs`` runs' events, ``concurrency`` runs at a time, each fenced."""
    counts = {"messages": 0, "events": 0}
    indexes = iter(range(runs))
    start = datetime.now(UTC) - timedelta(minutes=5)

    async def worker() -> None:
        for i in indexes:
            events = plan(tenant, workflow_id, i, start + timedelta(milliseconds=i))
            previous = 0
            for event in events:
                ack = await js.publish(
                    SUBJECTS.run_events(tenant, event.run_id),
                    ENCODER.encode(event),
                    headers={h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(previous)},
                )
                previous = ack.seq
            counts["messages"] += len(events)
            counts["events"] += step_events(events)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {**counts, "publish_s": round(time.perf_counter() - began, 2)}


# --- measuring -----------------------------------------------------------------------------


async def registry_metrics(port: int) -> dict[str, float]:
    """The registry's projection metrics (``name{labels}`` -> value)."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    found = {}
    for line in text.splitlines():
        if line.startswith("flowmesh_registry_projection"):
            name, _, value = line.rpartition(" ")
            found[name] = float(value)
    return found


def lag_histogram(before: dict[str, float], after: dict[str, float]) -> dict[str, Any]:
    """Per-event lag from the registry's histogram: counts per bucket over the phase."""
    prefix = "flowmesh_registry_projection_event_lag_seconds_bucket"
    buckets = []
    for name, value in after.items():
        match = re.fullmatch(re.escape(prefix) + r'\{le="([^"]+)"\}', name)
        if match:
            bound = float(match.group(1))
            buckets.append((bound, value - before.get(name, 0.0)))
    buckets.sort()
    total = buckets[-1][1] if buckets else 0

    def bound_of(quantile: float) -> float | None:
        for bound, count in buckets:
            if total and count >= quantile * total:
                return bound
        return None

    name = "flowmesh_registry_projection_event_lag_seconds"
    seconds = after.get(f"{name}_sum", 0) - before.get(f"{name}_sum", 0)
    return {
        "events": int(total),
        "mean_ms": round(seconds / total * 1000, 2) if total else None,
        "p50_at_most_s": bound_of(0.5),
        "p99_at_most_s": bound_of(0.99),
        "p999_at_most_s": bound_of(0.999),
        "max_at_most_s": bound_of(1.0),
    }


def phases(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    name = "flowmesh_registry_projection_batch_phase_seconds_sum"
    out = {}
    for key, value in after.items():
        match = re.fullmatch(re.escape(name) + r'\{phase="([^"]+)"\}', key)
        if match:
            out[match.group(1)] = round(value - before.get(key, 0.0), 3)
    return out


async def cpu_of(fm: Stack, registry: int, others: dict[str, int | None]) -> dict[str, float]:
    rows = await fm.admin_db.fetch(
        "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
        fm.database,
    )
    pids = {"registry": [registry], "postgres": [row["pid"] for row in rows]}
    pids.update({name: [pid] for name, pid in others.items() if pid})
    return {name: sum(process_cpu(p) for p in group) for name, group in pids.items()}


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    async with infrastructure() as fm:
        setup = await start_registry(fm, projection=False)
        nc = await nats.connect(fm.nats_url)
        try:
            tenant, wf = await tenant_and_workflow(nc, chain("chain5", 5))
            await stop(setup)
            js = nc.jetstream()
            published = await prepublish(js, tenant, wf.id, args.runs, args.publish_concurrency)
            last = (await js.stream_info(STREAMS.run_events)).state.last_seq
            print("published", published, flush=True)
            await fm.admin_db.execute("CHECKPOINT")

            spawned = time.perf_counter()
            registry = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "flowmesh_registry",
                env={
                    **os.environ,
                    "FLOWMESH_REGISTRY_DATABASE_URL": fm.db_url,
                    "FLOWMESH_REGISTRY_NATS_URL": fm.nats_url,
                    "FLOWMESH_REGISTRY_HTTP_PORT": str(fm.registry_port),
                    "FLOWMESH_REGISTRY_LOG_LEVEL": "warning",
                    "FLOWMESH_REGISTRY_PROJECTION_BATCH_SIZE": str(args.batch_size),
                },
            )  # fmt: skip
            spy = await profile(registry.pid, args.profile_seconds, args.profile)
            began = cpu_before = None
            while True:
                await asyncio.sleep(0.005)
                try:
                    info = await js.consumer_info(STREAMS.run_events, CONSUMER)
                except js_errors.NotFoundError:
                    continue
                if began is None:
                    began = time.perf_counter()
                    cpu_before = await cpu_of(fm, registry.pid, {"nats": fm.nats_pid})
                drained = info.num_pending == 0 and info.num_ack_pending == 0
                if drained and info.ack_floor.stream_seq >= last:
                    break
            done = time.perf_counter()
            assert cpu_before is not None
            assert began is not None
            cpu_after = await cpu_of(fm, registry.pid, {"nats": fm.nats_pid})
            seconds = done - began
            metrics = await registry_metrics(fm.registry_port)
            if spy is not None:
                await spy.wait()
            await stop(registry)
            rows = await fm.admin_db.fetchrow(
                "SELECT count(*) AS runs, count(*) FILTER (WHERE counted) AS ended,"
                " (SELECT count(*) FROM step_runs) AS steps,"
                " (SELECT execution_count FROM workflows) AS executions FROM runs"
            )
        finally:
            await nc.close()
    batches = metrics.get("flowmesh_registry_projection_batches_total", 0)
    result = {
        **published,
        "runs": args.runs,
        "start_to_consumer_s": round(began - spawned, 2),
        "projection_s": round(seconds, 3),
        "messages_per_s": round(published["messages"] / seconds),
        "step_events_per_s": round(published["events"] / seconds),
        "batches": int(batches),
        "messages_per_batch": round(published["messages"] / batches, 1) if batches else None,
        "registry_phase_seconds": phases({}, metrics),
        "cpu_cores": {
            name: round((cpu_after[name] - cpu_before[name]) / seconds, 2) for name in cpu_after
        },
        "stored": dict(rows),
    }
    print("throughput", result, flush=True)
    return result


class EndWatch:
    """Polls PostgreSQL for runs whose row has turned terminal, noting when each did."""

    def __init__(self, admin_db: asyncpg.Connection, tenant: str) -> None:
        self.db, self.tenant = admin_db, tenant
        self.seen: dict[str, float] = {}
        self.waiting: set[str] = set()

    async def watch(self, stop: asyncio.Event) -> None:
        while not stop.is_set() or self.waiting:
            if self.waiting:
                rows = await self.db.fetch(
                    "SELECT id FROM runs WHERE tenant_id = $1 AND id = ANY($2::uuid[])"
                    " AND status IN ('succeeded', 'failed', 'cancelled', 'timed_out')",
                    self.tenant,
                    list(self.waiting),
                )
                now = time.perf_counter()
                for row in rows:
                    run_id = str(row["id"])
                    self.seen[run_id] = now
                    self.waiting.discard(run_id)
            await asyncio.sleep(0.005)


async def lag(args: argparse.Namespace, sync_always: bool) -> dict[str, Any]:
    async with infrastructure(sync_always) as fm:
        registry = await start_registry(fm, projection=True)
        executor = await start_executor(fm)
        nc = await nats.connect(fm.nats_url)
        try:
            tenant, wf = await tenant_and_workflow(nc, chain("chain5", 5))
            runner = Runner(nc, tenant)
            await runner.start()
            workflow = {"id": wf.id, "version": wf.version}
            await burst(runner, workflow, 20)  # warm-up
            await asyncio.sleep(1.0)
            watch = EndWatch(fm.admin_db, tenant)
            stop_watch = asyncio.Event()
            watcher = asyncio.create_task(watch.watch(stop_watch))
            before = await registry_metrics(fm.registry_port)
            cpu_before = await cpu_of(
                fm, registry.pid, {"nats": fm.nats_pid, "executor": executor.pid}
            )
            began = time.perf_counter()
            bursts = []
            ends: list[float] = []
            for _ in range(args.bursts):
                known = set(runner.done)
                task = asyncio.create_task(burst(runner, workflow, 200))
                while not task.done():  # hand each finished run to the watcher
                    watch.waiting.update(set(runner.done) - known - set(watch.seen))
                    await asyncio.sleep(0.002)
                bursts.append(task.result())
                new = set(runner.done) - known
                watch.waiting.update(new - set(watch.seen))
                deadline = time.perf_counter() + 30
                while watch.waiting and time.perf_counter() < deadline:  # noqa: ASYNC110 - the watcher polls PostgreSQL
                    await asyncio.sleep(0.005)
                ends += [watch.seen[i] - runner.done[i][0] for i in new if i in watch.seen]
                await asyncio.sleep(0.5)
            seconds = time.perf_counter() - began
            cpu_after = await cpu_of(
                fm, registry.pid, {"nats": fm.nats_pid, "executor": executor.pid}
            )
            after = await registry_metrics(fm.registry_port)
            watch.waiting.clear()
            stop_watch.set()
            await watcher
        finally:
            await nc.close()
            await stop(executor)
            await stop(registry)
    result = {
        "bursts": bursts,
        "run_end_visible_after": summary(ends),
        "unseen_runs": 200 * args.bursts - len(ends),
        "event_lag_registry_histogram": lag_histogram(before, after),
        "registry_phase_seconds": phases(before, after),
        "cpu_cores": {
            name: round((cpu_after[name] - cpu_before[name]) / seconds, 2) for name in cpu_after
        },
    }
    print("lag", "sync_always" if sync_always else "default", result, flush=True)
    return result


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": await throughput(args)}
    if args.throughput_only:
        return results
    results["lag_default_fsync"] = await lag(args, sync_always=False)
    if not args.quick:
        results["lag_sync_interval_always"] = await lag(args, sync_always=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=20_000, help="runs pre-published")
    parser.add_argument("--publish-concurrency", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500, help="the registry's setting")
    parser.add_argument("--bursts", type=int, default=5, help="200-run bursts in the lag phase")
    parser.add_argument("--quick", action="store_true", help="default fsync only")
    parser.add_argument("--throughput-only", action="store_true", help="while profiling")
    parser.add_argument(
        "--profile", type=Path, help="py-spy the registry while it projects (.svg or .txt)"
    )
    parser.add_argument("--profile-seconds", type=float, default=8.0)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    results = asyncio.run(run(args))
    write_results(
        "projection.py",
        started,
        results,
        args.out,
        note="registry, executor, nats-server, PostgreSQL and this client share them",
        targets=TARGETS,
    )


if __name__ == "__main__":
    main()
