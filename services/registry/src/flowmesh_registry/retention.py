"""Run-history retention: runs older than their tenant's setting are deleted, in batches.

Every ``interval`` seconds (and once shortly after start) the sweep reads each tenant's
``run_retention_days`` (the registry's default when unset) and deletes that tenant's runs
created before ``now - days``, at most ``batch_size`` runs (with their steps) per
statement, each statement its own transaction under the tenant's row-level security, until
none is left. Runs being projected at that moment are skipped (``SKIP LOCKED``) and caught
by the next sweep. A deleted run's share of its workflow's statistics is taken out in the
same statement, so counts, average and p95 keep describing the runs the registry keeps.

The run-events stream keeps events for ``run_events_max_age`` (30 days by default, the
same as the default retention): a replay never brings back a deleted run, because the
projection does not store a run created before its tenant's retention.
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC, datetime, timedelta

import msgspec
import structlog

from flowmesh_registry import run_sql as sql
from flowmesh_registry.db import Database

log = structlog.get_logger("flowmesh.registry.retention")


class Swept(msgspec.Struct, frozen=True, kw_only=True):
    """What one tenant's sweep deleted: the runs of each statement, and the steps."""

    tenant: str
    batches: list[int]
    steps: int

    @property
    def runs(self) -> int:
        return sum(self.batches)


class RunRetention:
    def __init__(
        self,
        db: Database,
        *,
        default_days: int = 30,
        batch_size: int = 1000,
        interval: float = 3600.0,
        first_delay: float = 60.0,
    ) -> None:
        self.db = db
        self.default_days, self.batch_size = default_days, batch_size
        self.interval, self.first_delay = interval, first_delay
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="registry.retention")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        await asyncio.sleep(self.first_delay)
        while True:
            try:
                swept = await self.sweep()
                deleted = sum(tenant.runs for tenant in swept)
                if deleted:
                    log.info("retention.swept", runs=deleted, tenants=len(swept))
            except Exception as exc:  # the next sweep tries again
                log.warning("retention.failed", error=str(exc), error_type=type(exc).__name__)
            await asyncio.sleep(self.interval)

    async def sweep(self, now: datetime | None = None) -> list[Swept]:
        """Delete every tenant's expired runs; the tenants where something was deleted."""
        now = now or datetime.now(UTC)
        async with self.db.system_conn() as conn:
            tenants = await conn.fetch(sql.RETENTION_BY_TENANT, self.default_days)
        swept = []
        for row in tenants:
            result = await self.sweep_tenant(row["tenant_id"], now - timedelta(days=row["days"]))
            if result.batches:
                swept.append(result)
        return swept

    async def sweep_tenant(self, tenant: str, before: datetime) -> Swept:
        """Delete ``tenant``'s runs created before ``before``, ``batch_size`` at a time."""
        batches: list[int] = []
        steps = 0
        while True:
            async with self.db.tenant_tx(tenant) as conn:
                row = await conn.fetchrow(sql.DELETE_EXPIRED, tenant, before, self.batch_size)
            if row["runs"]:
                batches.append(row["runs"])
                steps += row["steps"]
            if row["runs"] < self.batch_size:
                return Swept(tenant=tenant, batches=batches, steps=steps)
