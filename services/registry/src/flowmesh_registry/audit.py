"""The audit log: every mutation and every denied access, written in the mutation's transaction."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import asyncpg

from flowmesh_proto.registry import AuditEntry, AuditList, AuditPage
from flowmesh_registry.caller import Caller
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.problems import field_problem

INSERT_AUDIT = """
INSERT INTO audit_log (tenant_id, actor, action, target, outcome, request_id, detail)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""

LIST_AUDIT = """
SELECT id, tenant_id, actor, action, target, outcome, request_id, detail, at
FROM audit_log
WHERE tenant_id = $1
  AND ($2::bigint IS NULL OR id < $2)
  AND ($3::text IS NULL OR action = $3)
  AND ($4::text IS NULL OR actor = $4)
  AND ($5::text IS NULL OR target = $5)
ORDER BY id DESC
LIMIT $6"""

AUDIT_SORT = "-id"


async def record(
    conn: asyncpg.Connection,
    caller: Caller,
    action: str,
    target: str,
    *,
    outcome: str = "success",
    detail: dict[str, Any] | None = None,
) -> None:
    await conn.execute(
        INSERT_AUDIT,
        caller.tenant,
        caller.actor,
        action,
        target,
        outcome,
        caller.request_id,
        detail or {},
    )


async def list_entries(conn: asyncpg.Connection, tenant: str, request: AuditList) -> AuditPage:
    before = _cursor_id(request.cursor) if request.cursor else None
    rows = await conn.fetch(
        LIST_AUDIT,
        tenant,
        before,
        request.action,
        request.actor,
        request.target,
        request.limit + 1,
    )
    items = [_entry(row) for row in rows[: request.limit]]
    has_more = len(rows) > request.limit
    cursor = encode_cursor(AUDIT_SORT, [items[-1].id]) if has_more and items else None
    return AuditPage(items=items, next_cursor=cursor, has_more=has_more)


def _cursor_id(cursor: str) -> int:
    """The entry id a cursor of ours holds, or 422 naming ``cursor``."""
    try:
        key = decode_cursor(cursor, AUDIT_SORT)
    except CursorError as exc:
        raise field_problem("cursor", str(exc)) from exc
    if len(key) != 1 or not isinstance(key[0], int) or not 0 < key[0] < 2**63:
        raise field_problem("cursor", "cursor is not valid")
    return key[0]


def _entry(row: asyncpg.Record) -> AuditEntry:
    at: datetime = row["at"]
    return AuditEntry(
        id=row["id"],
        tenant_id=row["tenant_id"],
        actor=row["actor"],
        action=row["action"],
        target=row["target"],
        outcome=row["outcome"],
        request_id=row["request_id"],
        detail=row["detail"],
        at=at,
    )
