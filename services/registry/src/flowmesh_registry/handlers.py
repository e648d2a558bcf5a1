"""The registry's operations over NATS: each handler checks who may ask, then translates.

Tenant operations belong to platform admins (and Flowmesh's own services); every other
operation needs the ``Fm-Tenant`` header and a principal allowed to act for that tenant.
A principal of another tenant is refused with CROSS_TENANT_ACCESS_DENIED and the attempt
is audited in the principal's own tenant.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
import structlog

from flowmesh_proto import actions as a
from flowmesh_proto import connectors as c
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.principal import Principal
from flowmesh_proto.runs import Run
from flowmesh_registry import audit
from flowmesh_registry.actions import ActionOperations
from flowmesh_registry.batch import run_batch
from flowmesh_registry.caller import Caller
from flowmesh_registry.catalogue import trigger_catalogue
from flowmesh_registry.connectors import ConnectorOperations
from flowmesh_registry.history import RunHistory
from flowmesh_registry.keys import KeyOperations
from flowmesh_registry.listing import list_workflows
from flowmesh_registry.locks import LockOperations
from flowmesh_registry.secrets import SecretOperations
from flowmesh_registry.transfer import (
    export_workflow,
    import_workflow,
    update_from_document,
    validate_document,
)
from flowmesh_registry.versions import list_versions
from flowmesh_registry.webhooks import WebhookSecretOperations
from flowmesh_registry.workflows import WorkflowOperations
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import CallContext, RpcService

log = structlog.get_logger("flowmesh.registry")

Handler = Callable[[Any, CallContext], Awaitable[msgspec.Struct]]


class RegistryHandlers:
    def __init__(
        self,
        workflows: WorkflowOperations,
        locks: LockOperations,
        keys: KeyOperations,
        secrets: SecretOperations,
        history: RunHistory,
        webhooks: WebhookSecretOperations,
        connectors: ConnectorOperations,
        actions: ActionOperations,
    ) -> None:
        self.workflows = workflows
        self.locks = locks
        self.keys = keys
        self.secrets = secrets
        self.history = history
        self.webhooks = webhooks
        self.connectors = connectors
        self.actions = actions

    # --- who may ask ---------------------------------------------------------------------

    async def caller(self, ctx: CallContext, operation: str) -> Caller:
        """The tenant caller of a tenant operation, or an error reply (audited when denied)."""
        principal = _require_principal(ctx)
        if ctx.tenant is None:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "the Fm-Tenant header is required")
        if principal.is_platform:
            raise FlowmeshError(ErrorCode.FORBIDDEN, "platform principals manage tenants only")
        if principal.tenant is not None and principal.tenant != ctx.tenant:
            await self._audit_denied(principal, ctx, operation)
            raise FlowmeshError(
                ErrorCode.CROSS_TENANT_ACCESS_DENIED,
                "the principal does not belong to the requested tenant",
            )
        return Caller(tenant=ctx.tenant, actor=str(principal), request_id=ctx.request_id)

    async def _audit_denied(
        self,
        principal: Principal,
        ctx: CallContext,
        operation: str,
        reason: ErrorCode = ErrorCode.CROSS_TENANT_ACCESS_DENIED,
    ) -> None:
        assert principal.tenant is not None
        home = Caller(tenant=principal.tenant, actor=str(principal), request_id=ctx.request_id)
        try:
            async with self.workflows.db.tenant_tx(principal.tenant) as conn:
                await audit.record(
                    conn,
                    home,
                    f"registry.{operation}",
                    f"tenant:{ctx.tenant}" if ctx.tenant else "tenants:all",
                    outcome="denied",
                    detail={"reason": reason.name},
                )
        except Exception as exc:  # the refusal stands even if its audit row cannot be written
            log.warning("audit.denied_not_recorded", error=str(exc))

    # --- tenants and keys ----------------------------------------------------------------

    async def tenant_create(self, req: r.TenantCreate, ctx: CallContext) -> r.TenantCreated:
        principal = _require_principal(ctx)
        if not (principal.is_platform or principal.is_service):
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only platform admins create tenants")
        caller = Caller(tenant=req.id, actor=str(principal), request_id=ctx.request_id)
        return await self.keys.create_tenant(caller, req.id, req.name)

    async def tenant_get(self, req: r.TenantGet, ctx: CallContext) -> r.Tenant:
        principal = _require_principal(ctx)
        if principal.tenant is not None and principal.tenant != req.id:
            raise FlowmeshError(ErrorCode.NOT_FOUND, f"tenant {req.id!r} was not found")
        return await self.keys.get_tenant(req.id)

    async def tenant_update(self, req: r.TenantUpdate, ctx: CallContext) -> r.Tenant:
        principal = _require_principal(ctx)
        if not principal.is_platform:
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only platform admins change tenants")
        caller = Caller(tenant=req.id, actor=str(principal), request_id=ctx.request_id)
        return await self.keys.update_tenant(caller, req)

    async def apikey_create(self, req: r.ApiKeyCreate, ctx: CallContext) -> r.ApiKeySecret:
        return await self.keys.create_key(
            await self.caller(ctx, "apikey_create"), req.name, req.role
        )

    async def apikey_list(self, req: r.ApiKeyList, ctx: CallContext) -> r.ApiKeyPage:
        return await self.keys.list_keys((await self.caller(ctx, "apikey_list")).tenant)

    async def apikey_revoke(self, req: r.ApiKeyRevoke, ctx: CallContext) -> r.ApiKey:
        return await self.keys.revoke_key(await self.caller(ctx, "apikey_revoke"), req.id)

    async def apikey_verify(self, req: r.ApiKeyVerify, ctx: CallContext) -> r.ApiKeyIdentity:
        principal = _require_principal(ctx)
        if not principal.is_service:
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only Flowmesh services verify keys")
        return await self.keys.verify_key(req.key)

    async def apikey_check(self, req: r.ApiKeyCheck, ctx: CallContext) -> r.ApiKeyIdentity:
        principal = _require_principal(ctx)
        if not principal.is_service:
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only Flowmesh services check keys")
        if ctx.tenant is None:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "the Fm-Tenant header is required")
        return await self.keys.check_key(ctx.tenant, req.id)

    # --- workflows -----------------------------------------------------------------------

    async def workflow_create(self, req: r.WorkflowCreate, ctx: CallContext) -> r.Workflow:
        return await self.workflows.create(
            await self.caller(ctx, "workflow_create"), req.definition
        )

    async def workflow_get(self, req: r.WorkflowGet, ctx: CallContext) -> r.Workflow:
        caller = await self.caller(ctx, "workflow_get")
        return await self.workflows.get(caller.tenant, req.id, req.version)

    async def workflow_list(self, req: r.WorkflowList, ctx: CallContext) -> r.WorkflowPage:
        caller = await self.caller(ctx, "workflow_list")
        return await list_workflows(self.workflows.db, caller.tenant, req)

    async def workflow_update(self, req: r.WorkflowUpdate, ctx: CallContext) -> r.Workflow:
        caller = await self.caller(ctx, "workflow_update")
        if req.document is not None:
            return await update_from_document(
                self.workflows, caller, req.id, req.document, req.format, req.if_version
            )
        return await self.workflows.update(caller, req.id, req.definition, req.if_version)

    async def workflow_patch(self, req: r.WorkflowPatch, ctx: CallContext) -> r.Workflow:
        return await self.workflows.patch(await self.caller(ctx, "workflow_patch"), req)

    async def workflow_delete(self, req: r.WorkflowDelete, ctx: CallContext) -> r.Deleted:
        return await self.workflows.delete(await self.caller(ctx, "workflow_delete"), req.id)

    async def workflow_apply(self, req: r.WorkflowApply, ctx: CallContext) -> r.WorkflowApplied:
        caller = await self.caller(ctx, "workflow_apply")
        return await self.workflows.apply(caller, req.name, req.definition)

    async def workflow_versions(self, req: r.WorkflowVersions, ctx: CallContext) -> r.VersionPage:
        caller = await self.caller(ctx, "workflow_versions")
        return await list_versions(self.workflows.db, caller.tenant, req)

    async def workflow_clone(self, req: r.WorkflowClone, ctx: CallContext) -> r.Workflow:
        caller = await self.caller(ctx, "workflow_clone")
        return await self.workflows.clone(caller, req.id, req.name, req.version)

    async def workflow_export(self, req: r.WorkflowExport, ctx: CallContext) -> r.ExportedDocument:
        caller = await self.caller(ctx, "workflow_export")
        return await export_workflow(self.workflows, caller.tenant, req.id, req.version, req.format)

    async def workflow_import(self, req: r.WorkflowImport, ctx: CallContext) -> r.Workflow:
        caller = await self.caller(ctx, "workflow_import")
        return await import_workflow(self.workflows, caller, req.document, req.format)

    async def workflow_validate(
        self, req: r.WorkflowValidate, ctx: CallContext
    ) -> r.ValidationResult:
        caller = await self.caller(ctx, "workflow_validate")
        if req.document is not None:
            return await validate_document(self.workflows, caller.tenant, req.document, req.format)
        report = await self.workflows.validate(caller.tenant, req.definition)
        return r.ValidationResult(valid=report.valid, errors=list(report.problems))

    async def workflow_lock(self, req: r.WorkflowLock, ctx: CallContext) -> r.LockInfo:
        caller = await self.caller(ctx, "workflow_lock")
        return await self.locks.lock(caller, req.id, req.ttl_seconds)

    async def workflow_unlock(self, req: r.WorkflowUnlock, ctx: CallContext) -> r.Deleted:
        return await self.locks.unlock(await self.caller(ctx, "workflow_unlock"), req.id)

    # --- secrets: values in, never out, except to Flowmesh's own services -------------------

    async def secret_put(self, req: r.SecretPut, ctx: CallContext) -> r.Secret:
        caller = await self.caller(ctx, "secret_put")
        return await self.secrets.put(caller, req.name, req.value)

    async def secret_delete(self, req: r.SecretDelete, ctx: CallContext) -> r.SecretDeleted:
        return await self.secrets.delete(await self.caller(ctx, "secret_delete"), req.name)

    async def secret_list(self, req: r.SecretList, ctx: CallContext) -> r.SecretPage:
        caller = await self.caller(ctx, "secret_list")
        return await self.secrets.list_secrets(caller.tenant)

    async def secret_resolve(self, req: r.SecretResolve, ctx: CallContext) -> r.SecretValues:
        caller = await self.caller(ctx, "secret_resolve")
        principal = _require_principal(ctx)
        if not principal.is_service:  # a tenant's own credential: audited in its tenant
            await self._audit_denied(principal, ctx, "secret_resolve", ErrorCode.FORBIDDEN)
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only Flowmesh services resolve secrets")
        return await self.secrets.resolve(caller.tenant, req.names)

    # --- connectors: secrets by name only, so every reply shows them whole -----------------

    async def connector_put(self, req: c.ConnectorPut, ctx: CallContext) -> c.Connector:
        caller = await self.caller(ctx, "connector_put")
        return await self.connectors.put(caller, req.name, req.spec)

    async def connector_get(self, req: c.ConnectorGet, ctx: CallContext) -> c.Connector:
        caller = await self.caller(ctx, "connector_get")
        return await self.connectors.get(caller.tenant, req.name)

    async def connector_list(self, req: c.ConnectorList, ctx: CallContext) -> c.ConnectorPage:
        caller = await self.caller(ctx, "connector_list")
        return await self.connectors.list(caller.tenant, req)

    async def connector_delete(
        self, req: c.ConnectorDelete, ctx: CallContext
    ) -> c.ConnectorDeleted:
        return await self.connectors.delete(await self.caller(ctx, "connector_delete"), req.name)

    # --- actions: the tenant's own, versioned; built-in ones read too ---------------------

    async def action_put(self, req: a.ActionPut, ctx: CallContext) -> a.Action:
        caller = await self.caller(ctx, "action_put")
        return await self.actions.put(caller, req.name, req.spec)

    async def action_get(self, req: a.ActionGet, ctx: CallContext) -> a.Action:
        caller = await self.caller(ctx, "action_get")
        return await self.actions.get(caller.tenant, req.name, req.version)

    async def action_list(self, req: a.ActionList, ctx: CallContext) -> a.ActionPage:
        caller = await self.caller(ctx, "action_list")
        return await self.actions.list_actions(caller.tenant, req)

    async def action_versions(self, req: a.ActionVersions, ctx: CallContext) -> a.ActionPage:
        caller = await self.caller(ctx, "action_versions")
        return await self.actions.list_versions(caller.tenant, req)

    async def action_delete(self, req: a.ActionDelete, ctx: CallContext) -> a.ActionDeleted:
        return await self.actions.delete(await self.caller(ctx, "action_delete"), req.name)

    # --- audit ---------------------------------------------------------------------------

    async def workflow_batch(self, req: r.WorkflowBatch, ctx: CallContext) -> r.BatchResults:
        return await run_batch(self.workflows, await self.caller(ctx, "workflow_batch"), req)

    async def audit_record(self, req: r.AuditRecord, ctx: CallContext) -> r.Recorded:
        """Record what another service saw, in the tenant of the principal it acted for."""
        if (
            len(req.action) > 200
            or len(req.target) > 300
            or len(msgspec.json.encode(req.detail)) > 4096
        ):
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "the audit entry is too large")
        caller = await self.caller(ctx, "audit_record")
        async with self.workflows.db.tenant_tx(caller.tenant) as conn:
            await audit.record(
                conn, caller, req.action, req.target, outcome=req.outcome, detail=req.detail
            )
        return r.Recorded(recorded=True)

    async def audit_list(self, req: r.AuditList, ctx: CallContext) -> r.AuditPage:
        caller = await self.caller(ctx, "audit_list")
        if not 1 <= req.limit <= 100:
            raise FlowmeshError(ErrorCode.VALIDATION_FAILED, "limit must be between 1 and 100")
        async with self.workflows.db.tenant_tx(caller.tenant) as conn:
            return await audit.list_entries(conn, caller.tenant, req)

    # --- run history (the projection of run events) ----------------------------------------

    async def run_get(self, req: r.RunGet, ctx: CallContext) -> Run:
        caller = await self.caller(ctx, "run_get")
        return await self.history.get(caller.tenant, req.id)

    async def run_list(self, req: r.RunList, ctx: CallContext) -> r.RunPage:
        caller = await self.caller(ctx, "run_list")
        return await self.history.list(caller.tenant, req)

    async def workflow_stats(self, req: r.WorkflowStatsGet, ctx: CallContext) -> r.WorkflowStats:
        caller = await self.caller(ctx, "workflow_stats")
        return await self.history.stats(caller.tenant, req.id)

    # --- triggers: the scheduler's catalogue, webhook secrets ------------------------------

    async def trigger_catalogue(self, req: r.TriggerCatalogue, ctx: CallContext) -> r.CataloguePage:
        """Every tenant's triggers: Flowmesh services only, and no tenant header."""
        principal = _require_principal(ctx)
        if not principal.is_service:
            if principal.tenant is not None:
                await self._audit_denied(principal, ctx, "trigger_catalogue", ErrorCode.FORBIDDEN)
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only Flowmesh services read the catalogue")
        if ctx.tenant is not None:
            raise FlowmeshError(
                ErrorCode.VALIDATION_FAILED,
                "trigger_catalogue lists every tenant: it takes no Fm-Tenant header",
            )
        return await trigger_catalogue(self.workflows.db, req)

    async def webhook_secret_rotate(
        self, req: r.WebhookSecretRotate, ctx: CallContext
    ) -> r.WebhookSecret:
        caller = await self.caller(ctx, "webhook_secret_rotate")
        return await self.webhooks.rotate(caller, req.workflow_id, req.trigger_id)

    async def webhook_secret_get(
        self, req: r.WebhookSecretGet, ctx: CallContext
    ) -> r.WebhookSecrets:
        caller = await self.caller(ctx, "webhook_secret_get")
        principal = _require_principal(ctx)
        if not principal.is_service:  # a tenant's own credential: audited in its tenant
            await self._audit_denied(principal, ctx, "webhook_secret_get", ErrorCode.FORBIDDEN)
            raise FlowmeshError(ErrorCode.FORBIDDEN, "only Flowmesh services read webhook secrets")
        return await self.webhooks.get(caller.tenant, req.workflow_id, req.trigger_id)

    # --- registration --------------------------------------------------------------------

    def register(self, service: RpcService) -> None:
        """Serve every operation of :data:`flowmesh_proto.registry.OPERATIONS`."""
        for operation, (request_type, _) in r.OPERATIONS.items():
            handler: Handler = getattr(self, operation)
            service.add(operation, request_type, handler)


def _require_principal(ctx: CallContext) -> Principal:
    if ctx.principal is None:
        raise FlowmeshError(ErrorCode.UNAUTHENTICATED, "the Fm-Principal header is required")
    return ctx.principal
