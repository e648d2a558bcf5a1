"""Fair share benchmark (issue 15, DESIGN section 13): does a flood of one tenant's runs
make another tenant wait?

Registry, gateway and one executor each in their own process over a fresh nats-server
2.15 on loopback (as bench/executor.py); this process is the client and publishes runs as
the gateway does (``run.queued``, the request, the doorbell).

- ``quiet``: tenant B submits a one-step (``noop``) run every ``--every`` seconds with
  nothing else running; each run gives two samples: its queue-to-start (its
  ``run.started``'s ``at`` minus its ``run.queued``'s, both stamped by the services) and
  its trigger to ``run.succeeded`` as this client sees it (queue wait, start, one step,
  end).
- ``flood``: tenant A first queues ``--flood`` runs of one ``delay`` step of ``--step``
  seconds (far more than the executor's ``max_runs`` slots: it stays saturated for the
  whole measurement), then B submits as in ``quiet``. With first-come-first-served intake
  each of B's runs waited behind all of A's queued runs; with fair intake it waits for the
  next free slot (at most one slot's turnover: ``--step``).

    uv run python bench/fairness.py --out bench/results/fairness.json

The throughput half of the issue (a burst of 200 five-step runs, fair intake against the
committed first-come-first-served figure) is bench/executor.py's ``burst200``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import nats
from executor import Runner, create  # bench/executor.py (scripts run from bench/)
from gateway import client, new_tenant, stack  # bench/gateway.py
from workload import summary, write_results

from flowmesh_proto.runs import RunQueued, RunStarted, run_event_decoder


def sleeper(seconds: float) -> dict[str, Any]:
    parameters = {"duration": f"PT{seconds}S"}
    return {"name": "sleeper", "nodes": [{"id": "wait", "type": "delay", "parameters": parameters}]}


QUICK = {"name": "quick", "nodes": [{"id": "n", "type": "noop"}]}


class Starts:
    """Each run's queue-to-start, from its ``run.queued`` and ``run.started`` events."""

    def __init__(self) -> None:
        self.queued: dict[str, datetime] = {}
        self.waits: dict[str, float] = {}

    async def on_event(self, msg: Any) -> None:
        try:
            event = run_event_decoder.decode(msg.data)
        except msgspec.DecodeError:
            return
        if isinstance(event, RunQueued):
            self.queued[event.run_id] = event.at
        elif isinstance(event, RunStarted) and event.run_id in self.queued:
            wait = (event.at - self.queued[event.run_id]).total_seconds()
            self.waits[event.run_id] = wait

    def of(self, run_ids: list[str]) -> list[float]:
        return [self.waits[run_id] for run_id in run_ids if run_id in self.waits]


async def trickle(
    runner: Runner, workflow: dict[str, Any], count: int, every: float
) -> list[float]:
    """``count`` runs, one every ``every`` seconds; each one's trigger-to-end."""

    async def one(delay: float) -> float:
        await asyncio.sleep(delay)
        return await runner.one(workflow)

    return list(await asyncio.gather(*(one(i * every) for i in range(count))))


def new_ids(runner: Runner, before: set[str]) -> list[str]:
    return [run_id for run_id in runner.done if run_id not in before]


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    env = {"FLOWMESH_EXECUTOR_MAX_RUNS": str(args.slots)}
    async with stack(executor=True, executor_env=env) as fm:
        nc = await nats.connect(fm.nats_url)
        try:
            b_tenant = "bench-b"
            b_key = await new_tenant(fm.url, fm.admin_token, b_tenant)
            flooder, victim = Runner(nc, fm.tenant), Runner(nc, b_tenant)
            await flooder.start()
            await victim.start()
            starts = Starts()
            await nc.subscribe(f"fm.{b_tenant}.runs.*", cb=starts.on_event)
            async with client(fm.url, fm.key, 4) as a_session:
                slow = await create(a_session, fm.tenant, sleeper(args.step))
            async with client(fm.url, b_key, 4) as b_session:
                quick = await create(b_session, b_tenant, QUICK)
            for _ in range(5):  # warm-up
                await victim.one(quick)
            before = set(victim.done)
            quiet = await trickle(victim, quick, args.samples, args.every)
            results["quiet"] = {
                "queue_to_start": summary(starts.of(new_ids(victim, before))),
                "trigger_to_end": summary(quiet),
            }
            print("quiet", results["quiet"], flush=True)

            began = time.perf_counter()
            flood = await asyncio.gather(*(flooder.submit(slow) for _ in range(args.flood)))
            queued_s = time.perf_counter() - began
            await asyncio.sleep(args.step)  # every slot is A's by now
            before = set(victim.done)
            during = await trickle(victim, quick, args.samples, args.every)
            a_done = sum(1 for run_id in flood if run_id in flooder.done)
            results["flood"] = {
                "queue_to_start": summary(starts.of(new_ids(victim, before))),
                "trigger_to_end": summary(during),
                "a_runs_queued": args.flood,
                "a_queue_s": round(queued_s, 2),
                "a_runs_finished_meanwhile": a_done,
            }
            print("flood", results["flood"], flush=True)
            await asyncio.wait_for(
                asyncio.gather(*(flooder.waiters[i] for i in flood if i in flooder.waiters)),
                args.flood * args.step / args.slots + 120,
            )
        finally:
            await nc.close()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--flood", type=int, default=3000, help="tenant A's queued runs")
    parser.add_argument("--step", type=float, default=1.0, help="seconds of A's one step")
    parser.add_argument("--slots", type=int, default=256, help="the executor's max_runs")
    parser.add_argument("--samples", type=int, default=50, help="tenant B's runs per phase")
    parser.add_argument("--every", type=float, default=0.1, help="seconds between B's runs")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    began = datetime.now(UTC)
    results = asyncio.run(measure(args))
    note = "registry, executor, gateway, one nats-server, PostgreSQL and this client share them"
    write_results("fairness.py", began, results, args.out, note=note)


if __name__ == "__main__":
    main()
