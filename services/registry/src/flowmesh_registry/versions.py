"""A workflow's version history, newest first, a page at a time.

Each item is what a version is (``version``, ``created_at``, ``created_by``,
``validation_status``, ``content_hash``); the version itself is read with
``workflow_get`` and its ``version``. The cursor (:mod:`.cursors`) holds the workflow and
the last version returned: one issued for another workflow, or tampered with, is refused.
"""

from __future__ import annotations

import uuid

from flowmesh_proto.registry import VersionInfo, VersionPage, WorkflowVersions
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.db import Database
from flowmesh_registry.problems import MAX_VERSION, field_problem
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.workflows import not_found, workflow_uuid

#: What a versions cursor belongs to (versions have one order; other cursors are refused).
VERSIONS_SORT = "versions:-version"
#: The largest page of versions one request may ask for.
MAX_VERSIONS_PAGE = 100


async def list_versions(db: Database, tenant: str, request: WorkflowVersions) -> VersionPage:
    wid = workflow_uuid(request.id)
    async with db.tenant_tx(tenant) as conn:
        if await conn.fetchval(sql.WORKFLOW_EXISTS, tenant, wid) is None:
            raise not_found(request.id)  # the resource (404) before the request (422)
        if not 1 <= request.limit <= MAX_VERSIONS_PAGE:
            raise field_problem("limit", f"limit must be between 1 and {MAX_VERSIONS_PAGE}")
        before = _cursor_version(request.cursor, wid)
        rows = await conn.fetch(sql.LIST_VERSIONS, tenant, wid, before, request.limit + 1)
    items = []
    for row in rows[: request.limit]:
        check_tenant(row, tenant)
        items.append(
            VersionInfo(
                version=row["version"],
                created_at=row["created_at"],
                created_by=row["created_by"],
                validation_status=row["validation_status"],
                content_hash=row["content_hash"],
            )
        )
    has_more = len(rows) > request.limit
    cursor = None
    if has_more and items:
        cursor = encode_cursor(VERSIONS_SORT, [str(wid), items[-1].version])
    return VersionPage(items=items, next_cursor=cursor, has_more=has_more)


def _cursor_version(cursor: str | None, wid: uuid.UUID) -> int | None:
    """The last version of the previous page, from a cursor issued for this workflow."""
    if not cursor:
        return None
    try:
        key = decode_cursor(cursor, VERSIONS_SORT)
    except CursorError as exc:
        raise field_problem("cursor", str(exc)) from exc
    if (
        len(key) != 2
        or key[0] != str(wid)
        or not isinstance(key[1], int)
        or isinstance(key[1], bool)
        or not 1 <= key[1] <= MAX_VERSION
    ):
        raise field_problem("cursor", "cursor does not belong to this workflow's versions")
    return key[1]
