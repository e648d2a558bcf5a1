"""Listing workflows: filters, text search and keyset (cursor) pagination.

The cursor holds the sort key of the last item returned (see :mod:`.cursors`); an
``offset`` is accepted for compatibility when no cursor is given.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from flowmesh_proto.ids import parse_uuid
from flowmesh_proto.registry import WorkflowList, WorkflowPage
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.db import Database
from flowmesh_registry.problems import field_problem
from flowmesh_registry.resources import workflow_resource


async def list_workflows(db: Database, tenant: str, request: WorkflowList) -> WorkflowPage:
    if not 1 <= request.limit <= 100:
        raise field_problem("limit", "limit must be between 1 and 100")
    key: list[Any] = [None, None]
    if request.cursor:
        try:
            key = decode_cursor(request.cursor, request.sort)
        except CursorError as exc:
            raise field_problem("cursor", str(exc)) from exc
    sort_value, last_id = _cursor_key(request.sort, key)
    offset = 0 if request.cursor else max(request.offset or 0, 0)
    pattern = _like_pattern(request.q) if request.q else None
    async with db.tenant_tx(tenant) as conn:
        await conn.execute(sql.FORCE_CUSTOM_PLANS)
        rows = await conn.fetch(
            sql.LIST_WORKFLOWS[request.sort],
            tenant,
            request.category,
            request.tags,
            request.enabled,
            request.q or None,
            pattern,
            sort_value,
            last_id,
            request.limit + 1,
            offset,
        )
    items = [workflow_resource(row, tenant) for row in rows[: request.limit]]
    has_more = len(rows) > request.limit
    cursor = None
    if has_more and items:
        last = items[-1]
        field = request.sort.lstrip("-")
        value = getattr(last, field)
        cursor = encode_cursor(
            request.sort, [value if isinstance(value, str) else value.isoformat(), last.id]
        )
    return WorkflowPage(items=items, next_cursor=cursor, has_more=has_more)


def _like_pattern(q: str) -> str:
    escaped = q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _cursor_key(sort: str, key: list[Any]) -> tuple[Any, uuid.UUID | None]:
    value, last = key if len(key) == 2 else (None, None)
    if value is None:
        return None, None
    last_id = parse_uuid(last)
    if last_id is None:
        raise field_problem("cursor", "cursor is not valid")
    if sort.lstrip("-") != "name":
        try:
            value = datetime.fromisoformat(str(value))
        except ValueError as exc:
            raise field_problem("cursor", "cursor is not valid") from exc
    elif not isinstance(value, str):
        raise field_problem("cursor", "cursor is not valid")
    return value, last_id
