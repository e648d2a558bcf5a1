"""Run history as the projection stored it: one run with its steps, listings, statistics.

A run of another tenant is indistinguishable from a missing one (404 NOT_FOUND); a
malformed id is as missing as an unknown one. Listings run newest first with keyset
cursors (:mod:`.cursors`) over ``(created_at, id)``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import get_args

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import parse_uuid
from flowmesh_proto.registry import RunList, RunPage, WorkflowStats
from flowmesh_proto.runs import Run, RunStatus, TriggerKind
from flowmesh_registry import run_sql as sql
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.db import Database
from flowmesh_registry.problems import field_problem
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.run_rows import run_of
from flowmesh_registry.workflows import not_found as workflow_not_found
from flowmesh_shared.errors import FlowmeshError

#: What a run cursor belongs to (runs have one order; a workflow cursor is refused).
RUN_SORT = "runs:-created_at"


def run_not_found(run_id: str) -> FlowmeshError:
    return FlowmeshError(ErrorCode.NOT_FOUND, f"run {run_id} was not found")


class RunHistory:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def get(self, tenant: str, run_id: str) -> Run:
        parsed = parse_uuid(run_id)
        if parsed is None:
            raise run_not_found(run_id)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(sql.GET_RUN, tenant, parsed)
            if row is None:
                raise run_not_found(run_id)
            steps = await conn.fetch(sql.STEPS_OF_RUN, tenant, parsed)
        check_tenant(row, tenant)
        for step in steps:
            check_tenant(step, tenant)
        return run_of(row, steps)

    async def list(self, tenant: str, request: RunList) -> RunPage:
        if not 1 <= request.limit <= 100:
            raise field_problem("limit", "limit must be between 1 and 100")
        workflow_id = None
        if request.workflow_id is not None:
            workflow_id = parse_uuid(request.workflow_id)
            if workflow_id is None:
                raise field_problem("workflow_id", "workflow_id must be a UUID")
        for name in ("created_after", "created_before"):
            moment: datetime | None = getattr(request, name)
            if moment is not None and moment.tzinfo is None:
                raise field_problem(name, f"{name} must be a time with an offset (RFC 3339)")
        after_time, after_id = _cursor_key(request.cursor)
        statuses: list[str] = [*request.status] or [*_STATUSES]
        kinds = [*_KINDS] if request.trigger_kind is None else [request.trigger_kind]
        async with self.db.tenant_tx(tenant) as conn:
            await conn.execute(sql.FORCE_CUSTOM_PLANS)
            rows = await conn.fetch(
                sql.LIST_RUNS,
                tenant,
                workflow_id,
                statuses,
                kinds,
                request.created_after,
                request.created_before,
                after_time,
                after_id,
                request.limit + 1,
            )
        for row in rows:
            check_tenant(row, tenant)
        items = [run_of(row) for row in rows[: request.limit]]
        has_more = len(rows) > request.limit
        cursor = None
        if has_more and items:
            last = items[-1]
            cursor = encode_cursor(RUN_SORT, [last.created_at.isoformat(), last.id])
        return RunPage(items=items, next_cursor=cursor, has_more=has_more)

    async def stats(self, tenant: str, workflow_id: str) -> WorkflowStats:
        parsed = parse_uuid(workflow_id)
        if parsed is None:
            raise workflow_not_found(workflow_id)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(sql.WORKFLOW_STATS, tenant, parsed)
        if row is None:
            raise workflow_not_found(workflow_id)
        check_tenant(row, tenant)
        timed = row["timed_count"]
        return WorkflowStats(
            execution_count=row["execution_count"],
            success_count=row["success_count"],
            failure_count=row["failure_count"],
            last_executed_at=row["last_executed_at"],
            last_execution_status=row["last_execution_status"],
            average_execution_ms=round(row["total_duration_ms"] / timed, 3) if timed else None,
            p95_execution_ms=row["p95"],
        )


#: What a listing with no status (trigger kind) filter reads: every one (``''``: a run
#: whose trigger names no kind).
_STATUSES: tuple[str, ...] = get_args(RunStatus)
_KINDS: tuple[str, ...] = (*get_args(TriggerKind), "")


def _cursor_key(cursor: str | None) -> tuple[datetime | None, uuid.UUID | None]:
    if not cursor:
        return None, None
    try:
        key = decode_cursor(cursor, RUN_SORT)
        created = datetime.fromisoformat(str(key[0]))
        run_id = parse_uuid(key[1])
    except (CursorError, ValueError, IndexError, TypeError) as exc:
        raise field_problem("cursor", "cursor is not valid") from exc
    if run_id is None or created.tzinfo is None or len(key) != 2:
        raise field_problem("cursor", "cursor is not valid")
    return created, run_id
