"""Run history benchmark (issue 16): every run filter of the API over millions of runs of
one tenant.

The registry and the gateway each in their own process over a fresh nats-server 2.15 and
the machine's PostgreSQL (a fresh database); this process is the HTTP client, as the
console is. ``--runs`` runs of one tenant (10 million by default) are written straight
into PostgreSQL (as the projection would have left them: 20 workflows, mostly succeeded,
a few failed, cancelled and timed out, 100 running and 50 queued; triggered by api,
event, webhook and rarely cron, never retry; workflow and trigger drawn by hash, so they
are independent of the status), one a second up to now; then ``VACUUM
ANALYZE``. Each scenario is ``GET /api/v1/<tenant>/runs?...&limit=50``, 5 warm-ups then
``--samples`` requests one after another: p50 and p99 of what the client sees.

    uv run python bench/history.py --out bench/results/history.json
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from executor import create  # bench/executor.py (scripts run from bench/)
from gateway import client, stack  # bench/gateway.py
from workload import summary, write_results

WORKFLOWS = 20
CHUNK = 1_000_000

#: One chunk of runs, numbered $2.. $3, one a second ending at $4, of workflows $5.
SEED = """
INSERT INTO runs (tenant_id, id, workflow_id, version, status, trigger, input, output,
                  error, created_at, started_at, finished_at, duration_ms, metrics,
                  last_seq, counted)
SELECT $1, gen_random_uuid(), ($5::uuid[])[1 + abs(hashint8(g)) % array_length($5::uuid[], 1)], 1,
       CASE WHEN g <= 50 THEN 'queued' WHEN g <= 150 THEN 'running'
            WHEN g % 10000 = 7 THEN 'failed' WHEN g % 1000 = 3 THEN 'cancelled'
            WHEN g % 5000 = 11 THEN 'timed_out' ELSE 'succeeded' END,
       jsonb_build_object('kind', CASE WHEN abs(hashint8(-g)) % 2000 = 5 THEN 'cron'
                                       WHEN abs(hashint8(-g)) % 100 < 60 THEN 'api'
                                       WHEN abs(hashint8(-g)) % 100 < 95 THEN 'event'
                                       ELSE 'webhook' END,
                          'data', jsonb_build_object('order', g)),
       jsonb_build_object('order', g, 'customer', 'c-' || (g % 977)),
       CASE WHEN g > 150 THEN '{"ok": true}'::jsonb END,
       CASE WHEN g % 10000 = 7 THEN '{"code": "STEP_FAILED", "message": "boom"}'::jsonb END,
       $4::timestamptz - g * interval '1 second',
       $4::timestamptz - g * interval '1 second' + interval '2 ms',
       CASE WHEN g > 150 THEN $4::timestamptz - g * interval '1 second' + interval '40 ms' END,
       CASE WHEN g > 150 THEN 38.0 END,
       '{"nodes_executed": 3, "nodes_succeeded": 3}'::jsonb,
       g, g > 150
