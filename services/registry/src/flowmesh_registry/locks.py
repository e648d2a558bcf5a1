"""Edit locks with a TTL, for UIs: while one is live, others may not change the workflow.

Holding a lock that someone else took gives LOCK_ACQUISITION_FAILED, releasing it
LOCK_NOT_OWNED; writes under someone else's lock give WORKFLOW_LOCKED (see
:meth:`flowmesh_registry.workflows.WorkflowOperations.lock_for_write`). An expired lock is
as good as none.
"""

from __future__ import annotations

import uuid

import asyncpg

from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.registry import Deleted, LockInfo
from flowmesh_registry import audit
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.caller import Caller
from flowmesh_registry.db import Database
from flowmesh_registry.problems import field_problem
from flowmesh_registry.workflows import not_found, workflow_uuid
from flowmesh_shared.errors import FlowmeshError

MAX_TTL_SECONDS = 86_400


class LockOperations:
    def __init__(self, db: Database) -> None:
        self.db = db

    async def lock(self, caller: Caller, workflow_id: str, ttl_seconds: int) -> LockInfo:
        if not 1 <= ttl_seconds <= MAX_TTL_SECONDS:
            raise field_problem("ttl_seconds", "ttl_seconds must be between 1 and 86400")
        wid = workflow_uuid(workflow_id)
        async with self.db.tenant_tx(caller.tenant) as conn:
            await _unless_held_by_another(
                conn, caller, wid, ErrorCode.LOCK_ACQUISITION_FAILED, "workflow is locked by"
            )
            lock = await conn.fetchrow(sql.SET_LOCK, caller.tenant, wid, caller.actor, ttl_seconds)
            await audit.record(
                conn, caller, "workflow.lock", f"workflow:{wid}", detail={"ttl": ttl_seconds}
            )
        return LockInfo(
            workflow_id=str(wid),
            locked_by=lock["locked_by"],
            locked_at=lock["locked_at"],
            expires_at=lock["lock_expires_at"],
        )

    async def unlock(self, caller: Caller, workflow_id: str) -> Deleted:
        wid = workflow_uuid(workflow_id)
        async with self.db.tenant_tx(caller.tenant) as conn:
            await _unless_held_by_another(
                conn, caller, wid, ErrorCode.LOCK_NOT_OWNED, "the lock is held by"
            )
            await conn.execute(sql.CLEAR_LOCK, caller.tenant, wid)
            await audit.record(conn, caller, "workflow.unlock", f"workflow:{wid}")
        return Deleted(id=str(wid))


async def _unless_held_by_another(
    conn: asyncpg.Connection, caller: Caller, wid: uuid.UUID, code: ErrorCode, what: str
) -> None:
    """Lock the workflow's row; 404 when it is missing, ``code`` when another holds the lock."""
    row = await conn.fetchrow(sql.LOCK_WORKFLOW_ROW, caller.tenant, wid)
    if row is None:
        raise not_found(wid)
    if row["lock_live"] and row["locked_by"] != caller.actor:
        raise FlowmeshError(code, f"{what} {row['locked_by']}")
