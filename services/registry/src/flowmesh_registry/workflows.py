"""Workflow operations: create, read, version, patch, delete, apply, clone.

Each mutation runs in one tenant transaction with its audit entry and its outbox row.
Order of judgement follows the API's: the resource (404) before the body (422).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Mapping
from typing import Any

import asyncpg
import msgspec

from flowmesh_proto.actions import Action, ActionKey
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import new_id, parse_uuid
from flowmesh_proto.registry import Deleted, Workflow, WorkflowApplied, WorkflowPatch
from flowmesh_proto.workflow import Definition, definition_to_builtins
from flowmesh_registry import audit, outbox, secrets
from flowmesh_registry import workflow_sql as sql
from flowmesh_registry.caller import Caller
from flowmesh_registry.connectors import known_connectors
from flowmesh_registry.db import Database
from flowmesh_registry.preparation import Prepared, named_actions, prepare
from flowmesh_registry.problems import checked_version, field_problem
from flowmesh_registry.resources import version_resource, workflow_resource
from flowmesh_registry.validate import Limits, ValidationReport, validate_definition
from flowmesh_registry.webhooks import WebhookSecretOperations
from flowmesh_shared.errors import FlowmeshError


def not_found(workflow_id: object) -> FlowmeshError:
    return FlowmeshError(ErrorCode.WORKFLOW_NOT_FOUND, f"workflow {workflow_id} was not found")


def workflow_uuid(value: str) -> uuid.UUID:
    """A workflow id, or 404: a malformed id is as missing as an unknown one."""
    parsed = parse_uuid(value)
    if parsed is None:
        raise not_found(value)
    return parsed


class Stored(msgspec.Struct, frozen=True, kw_only=True):
    """What a write stored: the workflow, its current version, whether that version is new,
    and the webhook secrets made for it (:mod:`flowmesh_registry.webhooks`: shown once)."""

    id: uuid.UUID
    version: int
    changed: bool = True
    webhook_secrets: dict[str, str] = {}


def shown(row: asyncpg.Record, tenant: str, webhook_secrets: dict[str, str]) -> Workflow:
    """The resource of a write's answer: with the secrets it made, if any."""
    workflow = workflow_resource(row, tenant)
    if not webhook_secrets:
        return workflow
    return msgspec.structs.replace(workflow, webhook_secrets=webhook_secrets)