FROM generate_series($2::bigint, $3::bigint) g"""


async def seed(fm: Any, workflows: list[str], runs: int, now: datetime) -> float:
    began = time.perf_counter()
    for first in range(1, runs + 1, CHUNK):
        last = min(runs, first + CHUNK - 1)
        await fm.admin_db.execute(SEED, fm.tenant, first, last, now, workflows, timeout=3600)
        print(f"seeded {last:,} runs", flush=True)
    await fm.admin_db.execute("VACUUM ANALYZE runs", timeout=3600)
    return time.perf_counter() - began


async def sample(session: aiohttp.ClientSession, path: str, n: int) -> dict[str, Any]:
    async def one() -> tuple[float, int]:
        began = time.perf_counter()
        async with session.get(path) as resp:
            body = await resp.json()
            if resp.status != 200:
                raise SystemExit(f"GET {path} answered {resp.status}: {body}")
        return time.perf_counter() - began, len(body["items"])

    for _ in range(5):
        await one()
    samples, found = [], 0
    for _ in range(n):
        seconds, found = await one()
        samples.append(seconds)
    return {**summary(samples), "items": found}


async def deep_cursor(session: aiohttp.ClientSession, base: str, pages: int) -> str:
    """The cursor of page ``pages`` + 1 of the unfiltered listing, by following cursors."""
    cursor = ""
    for _ in range(pages):
        async with session.get(f"{base}?limit=50" + (f"&cursor={cursor}" if cursor else "")) as r:
            cursor = (await r.json())["next_cursor"]
    return cursor


async def measure(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {}
    now = datetime.now(UTC).replace(microsecond=0)
    async with stack() as fm, client(fm.url, fm.key, 2) as session:
        chain = {"nodes": [{"id": "n", "type": "noop"}], "edges": []}
        workflows = [
            (await create(session, fm.tenant, {"name": f"wf{i}", **chain}))["id"]
            for i in range(WORKFLOWS)
        ]
        # Runs go back --runs seconds (115 days for 10 million): keep them all.
        patch = {"run_retention_days": 3650}
        auth = {"Authorization": f"Bearer {fm.admin_token}"}
        async with session.patch(
            f"/api/v1/admin/tenants/{fm.tenant}", json=patch, headers=auth
        ) as resp:
            if resp.status != 200:
                raise SystemExit(f"setting the retention answered {resp.status}")
        results["seed_s"] = round(await seed(fm, workflows, args.runs, now), 1)
        print("seeded in", results["seed_s"], "s", flush=True)
        base = f"/api/v1/{fm.tenant}/runs"
        middle = now - timedelta(seconds=args.runs // 2)
        hour = f"created_after={_q(middle)}&created_before={_q(middle + timedelta(hours=1))}"
        wf = workflows[3]
        scenarios = {
            "newest": "",
            "status_failed": "status=failed",
            "status_running": "status=running",
            "status_queued_running": "status=queued,running",
            "status_succeeded": "status=succeeded",
            "status_failed_cancelled_timed_out": "status=failed,cancelled,timed_out",
            "trigger_cron": "trigger_kind=cron",
            "trigger_retry_none": "trigger_kind=retry",
            "workflow": f"workflow_id={wf}",
            "workflow_status_failed": f"workflow_id={wf}&status=failed",
            "workflow_trigger_webhook": f"workflow_id={wf}&trigger_kind=webhook",
            "status_failed_trigger_webhook": "status=failed&trigger_kind=webhook",
            "workflow_status_trigger": f"workflow_id={wf}&status=cancelled&trigger_kind=event",
            "hour_range": hour,
            "hour_range_status_succeeded": f"{hour}&status=succeeded",
            "hour_range_status_failed": f"{hour}&status=failed",
            "oldest_day": f"created_before={_q(now - timedelta(seconds=args.runs - 86_400))}",
        }
        for name, query in scenarios.items():
            path = f"{base}?limit=50" + (f"&{query}" if query else "")
            results[name] = await sample(session, path, args.samples)
            print(name, results[name], flush=True)
        cursor = await deep_cursor(session, base, args.deep_pages)
        path = f"{base}?limit=50&cursor={cursor}"
        results[f"page_{args.deep_pages + 1}_by_cursor"] = await sample(session, path, args.samples)
        print("deep page", results[f"page_{args.deep_pages + 1}_by_cursor"], flush=True)
    return results


def _q(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=10_000_000, help="runs of the tenant")
    parser.add_argument("--samples", type=int, default=200, help="requests per scenario")
    parser.add_argument("--deep-pages", type=int, default=200, help="pages followed")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    began = datetime.now(UTC)
    results = asyncio.run(measure(args))
    note = "registry, gateway, one nats-server, PostgreSQL and this client share them"
    write_results("history.py", began, results, args.out, note=note)


if __name__ == "__main__":
    main()
