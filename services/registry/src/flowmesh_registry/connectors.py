"""Tenant connectors: stored, versioned descriptions of external services (DESIGN §16).

A connector names its credentials by secret name only, so nothing here is secret: a
reply shows the whole spec, with ``missing_secrets`` listing the names the tenant has not
set (a connector may be stored before its secrets; the UI warns). Every change is audited
(``connector.put``, ``connector.delete``) with the name, version and auth kind only.

A tenant has at most ``max_connectors`` (a registry setting); creating one more is 409
CONNECTOR_LIMIT_REACHED. Creations of one tenant take a transaction-scoped advisory lock
first, so two concurrent creations cannot both pass the count.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from flowmesh_proto.connector_rules import connector_hosts, connector_problems, is_connector_name
from flowmesh_proto.connectors import (
    MAX_PAGE,
    Connector,
    ConnectorDeleted,
    ConnectorList,
    ConnectorPage,
    ConnectorSpec,
    secret_names,
)
from flowmesh_proto.errors import ErrorCode
from flowmesh_registry import audit
from flowmesh_registry.caller import Caller
from flowmesh_registry.cursors import CursorError, decode_cursor, encode_cursor
from flowmesh_registry.db import Database
from flowmesh_registry.dependents import (
    invalidate_users,
    revalidate_users,
    version_refs,
    version_text,
)
from flowmesh_registry.problems import field_problem
from flowmesh_registry.resources import check_tenant
from flowmesh_registry.secrets import known_names
from flowmesh_shared.errors import FlowmeshError, NotFound

CONNECTOR_SORT = "name"

# Creations of one tenant queue here, so the count below cannot be passed by two at once.
LOCK_CREATIONS = "SELECT pg_advisory_xact_lock(hashtextextended('connectors:' || $1, 0))"
EXISTS = "SELECT 1 FROM connectors WHERE tenant_id = $1 AND name = $2"
COUNT = "SELECT count(*) FROM connectors WHERE tenant_id = $1"
NAMES = "SELECT name FROM connectors WHERE tenant_id = $1"
# Held until the version that relies on them commits: a delete waits (updates do not).
NAMES_HELD = "SELECT name FROM connectors WHERE tenant_id = $1 FOR KEY SHARE"
UPSERT = """
INSERT INTO connectors (tenant_id, name, spec, version, created_by, updated_by)
VALUES ($1, $2, $3, 1, $4, $4)
ON CONFLICT (tenant_id, name) DO UPDATE
SET spec = excluded.spec, version = connectors.version + 1, updated_at = now(),
    updated_by = excluded.updated_by
