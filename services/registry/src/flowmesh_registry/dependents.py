"""What a stored workflow version depends on by name, and what happens when one goes away.

A version records the secrets its expressions read (``secret_refs``), the connectors its
http and action nodes name (``connector_refs``) and the tenant's own actions its action
nodes name (``action_refs``). Deleting one of them turns every version that names it
``invalid`` in the same transaction, with a validation error that carries the kind and the
name under ``"secret"``, ``"connector"`` or ``"action"`` (keys the wire's
:class:`~flowmesh_proto.errors.ProblemItem` leaves out). Making it again removes exactly
those errors, and a version left with no error is ``valid`` again; one invalid for another
reason too stays invalid.

Each statement reads the row being updated, so a concurrent change to the same version is
never lost. The SQL is written once per kind (the column and the key differ).
"""

from __future__ import annotations

from typing import Literal

import asyncpg

from flowmesh_proto.versionref import VersionRef

__all__ = ["Dependency", "invalidate_users", "revalidate_users", "version_refs", "version_text"]

Dependency = Literal["secret", "connector", "action"]

_INVALIDATE = """
UPDATE workflow_versions
SET validation_status = 'invalid',
    validation_errors = validation_errors || jsonb_build_array(jsonb_build_object(
        'path', 'nodes', 'code', 'MISSING_VARIABLE',
        'message', '{kind} ' || $2::text || ' was deleted', '{kind}', $2::text))
WHERE tenant_id = $1 AND $2 = ANY({column})
  AND NOT validation_errors @> jsonb_build_array(jsonb_build_object('{kind}', $2::text))
RETURNING workflow_id, version"""

_REVALIDATE = """
UPDATE workflow_versions
SET validation_errors = coalesce(
        (SELECT jsonb_agg(e.value ORDER BY e.ordinality)
         FROM jsonb_array_elements(validation_errors) WITH ORDINALITY AS e
         WHERE e.value->>'{kind}' IS DISTINCT FROM $2::text),
        '[]'::jsonb),
    validation_status = CASE
        WHEN EXISTS (SELECT 1 FROM jsonb_array_elements(validation_errors) AS e
                     WHERE e.value->>'{kind}' IS DISTINCT FROM $2::text)
        THEN 'invalid' ELSE 'valid' END
WHERE tenant_id = $1 AND $2 = ANY({column})
  AND validation_errors @> jsonb_build_array(jsonb_build_object('{kind}', $2::text))
RETURNING workflow_id, version, validation_status"""

_COLUMNS: dict[Dependency, str] = {
    "secret": "secret_refs",
    "connector": "connector_refs",
    "action": "action_refs",
}
#: Per kind: the statement that invalidates the versions naming a deleted one.
INVALIDATE: dict[Dependency, str] = {
    kind: _INVALIDATE.format(kind=kind, column=column) for kind, column in _COLUMNS.items()
}
#: Per kind: the statement that drops the errors its deletion added, once it is back.
REVALIDATE: dict[Dependency, str] = {
    kind: _REVALIDATE.format(kind=kind, column=column) for kind, column in _COLUMNS.items()
}


async def invalidate_users(
    conn: asyncpg.Connection, tenant: str, kind: Dependency, name: str
) -> list[asyncpg.Record]:
    """Turn ``invalid`` every version of the tenant naming the deleted ``kind`` ``name``;
    the versions changed (``workflow_id``, ``version``)."""
    rows: list[asyncpg.Record] = await conn.fetch(INVALIDATE[kind], tenant, name)
    return rows


async def revalidate_users(
    conn: asyncpg.Connection, tenant: str, kind: Dependency, name: str
) -> list[asyncpg.Record]:
    """Drop the errors the deletion of ``kind`` ``name`` added; the versions changed, with
    their ``validation_status`` now."""
    rows: list[asyncpg.Record] = await conn.fetch(REVALIDATE[kind], tenant, name)
    return rows


def version_text(row: asyncpg.Record) -> str:
    """``<workflow id>@<version>``, as audit details name a version."""
    return f"{row['workflow_id']}@{row['version']}"


def version_refs(rows: list[asyncpg.Record]) -> list[VersionRef]:
    """The versions ``rows`` name, as replies name them."""
    return [VersionRef(workflow_id=str(r["workflow_id"]), version=r["version"]) for r in rows]