class WorkflowOperations:
    def __init__(self, db: Database, limits: Limits, webhooks: WebhookSecretOperations) -> None:
        self.db = db
        self.limits = limits
        self.webhooks = webhooks

    # --- validation (flowmesh_registry.preparation) -----------------------------------------

    def check(
        self,
        raw: Any,
        known_secrets: frozenset[str] | None = None,
        known_connectors: frozenset[str] | None = None,
        known_actions: Mapping[ActionKey, Action] | None = None,
    ) -> ValidationReport:
        return validate_definition(
            raw,
            limits=self.limits,
            known_secrets=known_secrets,
            known_connectors=known_connectors,
            known_actions=known_actions,
        )

    async def validate(self, tenant: str, raw: Any) -> ValidationReport:
        """Validate without storing, against the tenant's secrets. A viewer may ask as often
        as its rate allows: the check (a quarter of a second for a large definition full of
        expressions) runs in a worker thread, so the registry's loop answers meanwhile."""
        async with self.db.tenant_tx(tenant) as conn:
            known = await secrets.known_names(conn, tenant, hold=False)
            connectors = await known_connectors(conn, tenant)
            actions = await named_actions(conn, tenant, raw, self.limits)
        return await asyncio.to_thread(self.check, raw, known, connectors, actions)

    async def prepare(self, conn: asyncpg.Connection, tenant: str, raw: Any) -> Prepared:
        return await prepare(conn, tenant, raw, self.limits)

    # --- reads --------------------------------------------------------------------------

    async def get(self, tenant: str, workflow_id: str, version: int | None = None) -> Workflow:
        """The current workflow, or (``version``) the workflow as it was at that version."""
        row = await self.row(tenant, workflow_id, version)
        if version is None:
            return workflow_resource(row, tenant)
        return version_resource(row, tenant)

    async def row(self, tenant: str, workflow_id: str, version: int | None) -> asyncpg.Record:
        """The workflow's row joined with its current version (or ``version``), or 404:
        WORKFLOW_NOT_FOUND without the workflow, NOT_FOUND without the version."""
        checked_version(version, "version")
        wid = workflow_uuid(workflow_id)
        async with self.db.tenant_tx(tenant) as conn:
            row = await conn.fetchrow(sql.GET_WORKFLOW, tenant, wid, version)
            exists = row is not None or (
                version is not None
                and await conn.fetchval(sql.WORKFLOW_EXISTS, tenant, wid) is not None
            )
        if row is None and exists:
            raise FlowmeshError(
                ErrorCode.NOT_FOUND, f"workflow {workflow_id} has no version {version}"
            )
        if row is None:
            raise not_found(workflow_id)
        return row

    # --- writes -------------------------------------------------------------------------

    async def create(
        self, caller: Caller, raw: Any, *, action: str = "workflow.create"
    ) -> Workflow:
        async with self.db.tenant_tx(caller.tenant) as conn:
            stored = await self.create_in(conn, caller, raw, action=action)
            row = await conn.fetchrow(sql.GET_WORKFLOW, caller.tenant, stored.id, None)
        return shown(row, caller.tenant, stored.webhook_secrets)

    async def create_in(
        self, conn: asyncpg.Connection, caller: Caller, raw: Any, *, action: str
    ) -> Stored:
        """Create inside the caller's transaction."""
        prepared = await self.prepare(conn, caller.tenant, raw)
        wid = new_id()
        await audit.record(conn, caller, action, f"workflow:{wid}", detail={"version": 1})
        made = await self._insert(conn, caller, wid, prepared)
        await self._announce(conn, caller.tenant, wid, "created", 1, prepared.definition)
        return Stored(id=wid, version=1, webhook_secrets=made)

    async def _insert(
        self, conn: asyncpg.Connection, caller: Caller, wid: uuid.UUID, prepared: Prepared
    ) -> dict[str, str]:
        d = prepared.definition
        await execute_naming(
            conn,
            d.name,
            sql.INSERT_WORKFLOW,
            caller.tenant,
            wid,
            d.name,
            d.description,
            d.category,
            d.tags,
            d.enabled,
            caller.actor,
        )
        return await self._insert_version(conn, caller, wid, 1, prepared)

    async def _insert_version(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        wid: uuid.UUID,
        version: int,
        prepared: Prepared,
    ) -> dict[str, str]:
        """Store a version; the webhook secrets made for its new webhook triggers."""
        await conn.execute(
            sql.INSERT_VERSION,
            caller.tenant,
            wid,
            version,
            prepared.data,
            prepared.hash,
            prepared.workflow_refs,
            prepared.secret_refs,
            prepared.connector_refs,
            prepared.action_refs,
            caller.actor,
        )
        return await self.webhooks.mint_missing(conn, caller, wid, prepared.definition)

    async def update(
        self, caller: Caller, workflow_id: str, raw: Any, if_version: int | None
    ) -> Workflow:
        wid = workflow_uuid(workflow_id)
        async with self.db.tenant_tx(caller.tenant) as conn:
            stored = await self.update_in(conn, caller, wid, raw, if_version)
            row = await conn.fetchrow(sql.GET_WORKFLOW, caller.tenant, wid, None)
        return shown(row, caller.tenant, stored.webhook_secrets)

    async def update_in(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        wid: uuid.UUID,
        raw: Any,
        if_version: int | None,
    ) -> Stored:
        """Update inside the caller's transaction."""
        current = await self.lock_for_write(conn, caller, wid, if_version)
        prepared = await self.prepare(conn, caller.tenant, raw)
        version, made = await self._new_version(conn, caller, current, prepared)
        await audit.record(
            conn, caller, "workflow.update", f"workflow:{wid}", detail={"version": version}
        )
        changed = version != current["current_version"]
        if changed:
            await self._announce(conn, caller.tenant, wid, "updated", version, prepared.definition)
        return Stored(id=wid, version=version, changed=changed, webhook_secrets=made)

    async def lock_for_write(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        wid: uuid.UUID,
        if_version: int | None,
    ) -> asyncpg.Record:
        """The workflow row, locked for this transaction; 404, 423 or 412 when it must not move."""
        row = await conn.fetchrow(sql.LOCK_WORKFLOW_ROW, caller.tenant, wid)
        if row is None:
            raise not_found(wid)
        if row["lock_live"] and row["locked_by"] != caller.actor:
            raise FlowmeshError(
                ErrorCode.WORKFLOW_LOCKED,
                f"workflow is locked for editing by {row['locked_by']} "
                f"until {row['lock_expires_at'].isoformat()}",
            )
        if if_version is not None and if_version != row["latest_version"]:
            raise FlowmeshError(
                ErrorCode.PRECONDITION_FAILED,
                f"workflow is at version {row['latest_version']}, not {if_version}",
            )
        return row

    async def _new_version(
        self,
        conn: asyncpg.Connection,
        caller: Caller,
        current: asyncpg.Record,
        prepared: Prepared,
    ) -> tuple[int, dict[str, str]]:
        """Store ``prepared`` as version N+1, unless it equals the current content (whose
        webhook triggers still get the secrets they lack: made without a secrets key)."""
        wid = current["id"]
        existing = await conn.fetchrow(
            sql.GET_VERSION_CONTENT, caller.tenant, wid, current["current_version"]
        )
        if existing is not None and existing["content_hash"] == prepared.hash:
            made = await self.webhooks.mint_missing(conn, caller, wid, prepared.definition)
            return int(current["current_version"]), made
        version = int(current["latest_version"]) + 1
        made = await self._insert_version(conn, caller, wid, version, prepared)
        d = prepared.definition
        await execute_naming(
            conn,
            d.name,
            sql.SET_NEW_VERSION,
            caller.tenant,
            wid,
            version,
            d.name,
            d.description,
            d.category,
            d.tags,
            d.enabled,
            caller.actor,
        )
        return version, made

    async def patch(self, caller: Caller, request: WorkflowPatch) -> Workflow:
        wid = workflow_uuid(request.id)
        tags = _checked_tags(request.tags)
        checked_version(request.current_version, "current_version")
        made: dict[str, str] = {}
        async with self.db.tenant_tx(caller.tenant) as conn:
            current = await self.lock_for_write(conn, caller, wid, request.if_version)
            version = int(current["current_version"])
            if request.current_version is not None and request.current_version != version:
                version, made = await self._rollback(conn, caller, current, request.current_version)
            if request.enabled is not None or tags is not None:
                await conn.execute(
                    sql.PATCH_METADATA, caller.tenant, wid, request.enabled, tags, caller.actor
                )
            changes = {
                k: v
                for k, v in (
                    ("enabled", request.enabled),
                    ("tags", tags),
                    ("current_version", request.current_version),
                )
                if v is not None
            }
            await audit.record(conn, caller, "workflow.patch", f"workflow:{wid}", detail=changes)
            row = await conn.fetchrow(sql.GET_WORKFLOW, caller.tenant, wid, None)
            await self._announce_row(conn, caller.tenant, row, "patched")
        return shown(row, caller.tenant, made)

    async def _rollback(
        self, conn: asyncpg.Connection, caller: Caller, current: asyncpg.Record, target: int
    ) -> tuple[int, dict[str, str]]:
        """Make version ``target`` current again, as a new version with its content."""
        content = await conn.fetchrow(sql.GET_VERSION_CONTENT, caller.tenant, current["id"], target)
        if content is None:
            raise FlowmeshError(
                ErrorCode.NOT_FOUND, f"workflow {current['id']} has no version {target}"
            )
        prepared = await self.prepare(conn, caller.tenant, content["definition"])
        return await self._new_version(conn, caller, current, prepared)

    async def delete(self, caller: Caller, workflow_id: str) -> Deleted:
        wid = workflow_uuid(workflow_id)
        async with self.db.tenant_tx(caller.tenant) as conn:
            await self.delete_in(conn, caller, wid)
        return Deleted(id=str(wid))

    async def delete_in(self, conn: asyncpg.Connection, caller: Caller, wid: uuid.UUID) -> None:
        """Soft-delete inside the caller's transaction; callers of it turn invalid."""
        current = await self.lock_for_write(conn, caller, wid, None)
        await conn.execute(sql.SOFT_DELETE, caller.tenant, wid, caller.actor)
        dependents = await conn.fetch(sql.INVALIDATE_DEPENDENTS, caller.tenant, wid)
        await audit.record(
            conn,
            caller,
            "workflow.delete",
            f"workflow:{wid}",
            detail={"invalidated": [f"{r['workflow_id']}@{r['version']}" for r in dependents]},
        )
        await outbox.enqueue(
            conn,
            caller.tenant,
            outbox.WORKFLOW_CHANGED,
            outbox.workflow_changed_payload(
                workflow_id=str(wid),
                change="deleted",
                version=current["current_version"],
                enabled=False,
                triggers=[],
            ),
        )

    async def apply(self, caller: Caller, name: str, raw: Any) -> WorkflowApplied:
        """Create by name, or add a version only if the content changed."""
        if isinstance(raw, dict) and raw.get("name", name) != name:
            raise field_problem("name", f"the definition's name must be {name!r}")
        if isinstance(raw, dict) and "name" not in raw:
            raw = {**raw, "name": name}
        async with self.db.tenant_tx(caller.tenant) as conn:
            existing = await conn.fetchval(sql.FIND_LIVE_BY_NAME, caller.tenant, name)
        if existing is None:
            try:
                created = await self.create(caller, raw, action="workflow.apply")
            except FlowmeshError as exc:
                if exc.code is not ErrorCode.WORKFLOW_NAME_TAKEN:
                    raise
                return await self.apply(caller, name, raw)  # created meanwhile: update it
            return WorkflowApplied(workflow=created, created=True, changed=True)
        before = await self.get(caller.tenant, str(existing))
        after = await self.update(caller, str(existing), raw, None)
        return WorkflowApplied(
            workflow=after, created=False, changed=after.version != before.version
        )

    async def clone(
        self, caller: Caller, workflow_id: str, name: str, version: int | None
    ) -> Workflow:
        source = await self.get(caller.tenant, workflow_id, version)
        async with self.db.tenant_tx(caller.tenant) as conn:
            content = await conn.fetchrow(
                sql.GET_VERSION_CONTENT, caller.tenant, uuid.UUID(source.id), source.version
            )
        assert content is not None
        raw = {**content["definition"], "name": name}
        return await self.create(caller, raw, action="workflow.clone")

    # --- announcements -------------------------------------------------------------------

    async def _announce(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        wid: uuid.UUID,
        change: str,
        version: int,
        definition: Definition,
    ) -> None:
        data = definition_to_builtins(definition)
        await outbox.enqueue(
            conn,
            tenant,
            outbox.WORKFLOW_CHANGED,
            outbox.workflow_changed_payload(
                workflow_id=str(wid),
                change=change,
                version=version,
                enabled=definition.enabled,
                triggers=data.get("triggers", []),
            ),
        )

    async def _announce_row(
        self, conn: asyncpg.Connection, tenant: str, row: asyncpg.Record, change: str
    ) -> None:
        await outbox.enqueue(
            conn,
            tenant,
            outbox.WORKFLOW_CHANGED,
            outbox.workflow_changed_payload(
                workflow_id=str(row["id"]),
                change=change,
                version=row["version"],
                enabled=row["enabled"],
                triggers=row["definition"].get("triggers", []),
            ),
        )


def name_taken(name: str) -> FlowmeshError:
    return FlowmeshError(ErrorCode.WORKFLOW_NAME_TAKEN, f"a workflow named {name!r} already exists")


async def execute_naming(conn: asyncpg.Connection, name: str, statement: str, *args: Any) -> None:
    """Run a statement that sets a workflow's name; a live namesake gives WORKFLOW_NAME_TAKEN."""
    try:
        async with conn.transaction():  # a savepoint: the outer transaction stays usable
            await conn.execute(statement, *args)
    except asyncpg.UniqueViolationError as exc:
        raise name_taken(name) from exc


def _checked_tags(tags: list[str] | None) -> list[str] | None:
    if tags is None:
        return None
    if len(tags) > 50 or len(set(tags)) != len(tags) or any(not 1 <= len(t) <= 64 for t in tags):
        raise field_problem("tags", "tags: at most 50, each 1..64 characters, no duplicates")
    return tags
