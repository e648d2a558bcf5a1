"""Scheduler benchmark: event triggers (DESIGN section 10 gives no budget; the issue asks
for event-to-run-start latency and events/s matched, with 1,000 event triggers across 100
tenants).

Every service in its own process (``python -m flowmesh_registry``, ``python -m
flowmesh_scheduler``, ``python -m flowmesh_executor``) over a fresh nats-server 2.15 on
loopback and the machine's PostgreSQL (a fresh database); this process is the client.

Set-up: 100 tenants with 10 workflows each (a ``noop``), each with one event trigger on
its own type (``bench.t<k>``) and a CEL filter (``event.data.amount > 10``): 1,000
triggers. Each event is published on NATS (as other services publish them) for a random
tenant and type; 9 in 10 pass the filter.

- ``throughput``: N events published first with the scheduler stopped, then the scheduler
  starts; the time runs from its consumer's creation until every event is acked, and the
  runs requested are counted (no executor: the requests stay in their work queue).
- ``latency``: scheduler and executor running; events published at a steady rate (open
  loop); for each matching event, the time from its publish to its run's ``run.queued``
  (the scheduler's part) and to its ``run.started`` (the executor took the run), seen on
  the run-events subjects. Run twice: NATS with its default fsync and with
  ``sync_interval: always``.

    uv run python bench/scheduler.py --out bench/results/scheduler.json
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import nats
from gateway import process_cpu
from nats.js import errors as js_errors
from projection import Stack, infrastructure, start_executor, start_registry, stop
from workload import summary, wait_ready, write_results

from flowmesh_devtools.localstack import free_port
from flowmesh_proto import headers as h
from flowmesh_proto import registry as r
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.runs import RunQueued, RunStarted, run_event_decoder
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.rpc import RpcClient

ENCODER = msgspec.json.Encoder()
SUBJECTS = Subjects("fm")
STREAMS = stream_names("FM")
SERVICE = "service:bench"
CONSUMER = "scheduler-events"


async def start_scheduler(fm: Stack) -> tuple[asyncio.subprocess.Process, int]:
    port = free_port()
    env = {
        **os.environ,
        "NATS_URL": fm.nats_url,
        "FLOWMESH_SCHEDULER_HTTP_PORT": str(port),
        "FLOWMESH_SCHEDULER_LOG_LEVEL": os.environ.get("BENCH_SCHEDULER_LOG", "warning"),
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmesh_scheduler", env=env
    )
    await wait_ready(f"http://127.0.0.1:{port}/readyz", process, "scheduler")
    return process, port


async def triggers(nc: Any, tenants: int, per_tenant: int) -> list[str]:
    """``tenants`` tenants with ``per_tenant`` event-triggered workflows each."""
    client = RpcClient(nc, SUBJECTS, timeout=30.0)
    names = [f"bench-{secrets.token_hex(3)}-{i}" for i in range(tenants)]
    gate = asyncio.Semaphore(8)

    async def tenant(name: str) -> None:
        async with gate:
            await client.send(
                "tenant_create", r.TenantCreate(id=name), r.TenantCreated, principal=SERVICE
            )
            for k in range(per_tenant):
                definition = {
                    "name": f"on-t{k}",
                    "nodes": [{"id": "done", "type": "noop"}],
                    "triggers": [
                        {
                            "id": "on",
                            "kind": "event",
                            "event": f"bench.t{k}",
                            "filter": "event.data.amount > 10",
                        }
                    ],
                }
                await client.send(
                    "workflow_create",
                    r.WorkflowCreate(definition=definition),
                    r.Workflow,
                    tenant=name,
                    principal=SERVICE,
                )

    await asyncio.gather(*(tenant(name) for name in names))
    return names


def an_event(tenants: list[str], per_tenant: int, rng: random.Random) -> EventEnvelope:
    return EventEnvelope(
        id=secrets.token_hex(8),
        type=f"bench.t{rng.randrange(per_tenant)}",
        tenant=rng.choice(tenants),
        source="bench",
        time=datetime.now(UTC),
        data={"amount": rng.randrange(100), "note": "x" * 40},
    )


async def publish(js: Any, event: EventEnvelope) -> None:
    await js.publish(
        SUBJECTS.events(event.tenant, event.type),
        ENCODER.encode(event),
        headers={h.MSG_ID: event.id},
    )


async def throughput(args: argparse.Namespace) -> dict[str, Any]:
    async with infrastructure() as fm:
        registry = await start_registry(fm, projection=False)
        nc = await nats.connect(fm.nats_url)
        try:
            tenants = await triggers(nc, args.tenants, args.per_tenant)
            js = nc.jetstream()
            rng = random.Random(7)
            events = [an_event(tenants, args.per_tenant, rng) for _ in range(args.events)]
            matching = sum(1 for event in events if event.data["amount"] > 10)
            began = time.perf_counter()
            for chunk in range(0, len(events), 500):
                await asyncio.gather(*(publish(js, e) for e in events[chunk : chunk + 500]))
            publish_s = time.perf_counter() - began
            last = (await js.stream_info(STREAMS.events)).state.last_seq
            scheduler, _ = await start_scheduler(fm)
            started = cpu = None
            while True:
                await asyncio.sleep(0.005)
                try:
                    info = await js.consumer_info(STREAMS.events, CONSUMER)
                except js_errors.NotFoundError:
                    continue
                if started is None:
                    started = time.perf_counter()
                    cpu = process_cpu(scheduler.pid)
                done = info.num_pending == 0 and info.num_ack_pending == 0
                if done and info.ack_floor.stream_seq >= last:
                    break
            seconds = time.perf_counter() - started
            cpu_used = process_cpu(scheduler.pid) - (cpu or 0.0)
            requests = (await js.stream_info(STREAMS.run_requests)).state.messages
            assert requests == matching, f"{requests} runs requested for {matching} matches"
            await stop(scheduler)
            await stop(registry)
        finally:
            await nc.close()
    result = {
        "tenants": args.tenants,
        "triggers": args.tenants * args.per_tenant,
        "events": args.events,
        "matching_events": matching,
        "runs_requested": requests,
        "publish_s": round(publish_s, 2),
        "match_s": round(seconds, 3),
        "events_per_s": round(args.events / seconds),
        "runs_per_s": round(requests / seconds),
        "scheduler_cpu_cores": round(cpu_used / seconds, 2),
    }
    print("throughput", result, flush=True)
    return result


async def latency(args: argparse.Namespace, sync_always: bool) -> dict[str, Any]:
    async with infrastructure(sync_always) as fm:
        registry = await start_registry(fm, projection=False)
        executor = await start_executor(fm)
        nc = await nats.connect(fm.nats_url)
        scheduler = None
        try:
            tenants = await triggers(nc, args.tenants, args.per_tenant)
            scheduler, port = await start_scheduler(fm)
            js = nc.jetstream()
            sent: dict[str, datetime] = {}
            queued: dict[str, datetime] = {}
            run_of: dict[str, str] = {}
            started: dict[str, datetime] = {}

            async def on_event(msg: Any) -> None:
                # Times are the events' own (``at``: when the scheduler or the executor
                # made them), not when this busy client got round to reading them.
                event = run_event_decoder.decode(msg.data)
                if isinstance(event, RunQueued) and event.trigger.event:
                    event_id = event.trigger.event["id"]
                    queued[event_id] = event.at
                    run_of[event.run_id] = event_id
                elif isinstance(event, RunStarted) and event.run_id in run_of:
                    started[run_of[event.run_id]] = event.at

            sub = await nc.subscribe(SUBJECTS.all_run_events, cb=on_event)
            rng = random.Random(11)
            await asyncio.sleep(1.0)  # the catalogue is loaded (readyz said so)
            interval = 1.0 / args.rate
            begin = time.perf_counter()
            for i in range(args.latency_events):
                due = begin + i * interval
                pause = due - time.perf_counter()
                if pause > 0:
                    await asyncio.sleep(pause)
                event = an_event(tenants, args.per_tenant, rng)
                if event.data["amount"] > 10:
                    sent[event.id] = datetime.now(UTC)
                await publish(js, event)
            deadline = time.perf_counter() + 10
            while len(started) < len(sent) and time.perf_counter() < deadline:  # noqa: ASYNC110 - a bounded wait on a callback's dict
                await asyncio.sleep(0.01)
            await sub.unsubscribe()
            seen_by_scheduler = await lateness(port)
        finally:
            await nc.close()
            if scheduler is not None:
                await stop(scheduler)
            await stop(executor)
            await stop(registry)
    to_queued = [(queued[i] - t).total_seconds() for i, t in sent.items() if i in queued]
    to_started = [(started[i] - t).total_seconds() for i, t in sent.items() if i in started]
    result = {
        "rate_per_s": args.rate,
        "matching_events": len(sent),
        "missing_runs": len(sent) - len(to_started),
        "event_to_run_queued_ms": summary(to_queued),
        "event_to_run_started_ms": summary(to_started),
        "scheduler_histogram_event_publish_to_request": seen_by_scheduler,
    }
    print("latency", "sync_always" if sync_always else "default", result, flush=True)
    return result


async def lateness(port: int) -> dict[str, Any]:
    """The scheduler's own view: its ``fire_lateness`` histogram for events (publish time
    in the stream to the run request published), as bucket counts."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as resp,
    ):
        text = await resp.text()
    buckets = {}
    for line in text.splitlines():
        if (
            line.startswith("flowmesh_scheduler_fire_lateness_seconds_bucket")
            and 'kind="event"' in line
        ):
            bound = line.split('le="')[1].split('"')[0]
            buckets[bound] = float(line.rpartition(" ")[2])
    return {"cumulative_counts_by_upper_bound_s": buckets}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": await throughput(args)}
    results["latency_default_fsync"] = await latency(args, sync_always=False)
    if not args.quick:
        results["latency_sync_interval_always"] = await latency(args, sync_always=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=100)
    parser.add_argument("--per-tenant", type=int, default=10, help="event triggers per tenant")
    parser.add_argument("--events", type=int, default=20_000, help="throughput phase")
    parser.add_argument("--latency-events", type=int, default=2_000)
    parser.add_argument("--rate", type=float, default=200.0, help="events/s in the latency phase")
    parser.add_argument("--quick", action="store_true", help="default fsync only")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    started = datetime.now(UTC)
    results = asyncio.run(run(args))
    write_results(
        "scheduler.py",
        started,
        results,
        args.out,
        note="registry, scheduler, executor, nats-server, PostgreSQL and this client share them",
    )


if __name__ == "__main__":
    main()