RETURNING tenant_id, name, spec, version, created_at, created_by, updated_at, updated_by"""
GET = """
SELECT tenant_id, name, spec, version, created_at, created_by, updated_at, updated_by
FROM connectors WHERE tenant_id = $1 AND name = $2"""
LIST = """
SELECT tenant_id, name, spec, version, created_at, created_by, updated_at, updated_by
FROM connectors
WHERE tenant_id = $1 AND ($2::text IS NULL OR name > $2)
ORDER BY name
LIMIT $3"""
DELETE = "DELETE FROM connectors WHERE tenant_id = $1 AND name = $2 RETURNING tenant_id, spec"

_spec_decoder = msgspec.json.Decoder(ConnectorSpec)


class ConnectorOperations:
    def __init__(self, db: Database, max_connectors: int) -> None:
        self.db = db
        self.max_connectors = max_connectors

    async def put(self, caller: Caller, name: str, spec: ConnectorSpec) -> Connector:
        """Create (version 1) or replace (version + 1); 422 at the path of every problem."""
        problems = connector_problems(name, spec)
        if problems:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, problems[0].message, errors=problems)
        stored = msgspec.to_builtins(spec)
        async with self.db.tenant_tx(caller.tenant) as conn:
            if await conn.fetchrow(EXISTS, caller.tenant, name) is None:
                await conn.execute(LOCK_CREATIONS, caller.tenant)
                if await conn.fetchval(COUNT, caller.tenant) >= self.max_connectors:
                    raise FlowmeshError(
                        ErrorCode.CONNECTOR_LIMIT_REACHED,
                        f"the tenant has {self.max_connectors} connectors, the most it may have",
                    )
            row = await _upsert(conn, caller, name, stored)
            check_tenant(row, caller.tenant)
            restored = await revalidate_users(conn, caller.tenant, "connector", name)
            detail = {
                "version": row["version"],
                "auth": spec.auth.__struct_config__.tag,
                "revalidated": [
                    version_text(r) for r in restored if r["validation_status"] == "valid"
                ],
            }
            await audit.record(conn, caller, "connector.put", f"connector:{name}", detail=detail)
            known = await known_names(conn, caller.tenant, hold=False)
        return _connector(row, known)

    async def get(self, tenant: str, name: str) -> Connector:
        if not is_connector_name(name):
            raise not_found(name)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(GET, tenant, name)
            if row is None:
                raise not_found(name)
            known = await known_names(conn, tenant, hold=False)
        check_tenant(row, tenant)
        return _connector(row, known)

    async def list(self, tenant: str, request: ConnectorList) -> ConnectorPage:
        if not 1 <= request.limit <= MAX_PAGE:
            raise field_problem("limit", f"limit must be between 1 and {MAX_PAGE}")
        after = _cursor_name(request.cursor) if request.cursor else None
        async with self.db.tenant_tx(tenant) as conn:
            rows = await conn.fetch(LIST, tenant, after, request.limit + 1)
            known = await known_names(conn, tenant, hold=False)
        items = []
        for row in rows[: request.limit]:
            check_tenant(row, tenant)
            items.append(_connector(row, known))
        has_more = len(rows) > request.limit
        cursor = encode_cursor(CONNECTOR_SORT, [items[-1].name]) if has_more and items else None
        return ConnectorPage(items=items, next_cursor=cursor, has_more=has_more)

    async def delete(self, caller: Caller, name: str) -> ConnectorDeleted:
        if not is_connector_name(name):
            raise not_found(name)
        async with self.db.tenant_tx(caller.tenant) as conn:
            row = await conn.fetchrow(DELETE, caller.tenant, name)
            if row is None:
                raise not_found(name)
            check_tenant(row, caller.tenant)
            invalidated = await invalidate_users(conn, caller.tenant, "connector", name)
            detail = {
                "auth": row["spec"].get("auth", {}).get("kind"),
                "invalidated": [version_text(r) for r in invalidated],
            }
            await audit.record(conn, caller, "connector.delete", f"connector:{name}", detail=detail)
        refs = version_refs(invalidated)
        return ConnectorDeleted(name=name, invalidated=refs)


def not_found(name: str) -> FlowmeshError:
    return NotFound(f"connector {name} was not found")


async def _upsert(
    conn: asyncpg.Connection, caller: Caller, name: str, stored: dict[str, Any]
) -> asyncpg.Record:
    try:
        return await conn.fetchrow(UPSERT, caller.tenant, name, stored, caller.actor)
    except asyncpg.ForeignKeyViolationError as exc:  # only a service can name no tenant
        raise NotFound(f"tenant {caller.tenant!r} was not found") from exc


def _cursor_name(cursor: str) -> str:
    """The name a cursor of ours holds, or 422 naming ``cursor``."""
    try:
        key = decode_cursor(cursor, CONNECTOR_SORT)
    except CursorError as exc:
        raise field_problem("cursor", str(exc)) from exc
    if len(key) != 1 or not is_connector_name(key[0]):
        raise field_problem("cursor", "cursor is not valid")
    name: str = key[0]
    return name


def _connector(row: asyncpg.Record, known: frozenset[str]) -> Connector:
    spec = _spec_decoder.decode(msgspec.json.encode(row["spec"]))
    named = dict.fromkeys(secret_names(spec.auth))
    return Connector(
        name=row["name"],
        base_url=spec.base_url,
        hosts=connector_hosts(spec),
        headers=dict(spec.headers),
        auth=spec.auth,
        missing_secrets=[n for n in named if n not in known],
        version=row["version"],
        created_at=row["created_at"],
        created_by=row["created_by"],
        updated_at=row["updated_at"],
        updated_by=row["updated_by"],
    )


async def known_connectors(
    conn: asyncpg.Connection, tenant: str, *, hold: bool = False
) -> frozenset[str]:
    """The names of the tenant's connectors (what a definition's http and action nodes may
    name); ``hold`` keeps them from being deleted until commit (a delete waits)."""
    rows = await conn.fetch(NAMES_HELD if hold else NAMES, tenant)
    return frozenset(row["name"] for row in rows)
