"""The trigger catalogue: every live workflow with triggers, of every tenant, for the
scheduler's full reload (``trigger_catalogue``, Flowmesh services only).

The one read across tenants besides the outbox relay: it goes through
``fm_trigger_catalogue`` (migration 0004), which runs as the schema owner and returns
the current version's number, switch, validity and triggers, nothing else. Pages are keyset
pages in ``(tenant, workflow_id)`` order.
"""

from __future__ import annotations

from typing import Any

from flowmesh_proto.ids import is_tenant_id, parse_uuid
from flowmesh_proto.registry import CatalogueEntry, CataloguePage, TriggerCatalogue
from flowmesh_registry.db import Database
from flowmesh_registry.problems import field_problem

MAX_LIMIT = 1000

CATALOGUE_PAGE = "SELECT * FROM fm_trigger_catalogue($1, $2, $3)"


async def trigger_catalogue(db: Database, request: TriggerCatalogue) -> CataloguePage:
    if not 1 <= request.limit <= MAX_LIMIT:
        raise field_problem("limit", f"limit must be between 1 and {MAX_LIMIT}")
    after = _after(request)
    async with db.transaction() as conn:  # no tenant set: the function reads as the owner
        rows = await conn.fetch(CATALOGUE_PAGE, *after, request.limit + 1)
    items = [
        CatalogueEntry(
            tenant=row["tenant_id"],
            workflow_id=str(row["workflow_id"]),
            version=row["version"],
            enabled=row["enabled"],
            valid=row["validation_status"] == "valid",
            triggers=_triggers(row["triggers"]),
        )
        for row in rows[: request.limit]
    ]
    return CataloguePage(items=items, has_more=len(rows) > request.limit)


def _after(request: TriggerCatalogue) -> tuple[str | None, Any]:
    """Where the page starts: both of ``after_tenant`` and ``after_workflow_id``, or neither."""
    tenant, workflow_id = request.after_tenant, request.after_workflow_id
    if tenant is None and workflow_id is None:
        return None, None
    if tenant is None or not is_tenant_id(tenant):
        raise field_problem("after_tenant", "after_tenant must be the last page's last tenant")
    parsed = parse_uuid(workflow_id)
    if parsed is None:
        raise field_problem(
            "after_workflow_id", "after_workflow_id must be the last page's last workflow id"
        )
    return tenant, parsed


def _triggers(value: Any) -> list[dict[str, Any]]:
    return [t for t in value if isinstance(t, dict)] if isinstance(value, list) else []
