"""Quota benchmark: what the gateway's shared quotas cost per request (DESIGN section 12).

Against a fresh nats-server 2.15 on loopback (JetStream, file storage), with the gateway's
own code (:class:`flowmesh_gateway.quotas.Quotas` over the ``FM_QUOTAS`` bucket), this
process measures, one operation after another (latency) and with ``--concurrency`` tasks
on two replicas sharing one tenant (throughput under compare-and-set contention):

- ``rate_local``: the per-process token bucket alone (what deviation 5 used to be);
- ``rate_shared_chunk1``: a shared bucket that every request asks (a read and a
  compare-and-set write: two round trips);
- ``rate_shared_default``: the default (``shared_rate_chunk`` 10, tenant 200/s burst 400,
  so up to 10 tokens drawn per round trip pair);
- ``rate_request``: what one API request pays, a credential's bucket and a tenant's (defaults);
- ``hold``: one hold taken and given back (an SSE stream's or a ``?wait``'s overhead);
- ``queued``: counting a tenant's queued runs (two ``STREAM.INFO`` with a subject filter,
  as ``execute`` does before it publishes), with ``--queued`` messages in the queue.

    uv run python bench/quotas.py --out bench/results/quotas.json
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import nats
from prometheus_client import CollectorRegistry
from workload import summary  # bench/workload.py (scripts run from bench/)

from flowmesh_devtools.localstack import ensure_nats
from flowmesh_gateway.counters import KvCounters
from flowmesh_gateway.holds import HoldLimits
from flowmesh_gateway.main import QUOTAS_TTL
from flowmesh_gateway.quotas import Quotas, rate_key
from flowmesh_gateway.ratelimit import RateLimiter
from flowmesh_gateway.runs import Runs
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.jetstream import StreamLimits, ensure_bucket, provision_streams

LIMITS = HoldLimits(per_credential=1_000_000, per_tenant=1_000_000)


async def timed(count: int, operation: Callable[[int], Awaitable[Any]]) -> dict[str, float]:
    samples = []
    for i in range(count):
        began = time.perf_counter()
        await operation(i)
        samples.append(time.perf_counter() - began)
    return summary(samples)


async def throughput(
    seconds: float, tasks: int, operation: Callable[[int], Awaitable[Any]]
) -> dict[str, float]:
    done = 0
    deadline = time.perf_counter() + seconds

    async def worker(index: int) -> None:
        nonlocal done
        while time.perf_counter() < deadline:
            await operation(index)
            done += 1

    began = time.perf_counter()
    await asyncio.gather(*(worker(i) for i in range(tasks)))
    return {"ops_per_s": round(done / (time.perf_counter() - began)), "tasks": tasks}


async def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="fm-bench-quotas-"))
    server = await ensure_nats(home)
    nc = await nats.connect(server.url)
    try:
        js = nc.jetstream()
        names, subjects = stream_names("FM"), Subjects()
        await provision_streams(js, subjects, names, StreamLimits())
        await ensure_bucket(js, names.quotas, QUOTAS_TTL, StreamLimits())
        settings = GatewaySettings(nats_url=server.url)
        quick = nc.jetstream(timeout=settings.quota_store_timeout_seconds)
        counters = KvCounters(await quick.key_value(names.quotas))

        def replica(name: str, **overrides: Any) -> Quotas:
            values = GatewaySettings(nats_url=server.url, **overrides)
            return Quotas(counters, values, CollectorRegistry(), replica=name)

        a, b = replica("a"), replica("b")
        one = replica("c", shared_rate_chunk=1)
        local = RateLimiter(1e9, 10**9)
        n, rate, burst = args.count, settings.tenant_rate, settings.tenant_burst
        results: dict[str, Any] = {}

        results["rate_local"] = await timed(
            n, lambda i: asyncio.sleep(0, local.take("t", time.monotonic()))
        )
        results["rate_shared_chunk1"] = await timed(
            n, lambda i: one.take(rate_key("tenant", f"c{i}"), 1e9, 10**9, local)
        )
        results["rate_shared_default"] = await timed(
            n, lambda i: a.take(rate_key("tenant", f"d{i // 400}"), rate, burst, local)
        )

        async def request(i: int) -> None:
            await a.take(rate_key("credential", f"k{i // 200}"), 100.0, 200, local)
            await a.take(rate_key("tenant", f"t{i // 400}"), rate, burst, local)

        results["rate_request"] = await timed(n, request)

        async def hold(i: int) -> None:
            async with a.hold("held", f"key:{i % 8}", LIMITS):
                pass

        results["hold"] = await timed(n, hold)

        runs = await Runs.open(nc, settings)
        for i in range(args.queued):
            await js.publish(subjects.run_requests("busy"), b"{}", headers={"Nats-Msg-Id": str(i)})
        assert await runs.queued("busy") == args.queued
        results["queued"] = await timed(n, lambda i: runs.queued("busy"))

        both, ones = (a, b), (one, replica("d", shared_rate_chunk=1))
        results["contended_rate_chunk1_one_tenant"] = await throughput(
            args.seconds,
            args.concurrency,
            lambda i: ones[i % 2].take(rate_key("tenant", "hot"), 1e9, 10**9, local),
        )

        async def contended_hold(i: int) -> None:
            async with both[i % 2].hold("hot", f"key:{i}", LIMITS):
                pass

        results["contended_hold_one_tenant"] = await throughput(
            args.seconds, args.concurrency, contended_hold
        )
        every = (a, *ones, b)
        results["fell_back_to_local"] = sum(q.metrics.store_unavailable._value.get() for q in every)
        for quotas in every:
            await quotas.close()
        return {
            "machine": {"python": platform.python_version(), "cpu": platform.processor()},
            "nats": "nats-server 2.15 (loopback, file storage, 1 node)",
            "args": {k: str(v) for k, v in vars(args).items()},
            "results": results,
        }
    finally:
        await nc.close()
        await server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--count", type=int, default=2000, help="operations per latency phase")
    parser.add_argument("--queued", type=int, default=10_000, help="messages in the queue")
    parser.add_argument("--seconds", type=float, default=5.0, help="per throughput phase")
    parser.add_argument("--concurrency", type=int, default=32, help="tasks, on two replicas")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    report = asyncio.run(run(args))
    text = json.dumps(report, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
