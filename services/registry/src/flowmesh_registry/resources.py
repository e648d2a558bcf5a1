"""Rows to resources: what leaves the registry, checked against the caller's tenant first."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import asyncpg
import msgspec

from flowmesh_proto.errors import ErrorCode, ProblemItem
from flowmesh_proto.registry import Workflow
from flowmesh_shared.errors import FlowmeshError


class TenantLeak(FlowmeshError):
    """A row of another tenant reached the registry's edge; it is not returned."""


def check_tenant(row: asyncpg.Record, tenant: str) -> None:
    """The third isolation layer: a row read must belong to the caller's tenant."""
    if row["tenant_id"] != tenant:
        raise TenantLeak(ErrorCode.INTERNAL, "a row of another tenant was refused")


def workflow_resource(row: asyncpg.Record, tenant: str) -> Workflow:
    check_tenant(row, tenant)
    definition: dict[str, Any] = row["definition"]
    timed = row["timed_count"]
    live_lock = row["locked_by"] is not None and _lock_is_live(row)
    return Workflow(
        id=str(row["id"]),
        tenant_id=row["tenant_id"],
        name=row["name"],
        description=definition.get("description", ""),
        category=definition.get("category", "other"),
        tags=list(row["tags"]),
        enabled=row["enabled"],
        version=row["version"],
        versions=row["latest_version"],
        validation_status=row["validation_status"],
        validation_errors=msgspec.convert(row["validation_errors"], list[ProblemItem]),
        input_schema=definition.get("input_schema"),
        vars=definition.get("vars", {}),
        triggers=definition.get("triggers", []),
        concurrency=definition.get("concurrency"),
        timeout=definition.get("timeout"),
        nodes=definition.get("nodes", []),
        edges=definition.get("edges", []),
        output=definition.get("output"),
        content_hash=row["content_hash"],
        execution_count=row["execution_count"],
        last_executed_at=row["last_executed_at"],
        last_execution_status=row["last_execution_status"],
        average_execution_ms=round(row["total_duration_ms"] / timed, 3) if timed else None,
        is_locked=live_lock,
        locked_by=row["locked_by"] if live_lock else None,
        locked_at=row["locked_at"] if live_lock else None,
        lock_expires_at=row["lock_expires_at"] if live_lock else None,
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


def version_resource(row: asyncpg.Record, tenant: str) -> Workflow:
    """The workflow as it was at the row's version (DESIGN section 7, ``?version=N``).

    Every field of the definition (name, description, category, tags, triggers, nodes ...)
    is the one stored with that version; a later rename or tag change does not reach back.
    What is not part of the definition stays the workflow's current state: ``enabled``,
    execution statistics, the edit lock, ``versions``, ``id``, ``created_at``/``created_by``.
    ``updated_at``/``updated_by`` are when and by whom that version was stored.
    """
    current = workflow_resource(row, tenant)
    definition: dict[str, Any] = row["definition"]
    return msgspec.structs.replace(
        current,
        name=definition.get("name", current.name),
        tags=list(definition.get("tags", [])),
        updated_at=row["version_created_at"],
        updated_by=row["version_created_by"],
    )


def document_of(row: asyncpg.Record) -> dict[str, Any]:
    """The portable document of a version, with the workflow's current tags and switch."""
    definition: dict[str, Any] = dict(row["definition"])
    definition["tags"] = list(row["tags"])
    definition["enabled"] = row["enabled"]
    return definition


def _lock_is_live(row: asyncpg.Record) -> bool:
    expires = row["lock_expires_at"]
    return expires is not None and expires > datetime.now(UTC)
