"""Registry benchmark: create, get and list over NATS with many workflows stored.

The registry runs in its own process (``python -m flowmesh_registry``) against PostgreSQL
and a fresh nats-server 2.15 on loopback; this process is the client. Each figure is the
latency of one request/reply as the client sees it (encode, NATS round trip, registry
work including PostgreSQL, decode).

    uv run python bench/registry.py --workflows 10000 --out bench/results/registry.json

PostgreSQL: DATABASE_URL if set, else 127.0.0.1:5432 if it answers, else a local cluster
under .flowmesh/bench-postgres. A fresh database is created and dropped afterwards.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import random
import secrets
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg
from workload import definition, summary, wait_ready  # bench/workload.py (scripts run from bench/)

from flowmesh_devtools.localstack import ensure_nats, ensure_postgres, free_port
from flowmesh_proto import registry as r
from flowmesh_proto.subjects import Subjects
from flowmesh_shared.natsconn import connect, drain
from flowmesh_shared.rpc import RpcClient

PLATFORM = "platform:bench"


async def measure(
    count: int, concurrency: int, call: Callable[[int], Awaitable[object]]
) -> tuple[list[float], float]:
    samples: list[float] = []
    queue = iter(range(count))

    async def worker() -> None:
        for i in queue:
            began = time.perf_counter()
            await call(i)
            samples.append(time.perf_counter() - began)

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return samples, time.perf_counter() - began


async def run(args: argparse.Namespace) -> dict[str, Any]:
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
    nats = await ensure_nats(store)
    port = free_port()
    env = {
        **os.environ,
        "FLOWMESH_REGISTRY_DATABASE_URL": db_url,
        "FLOWMESH_REGISTRY_NATS_URL": nats.url,
        "FLOWMESH_REGISTRY_HTTP_PORT": str(port),
        "FLOWMESH_REGISTRY_LOG_LEVEL": "warning",
        "FLOWMESH_REGISTRY_POOL_MAX_SIZE": "10",
    }
    admin_db = await asyncpg.connect(db_url)
    registry = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "flowmesh_registry", env=env
    )
    results: dict[str, Any] = {}
    try:
        await wait_ready(f"http://127.0.0.1:{port}/readyz", registry, "registry")
        nc = await connect(nats.url, "bench")
        client = RpcClient(nc, Subjects("fm"), timeout=30)
        tenant = f"bench-{secrets.token_hex(3)}"
        created = await client.send(
            "tenant_create", r.TenantCreate(id=tenant), r.TenantCreated, principal=PLATFORM
        )
        principal = f"key:{tenant}:{created.admin_key.id}"
        ids: list[str] = []

        async def create(i: int) -> None:
            wf = await client.send(
                "workflow_create",
                r.WorkflowCreate(definition=definition(i)),
                r.Workflow,
                tenant=tenant,
                principal=principal,
            )
            ids.append(wf.id)

        samples, wall = await measure(args.workflows, args.concurrency, create)
        # What autovacuum does soon after a bulk load: planner statistics, and the GIN
        # indexes' pending lists merged (until then a trigram search is a sequential scan).
        await admin_db.execute("VACUUM ANALYZE")
        results["create"] = {
            **summary(samples),
            "per_s": round(len(samples) / wall, 1),
            "concurrency": args.concurrency,
        }
        print("create", results["create"], flush=True)

        async def get(_: int) -> None:
            await client.send(
                "workflow_get",
                r.WorkflowGet(id=random.choice(ids)),
                r.Workflow,
                tenant=tenant,
                principal=principal,
            )

        await measure(200, 1, get)  # warm-up
        for concurrency in (1, args.concurrency):
            samples, wall = await measure(args.requests, concurrency, get)
            results[f"get_c{concurrency}"] = {
                **summary(samples),
                "per_s": round(len(samples) / wall, 1),
            }
            print(f"get c={concurrency}", results[f"get_c{concurrency}"], flush=True)

        async def list_page(_: int) -> None:
            page = await client.send(
                "workflow_list",
                r.WorkflowList(limit=50),
                r.WorkflowPage,
                tenant=tenant,
                principal=principal,
            )
            assert len(page.items) == 50

        async def list_filtered(i: int) -> None:
            await client.send(
                "workflow_list",
                r.WorkflowList(limit=50, tags=[f"team-{i % 20}"], sort="name"),
                r.WorkflowPage,
                tenant=tenant,
                principal=principal,
            )

        async def search(i: int) -> None:
            await client.send(
                "workflow_list",
                r.WorkflowList(limit=50, q=f"bench-{i % 9999:05d}"),
                r.WorkflowPage,
                tenant=tenant,
                principal=principal,
            )

        for name, fn in (
            ("list50", list_page),
            ("list50_tag_filter", list_filtered),
            ("list50_search", search),
        ):
            samples, wall = await measure(args.list_requests, 1, fn)
            results[name] = {**summary(samples), "per_s": round(len(samples) / wall, 1)}
            print(name, results[name], flush=True)
        await drain(nc, 5)
    finally:
        registry.terminate()
        await registry.wait()
        await nats.stop()
        await admin_db.close()
        if args.keep_database:
            print(f"kept database {db_url}", flush=True)
        else:
            await admin.execute(f'DROP DATABASE "{database}" WITH (FORCE)')
        await admin.close()
        await pg.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workflows", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=5_000)
    parser.add_argument("--list-requests", type=int, default=500)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--keep-database", action="store_true", help="for EXPLAIN afterwards")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    report = {
        "command": "uv run python " + " ".join(sys.argv),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "workflows_stored": args.workflows,
        "results": results,
        "targets": {"get_p99_ms": 5, "list50_p99_ms": 15},
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
