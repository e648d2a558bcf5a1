"""Batches of workflow writes: up to 100 operations, in order, all or nothing.

The batch runs in one tenant transaction. The first operation that fails rolls back every
other; its problem comes back with its paths under ``operations[i]`` and a detail that
names it, and nothing is stored, audited or announced.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal

import asyncpg
import msgspec

from flowmesh_proto.errors import ProblemItem
from flowmesh_proto.registry import (
    MAX_BATCH_OPERATIONS,
    BatchCreate,
    BatchDelete,
    BatchOperation,
    BatchResult,
    BatchResults,
    BatchUpdate,
    BatchUpsert,
    WorkflowBatch,
)
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.caller import Caller
from flowmesh_registry.problems import field_problem
from flowmesh_registry.workflows import Stored, WorkflowOperations, workflow_uuid
from flowmesh_shared.errors import FlowmeshError

BatchOp = Literal["create", "update", "upsert", "delete"]


async def run_batch(ops: WorkflowOperations, caller: Caller, batch: WorkflowBatch) -> BatchResults:
    if not 1 <= len(batch.operations) <= MAX_BATCH_OPERATIONS:
        raise field_problem("operations", f"a batch holds 1 to {MAX_BATCH_OPERATIONS} operations")
    results: list[BatchResult] = []
    async with ops.db.tenant_tx(caller.tenant) as conn:
        for index, operation in enumerate(batch.operations):
            try:
                results.append(await _apply(ops, conn, caller, operation))
            except FlowmeshError as exc:
                raise _located(exc, index, operation) from exc
    return BatchResults(results=results)


async def _apply(
    ops: WorkflowOperations, conn: asyncpg.Connection, caller: Caller, operation: BatchOperation
) -> BatchResult:
    match operation:
        case BatchCreate(definition=definition):
            stored = await ops.create_in(conn, caller, definition, action="workflow.create")
            return _result("create", stored, created=True)
        case BatchUpdate(id=workflow_id, definition=definition, if_version=expected):
            wid = workflow_uuid(workflow_id)
            stored = await ops.update_in(conn, caller, wid, definition, expected)
            return _result("update", stored)
        case BatchUpsert(definition=definition):
            return await _upsert(ops, conn, caller, definition)
        case BatchDelete(id=workflow_id):
            wid = workflow_uuid(workflow_id)
            await ops.delete_in(conn, caller, wid)
            return BatchResult(op="delete", id=str(wid), version=None)
    raise AssertionError(f"unknown batch operation {operation!r}")  # pragma: no cover


async def _upsert(
    ops: WorkflowOperations, conn: asyncpg.Connection, caller: Caller, definition: Any
) -> BatchResult:
    name = definition.get("name") if isinstance(definition, dict) else None
    existing: uuid.UUID | None = None
    if isinstance(name, str):
        existing = await conn.fetchval(sql.FIND_LIVE_BY_NAME, caller.tenant, name)
    if existing is None:
        stored = await ops.create_in(conn, caller, definition, action="workflow.apply")
        return _result("upsert", stored, created=True)
    return _result("upsert", await ops.update_in(conn, caller, existing, definition, None))


def _result(op: BatchOp, stored: Stored, *, created: bool = False) -> BatchResult:
    """An operation's result; the webhook secrets it made are shown once, here."""
    result = BatchResult(
        op=op, id=str(stored.id), version=stored.version, created=created, changed=stored.changed
    )
    if stored.webhook_secrets:
        result = msgspec.structs.replace(result, webhook_secrets=stored.webhook_secrets)
    return result


def _located(exc: FlowmeshError, index: int, operation: BatchOperation) -> FlowmeshError:
    """The failing operation's problem, its paths under ``operations[index]``."""
    prefix = f"operations[{index}]"
    inner = "definition" if not isinstance(operation, BatchDelete) else ""
    errors = [
        ProblemItem(path=_join(prefix, inner, item.path), code=item.code, message=item.message)
        for item in exc.errors
    ] or [ProblemItem(path=prefix, code=exc.code.name, message=exc.detail)]
    op = type(operation).__struct_config__.tag
    detail = f"operation {index} ({op}) failed, nothing was applied: {exc.detail}"
    return FlowmeshError(exc.code, detail, errors=errors)


def _join(prefix: str, inner: str, path: str) -> str:
    if path in ("", "$"):
        return f"{prefix}.{inner}" if inner else prefix
    if not inner or path.startswith(("[", ".")):
        return f"{prefix}.{inner}{path}" if inner else f"{prefix}{path}"
    return f"{prefix}.{inner}.{path}"
