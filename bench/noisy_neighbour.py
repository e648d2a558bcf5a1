"""Noisy neighbour: what a hostile tenant does to another tenant's runs (DESIGN section 12).

Every service in its own process (registry, executor, scheduler, gateway; ``stack()`` of
bench/gateway.py, with the gateway's default rate limits) over a fresh nats-server 2.15 and
the machine's PostgreSQL; this process is the victim's client, and a tiny aiohttp server on
loopback that the victim's ``http`` step calls (the executor may reach 127.0.0.0/8 only).

The victim runs a 5-step workflow (transform, condition, http, transform, noop) with
``POST /workflows/{id}/execute?wait=PT30S`` at a fixed arrival rate (open loop: latency
from each request's due time to its answer), while this process probes the executor's and
the scheduler's ``/healthz`` every 20 ms (open loop too). Two phases: no attacker, then an
attacker tenant (its own API key, in its own process: ``--attacker`` below) that, for the
whole phase, in bounded loops at fixed rates:

1. executes a one-step workflow whose transform is two nested comprehensions over 3,000
   items (over its budget: fails with ExpressionBudgetExceeded), and a four-step one whose
   steps fit just under the budget (the nested comprehension over 25 items, and
   ``size()`` of 1,000 objects: the costliest per unit, bench/expressions.py);
2. publishes events (``POST /events``) of a type that a few dozen of its workflows trigger
   on, with a nested-comprehension filter: most with a large ``data.l`` (every filter over
   its budget), some with 25 items (every filter evaluated, none true);
3. opens more ``/events/stream`` SSE streams than its credential's quota and reads them.

    uv run python bench/noisy_neighbour.py --out bench/results/noisy_neighbour.json
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import itertools
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from gateway import Stack, client, machine_busy, process_cpu, stack, wait_quiet
from workload import summary, write_results

NESTED = "trigger.data.items.map(a, trigger.data.items.map(b, a + b))"
READ = "size(trigger.data.objects)"
FILTER = "event.data.l.map(a, event.data.l.map(b, a + b)).size() > 100000"
EVENT_TYPE = "attack.costly"
UNDER_ITEMS = 25  # the nested comprehension over this many fits the default budget
UNDER_OBJECTS = 1000  # size() of this many objects: ~18,000 of the 20,000 units


def victim_workflow(hook: str) -> dict[str, Any]:
    return {
        "name": "victim",
        "nodes": [
            {
                "id": "prepare",
                "type": "transform",
                "parameters": {
                    "output": {"id": "{{ trigger.data.id }}", "n": "{{ trigger.data.n * 2 }}"}
                },
            },
            {
                "id": "check",
                "type": "condition",
                "parameters": {"expression": "nodes.prepare.output.n > 1"},
            },
            {
                "id": "call",
                "type": "http",
                "parameters": {
                    "method": "POST",
                    "url": hook,
                    "body": {"id": "{{ nodes.prepare.output.id }}"},
                },
            },
            {
                "id": "shape",
                "type": "transform",
                "parameters": {
                    "output": {
                        "status": "{{ nodes.call.output.status }}",
                        "echo": "{{ nodes.call.output.body.id }}",
                    }
                },
            },
            {"id": "skip", "type": "noop"},
            {"id": "done", "type": "noop"},
        ],
        "edges": [
            {"from": "prepare", "to": "check"},
            {"from": "check", "to": "call", "when": "true"},
            {"from": "check", "to": "skip", "when": "false"},
            {"from": "call", "to": "shape"},
            {"from": "shape", "to": "done"},
            {"from": "skip", "to": "done"},
        ],
    }


def transform(node_id: str, expression: str) -> dict[str, Any]:
    return {"id": node_id, "type": "transform", "parameters": {"output": f"{{{{ {expression} }}}}"}}


def attacker_workflows(triggers: int) -> dict[str, dict[str, Any]]:
    under = [
        transform("g1", NESTED),
        transform("r1", READ),
        transform("g2", NESTED),
        transform("r2", READ),
    ]
    edges = [{"from": a["id"], "to": b["id"]} for a, b in itertools.pairwise(under)]
    workflows = {
        "over": {"name": "over", "nodes": [transform("grid", NESTED)], "edges": []},
        "under": {"name": "under", "nodes": under, "edges": edges},
    }
    for i in range(triggers):
        workflows[f"filtered-{i}"] = {
            "name": f"filtered-{i}",
            "nodes": [{"id": "done", "type": "noop"}],
            "edges": [],
            "triggers": [{"id": "on", "kind": "event", "event": EVENT_TYPE, "filter": FILTER}],
        }
    return workflows


async def create(session: aiohttp.ClientSession, tenant: str, definition: dict[str, Any]) -> str:
    async with session.post(f"/api/v1/{tenant}/workflows", json=definition) as resp:
        body = await resp.json()
        if resp.status != 201:
            raise SystemExit(f"creating {definition['name']} answered {resp.status}: {body}")
        return str(body["id"])


async def attacker_tenant(fm: Stack) -> tuple[str, str]:
    tenant = "attacker"
    async with (
        aiohttp.ClientSession(fm.url) as plain,
        plain.post(
            "/api/v1/admin/tenants",
            json={"id": tenant},
            headers={"Authorization": f"Bearer {fm.admin_token}"},
        ) as resp,
    ):
        created = await resp.json()
        if resp.status != 201:
            raise SystemExit(f"creating the attacker answered {resp.status}: {created}")
    return tenant, str(created["admin_key"]["key"])


# --- the attacker (its own process) -------------------------------------------------------


class Deadline:
    """When the attacker stops: at ``until`` at the latest, at once when told to (its
    stdin closed by the victim's process at the end of the measurement)."""

    def __init__(self, seconds: float) -> None:
        self.until = time.perf_counter() + seconds
        self.reached = asyncio.Event()

    async def watch(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(self.until - time.perf_counter()):
                await asyncio.to_thread(sys.stdin.read)  # returns at EOF
        self.until = time.perf_counter()
        self.reached.set()


class Tally:
    def __init__(self) -> None:
        self.statuses: collections.Counter[str] = collections.Counter()
        self.skipped = 0  # due while ``cap`` requests were already in flight


async def paced(
    rate: float, deadline: Deadline, cap: int, send: Callable[[int], Awaitable[str]]
) -> dict[str, Any]:
    """``send(i)`` due at a fixed rate until the deadline, at most ``cap`` in flight."""
    tally, tasks = Tally(), set[asyncio.Task[None]]()

    async def one(i: int) -> None:
        try:
            tally.statuses[await send(i)] += 1
        except (aiohttp.ClientError, TimeoutError) as exc:
            tally.statuses[type(exc).__name__] += 1

    start, i = time.perf_counter(), 0
    while (due := start + i / rate) < deadline.until:
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        if deadline.reached.is_set():
            break
        if len(tasks) >= cap:
            tally.skipped += 1
        else:
            task = asyncio.create_task(one(i))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        i += 1
    if tasks:
        await asyncio.wait(tasks, timeout=10)
    return {"rate": rate, "by_status": dict(tally.statuses), "skipped_at_cap": tally.skipped}


async def sse_streams(
    session: aiohttp.ClientSession, base: str, count: int, deadline: Deadline
) -> dict[str, Any]:
    """Open ``count`` streams of the tenant's run events; read the opened ones until the
    deadline."""
    statuses: collections.Counter[str] = collections.Counter()
    received = [0]  # bytes

    async def stream() -> None:
        try:
            timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
            async with session.get(f"{base}/events/stream", timeout=timeout) as resp:
                statuses[str(resp.status)] += 1
                if resp.status != 200:
                    await resp.read()
                    return
                async for chunk in resp.content.iter_any():
                    received[0] += len(chunk)
        except aiohttp.ClientError as exc:
            statuses[type(exc).__name__] += 1

    tasks = []
    for _ in range(count):  # one after another: the quota counts them as they open
        tasks.append(asyncio.create_task(stream()))
        await asyncio.sleep(0.01)
    await deadline.reached.wait()
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return {
        "attempted": count,
        "by_status": dict(statuses),
        "bytes_read": received[0],
    }


async def attack(plan: dict[str, Any]) -> dict[str, Any]:
    base = f"/api/v1/{plan['tenant']}"
    deadline = Deadline(plan["seconds"])
    watcher = asyncio.create_task(deadline.watch())
    ids = plan["workflows"]
    over_input = json.dumps({"input": {"items": list(range(plan["over_items"]))}})
    under_input = json.dumps(
        {
            "input": {
                "items": list(range(UNDER_ITEMS)),
                "objects": [
                    {"id": i, "name": f"item-{i}", "tags": ["a", "b"]} for i in range(UNDER_OBJECTS)
                ],
            }
        }
    )
    big_event = json.dumps({"type": EVENT_TYPE, "data": {"l": list(range(plan["event_items"]))}})
    small_event = json.dumps({"type": EVENT_TYPE, "data": {"l": list(range(UNDER_ITEMS))}})
    json_type = {"Content-Type": "application/json"}

    async with client(plan["url"], plan["key"], 256) as session:

        def post(path: str, body: str) -> Callable[[int], Awaitable[str]]:
            async def send(_: int) -> str:
                async with session.post(path, data=body, headers=json_type) as resp:
                    await resp.read()
                    return str(resp.status)

            return send

        rates, cap, vectors = plan["rates"], 32, plan["vectors"]
        loops: dict[str, Awaitable[dict[str, Any]]] = {}
        if "streams" in vectors:
            loops["sse"] = sse_streams(session, base, plan["streams"], deadline)
        if "runs" in vectors:
            execute = f"{base}/workflows/{{}}/execute"
            loops["execute_over_budget"] = paced(
                rates["over"], deadline, cap, post(execute.format(ids["over"]), over_input)
            )
            loops["execute_under_budget"] = paced(
                rates["under"], deadline, cap, post(execute.format(ids["under"]), under_input)
            )
        if "events" in vectors:
            events = f"{base}/events"
            loops["events_over_budget"] = paced(
                rates["events_over"], deadline, cap, post(events, big_event)
            )
            loops["events_under_budget"] = paced(
                rates["events_under"], deadline, cap, post(events, small_event)
            )
        results = await asyncio.gather(*loops.values())
    await watcher
    return dict(zip(loops, results, strict=True))


# --- the victim and the probes (this process) ---------------------------------------------


async def hook_server() -> tuple[web.AppRunner, str]:
    async def hook(request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response({"id": body.get("id"), "ok": True})

    app = web.Application()
    app.router.add_post("/hook", hook)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}/hook"


async def open_loop(
    rate: float, warmup: float, seconds: float, call: Callable[[int], Awaitable[str]]
) -> dict[str, Any]:
    """``call(i)`` due at ``start + i / rate`` for ``warmup + seconds``; the latency of each
    "ok" due after the warm-up, from its due time."""
    latencies: list[float] = []
    errors: collections.Counter[str] = collections.Counter()

    async def one(i: int, due: float) -> None:
        try:
            outcome = await call(i)
        except (aiohttp.ClientError, TimeoutError) as exc:
            outcome = type(exc).__name__
        if i < skip:
            return
        if outcome == "ok":
            latencies.append(time.perf_counter() - due)
        else:
            errors[outcome] += 1

    tasks, skip = [], int(rate * warmup)
    start = time.perf_counter() + 0.02
    for i in range(int(rate * (warmup + seconds))):
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        tasks.append(asyncio.create_task(one(i, due)))
    await asyncio.gather(*tasks)
    return {**summary(latencies), "errors": dict(errors)}


def healthz(session: aiohttp.ClientSession, url: str) -> Callable[[int], Awaitable[str]]:
    async def probe(_: int) -> str:
        async with session.get(f"{url}/healthz") as resp:
            await resp.read()
            return "ok" if resp.status == 200 else str(resp.status)

    return probe


def victim(session: aiohttp.ClientSession, path: str) -> Callable[[int], Awaitable[str]]:
    async def run(i: int) -> str:
        async with session.post(path, json={"input": {"id": f"v-{i}", "n": i + 1}}) as resp:
            body = await resp.json()
            if resp.status != 200:
                return str(resp.status)
            return "ok" if body.get("status") == "succeeded" else str(body.get("status"))

    return run


async def metric(url: str, name: str) -> float:
    """The sum of a counter's samples in a service's /metrics."""
    async with aiohttp.ClientSession() as session, session.get(f"{url}/metrics") as resp:
        text = await resp.text()
    return sum(
        float(line.rpartition(" ")[2]) for line in text.splitlines() if line.startswith(name)
    )


class Cpu:
    """Cores each process used during a phase, and the rest of the machine."""

    def __init__(self, pids: dict[str, list[int]]) -> None:
        self.pids = pids
        self.before = self.read()
        self.began = time.perf_counter()

    def read(self) -> dict[str, float]:
        return {name: sum(map(process_cpu, pids)) for name, pids in self.pids.items()} | {
            "machine": machine_busy()
        }

    def stop(self) -> dict[str, float]:
        after, wall = self.read(), time.perf_counter() - self.began
        used = {name: (after[name] - self.before[name]) / wall for name in after}
        used["rest of machine"] = used.pop("machine") - sum(used.values())
        return {name: round(max(0.0, value), 2) for name, value in used.items()}


async def window(
    pids: dict[str, list[int]], warmup: float, seconds: float, end: Callable[[], None]
) -> dict[str, float]:
    """The cores used during the measured seconds, then ``end()`` (the attacker stops)."""
    await asyncio.sleep(warmup)
    cpu = Cpu(pids)
    await asyncio.sleep(seconds)
    used = cpu.stop()
    end()
    return used


async def measure(
    fm: Stack,
    args: argparse.Namespace,
    path: str,
    pids: dict[str, list[int]],
    end: Callable[[], None] = lambda: None,
) -> dict[str, Any]:
    """The victim's runs and both /healthz due in ``args.seconds`` after ``args.warmup``
    (and the cores each process used meanwhile); ``end()`` when those seconds are over."""
    async with (
        client(fm.url, fm.key, 64) as session,
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as probes,
    ):
        probe_rate, warmup, seconds = 1 / args.probe_interval, args.warmup, args.seconds
        runs, executor, scheduler, cpu = await asyncio.gather(
            open_loop(args.rate, warmup, seconds, victim(session, path)),
            open_loop(probe_rate, warmup, seconds, healthz(probes, fm.executor_url)),
            open_loop(probe_rate, warmup, seconds, healthz(probes, fm.scheduler_url)),
            window(pids, warmup, seconds, end),
        )
    return {
        "victim_runs": runs,
        "executor_healthz": executor,
        "scheduler_healthz": scheduler,
        "cpu_cores": cpu,
    }


async def attacker_counts(fm: Stack, tenant: str) -> collections.Counter[str]:
    """The attacker's runs by status and failed steps by error class, from the registry's
    projection, once it has caught up."""
    for _ in range(60):
        await asyncio.sleep(1.0)
        pending = await fm.admin_db.fetchval(
            "SELECT count(*) FROM runs WHERE tenant_id = $1 AND status IN ('queued', 'running')",
            tenant,
        )
        if pending == 0:
            break
    counts: collections.Counter[str] = collections.Counter()
    for row in await fm.admin_db.fetch(
        "SELECT status, count(*) AS n FROM runs WHERE tenant_id = $1 GROUP BY status", tenant
    ):
        counts[f"runs_{row['status']}"] = row["n"]
    for row in await fm.admin_db.fetch(
        "SELECT error->>'code' AS error_class, count(*) AS n FROM step_runs"
        " WHERE tenant_id = $1 AND status = 'failed' GROUP BY 1",
        tenant,
    ):
        counts[f"steps_failed_{row['error_class']}"] = row["n"]
    return counts


#: What the attacker does in each phase (``alone``: nothing).
PHASES = {
    "alone": (),
    "expressions": ("runs",),
    "filters": ("events",),
    "all": ("runs", "events", "streams"),
}
OVER_BUDGET = "flowmesh_scheduler_expressions_over_budget_total"


async def attacked(
    fm: Stack, args: argparse.Namespace, path: str, pids: dict[str, list[int]], plan: dict[str, Any]
) -> dict[str, Any]:
    """One phase with the attacker's process running ``plan``."""
    filters_before = await metric(fm.scheduler_url, OVER_BUDGET)
    counts_before = await attacker_counts(fm, plan["tenant"])
    attacker = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--attacker",
        json.dumps(plan),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert attacker.stdin is not None
    await asyncio.sleep(args.ramp)  # it has started, its streams are open
    result = await measure(
        fm, args, path, pids | {"attacker": [attacker.pid]}, attacker.stdin.close
    )
    out, _ = await attacker.communicate()
    counts = await attacker_counts(fm, plan["tenant"])
    counts.subtract(counts_before)
    return {
        **result,
        "attacker": json.loads(out.decode().strip().splitlines()[-1]),
        "attacker_outcomes": {k: v for k, v in sorted(counts.items()) if v},
        "filters_over_budget": await metric(fm.scheduler_url, OVER_BUDGET) - filters_before,
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    hook_runner, hook = await hook_server()
    allow = {"FLOWMESH_EXECUTOR_HTTP_ALLOW_NETWORKS": "127.0.0.0/8"}
    results: dict[str, Any] = {}
    try:
        async with stack(executor=True, scheduler=True, limits={}, executor_env=allow) as fm:
            assert fm.executor
            assert fm.scheduler
            async with client(fm.url, fm.key, 4) as session:
                victim_id = await create(session, fm.tenant, victim_workflow(hook))
            tenant, key = await attacker_tenant(fm)
            async with client(fm.url, key, 4) as session:
                ids = {
                    name: await create(session, tenant, definition)
                    for name, definition in attacker_workflows(args.triggers).items()
                }
            await asyncio.sleep(2.0)  # the scheduler's catalogue learns the triggers
            path = f"/api/v1/{fm.tenant}/workflows/{victim_id}/execute?wait=PT30S"
            backends = await fm.admin_db.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1", fm.database
            )
            pids = {
                "client": [os.getpid()],
                "gateway": [fm.gateway.pid],
                "registry": [fm.registry.pid],
                "executor": [fm.executor.pid],
                "scheduler": [fm.scheduler.pid],
                "nats": [fm.nats_pid or 0],
                "postgres": [row["pid"] for row in backends],  # the registry's pool, ours
            }
            plan = {
                "url": fm.url,
                "tenant": tenant,
                "key": key,
                "workflows": ids,
                # at most; it stops when the measured seconds are over
                "seconds": args.ramp + args.warmup + args.seconds + 30,
                "streams": args.streams,
                "over_items": args.over_items,
                "event_items": args.event_items,
                "rates": {
                    "over": args.over_rate,
                    "under": args.under_rate,
                    "events_over": args.events_over_rate,
                    "events_under": args.events_under_rate,
                },
            }
            for name in args.phases.split(","):
                busy = await wait_quiet(args.quiet_wait)
                vectors = PHASES[name]
                if vectors:
                    result = await attacked(fm, args, path, pids, plan | {"vectors": vectors})
                else:
                    result = await measure(fm, args, path, pids)
                results[name] = {"attacker_does": vectors, "machine_busy_before_cores": busy}
                results[name] |= result
                print(name, results[name], flush=True)
    finally:
        await hook_runner.cleanup()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=20, help="victim runs per second")
    parser.add_argument("--seconds", type=float, default=20, help="measured, per phase")
    parser.add_argument("--warmup", type=float, default=3, help="victim runs not recorded")
    parser.add_argument("--ramp", type=float, default=3, help="attacker's start, not measured")
    parser.add_argument("--probe-interval", type=float, default=0.02, help="/healthz, seconds")
    parser.add_argument("--triggers", type=int, default=36, help="attacker's filtered triggers")
    parser.add_argument("--streams", type=int, default=80, help="SSE streams it tries to open")
    parser.add_argument("--over-items", type=int, default=3000)
    parser.add_argument("--event-items", type=int, default=10_000, help="data.l of big events")
    parser.add_argument("--over-rate", type=float, default=20, help="over-budget runs/s")
    parser.add_argument("--under-rate", type=float, default=20, help="under-budget runs/s")
    parser.add_argument("--events-over-rate", type=float, default=20)
    parser.add_argument("--events-under-rate", type=float, default=5)
    parser.add_argument("--phases", default=",".join(PHASES), help=f"of {', '.join(PHASES)}")
    parser.add_argument("--quiet-wait", type=float, default=30, help="at most, for an idle machine")
    parser.add_argument("--out", type=Path)
    parser.add_argument("--attacker", help=argparse.SUPPRESS)  # the attacker's process
    args = parser.parse_args()
    if args.attacker:
        print(json.dumps(asyncio.run(attack(json.loads(args.attacker)))))
        return
    began = datetime.now(UTC)
    results = asyncio.run(run(args))
    write_results(
        "noisy_neighbour.py",
        began,
        results,
        args.out,
        note="registry, executor, scheduler, gateway, nats-server, PostgreSQL, this client "
        "and the attacker's process share them",
    )


if __name__ == "__main__":
    main()
