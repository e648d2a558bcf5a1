"""The registry's request/reply contract: one request Struct per operation, and resources.

Requests go to ``<prefix>.rpc.registry.<op>`` (see :mod:`flowmesh_proto.subjects`); the
caller's tenant, principal and request id travel in headers (:mod:`flowmesh_proto.headers`).
A successful reply carries the operation's result; a failed one carries a
:class:`flowmesh_proto.errors.Problem` and the ``Nats-Service-Error-Code`` header.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from flowmesh_proto.actions import ActionDelete, ActionGet, ActionList, ActionPut, ActionVersions
from flowmesh_proto.connectors import ConnectorDelete, ConnectorGet, ConnectorList, ConnectorPut
from flowmesh_proto.errors import ProblemItem
from flowmesh_proto.operations import Request, reply_type
from flowmesh_proto.runs import Run, RunStatus, TriggerKind
from flowmesh_proto.versionref import VersionRef as VersionRef

Role = Literal["viewer", "operator", "editor", "admin"]
ROLES: tuple[str, ...] = ("viewer", "operator", "editor", "admin")
ValidationStatus = Literal["valid", "invalid"]
ExportFormat = Literal["json", "yaml"]
WorkflowSort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of a request's parts (a batch's operations): unknown fields are refused."""


class _Result(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every reply payload."""


# --- tenants -----------------------------------------------------------------------------


class TenantCreate(Request["TenantCreated"], frozen=True):
    operation = "tenant_create"

    id: str
    name: str = ""


class TenantGet(Request["Tenant"], frozen=True):
    operation = "tenant_get"

    id: str


class RateLimit(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """A token bucket: ``rate`` requests per second, bursts of up to ``burst``."""

    rate: float
    burst: int


#: Run history is kept at most this many days (a tenant setting).
MAX_RUN_RETENTION_DAYS = 3650
#: The largest ``max_holds`` a tenant may be given (concurrent SSE streams and waits).
MAX_TENANT_HOLDS = 100_000
#: The largest ``max_queued_runs`` a tenant may be given.
MAX_TENANT_QUEUED_RUNS = 100_000_000
#: The largest ``weight`` a tenant may be given (its share of busy executors, default 1).
MAX_TENANT_WEIGHT = 1000
#: The largest ``max_running`` a tenant may be given (runs it holds at once, across
#: executors; ``null``: as many as the executors have room for).
MAX_TENANT_RUNNING = 1_000_000


class TenantUpdate(Request["Tenant"], frozen=True, omit_defaults=True):
    """Platform admins only. ``rate_limit: null`` returns to the gateway's default;
    ``run_retention_days`` (1..3650) sets how long run history is kept, ``null`` returns
    to the registry's default; ``max_holds`` (0..100000, concurrent SSE streams and waits)
    and ``max_queued_runs`` (0..100000000) are the tenant's quotas, ``null`` the gateway's
    defaults; ``weight`` (1..1000, its share of busy executors) and ``max_running``
    (1..1000000, the runs it holds at once across executors) are how the executors take its
    runs (DESIGN section 13), ``null`` the defaults (weight 1, as many runs as the
    executors have room for)."""

    operation = "tenant_update"

    id: str
    name: str | None = None
    rate_limit: RateLimit | msgspec.UnsetType | None = msgspec.UNSET
    run_retention_days: int | msgspec.UnsetType | None = msgspec.UNSET
    max_holds: int | msgspec.UnsetType | None = msgspec.UNSET
    max_queued_runs: int | msgspec.UnsetType | None = msgspec.UNSET
    weight: int | msgspec.UnsetType | None = msgspec.UNSET
    max_running: int | msgspec.UnsetType | None = msgspec.UNSET


class Tenant(_Result, frozen=True):
    """``run_retention_days: null``: the registry's default applies; ``max_holds`` and
    ``max_queued_runs`` ``null``: the gateway's defaults; ``weight: null``: 1;
    ``max_running: null``: no limit of the tenant's own (the executors' capacity)."""

    id: str
    name: str
    created_at: datetime
    rate_limit: RateLimit | None = None
    run_retention_days: int | None = None
    max_holds: int | None = None
    max_queued_runs: int | None = None
    weight: int | None = None
    max_running: int | None = None


class ApiKeySecret(_Result, frozen=True):
    """A key as created: the only message that ever carries ``key``."""

    id: str
    name: str
    role: Role
    key: str
    created_at: datetime


class TenantCreated(_Result, frozen=True):
    id: str
    name: str
    created_at: datetime
    admin_key: ApiKeySecret


# --- API keys ----------------------------------------------------------------------------


class ApiKeyCreate(Request["ApiKeySecret"], frozen=True):
    operation = "apikey_create"

    name: str
    role: Role


class ApiKeyList(Request["ApiKeyPage"], frozen=True):
    operation = "apikey_list"


class ApiKeyRevoke(Request["ApiKey"], frozen=True):
    operation = "apikey_revoke"

    id: str


class ApiKeyVerify(Request["ApiKeyIdentity"], frozen=True):
    """Asked by the gateway with the bearer key; the tenant comes from the key itself."""

    operation = "apikey_verify"

    key: str


class ApiKeyCheck(Request["ApiKeyIdentity"], frozen=True):
    """Asked by the gateway for a console session's key (it holds the key's id, never the
    key): who the key is now; UNAUTHENTICATED once it is revoked or gone."""

    operation = "apikey_check"

    id: str


class ApiKey(_Result, frozen=True):
    id: str
    name: str
    role: Role
    created_at: datetime
    created_by: str
    last_used_at: datetime | None = None
    revoked_at: datetime | None = None


class ApiKeyIdentity(_Result, frozen=True):
    tenant: str
    key_id: str
    name: str
    role: Role


class ApiKeyPage(_Result, frozen=True):
    items: list[ApiKey]


# --- workflows ---------------------------------------------------------------------------


class WorkflowCreate(Request["Workflow"], frozen=True):
    operation = "workflow_create"

    definition: Any


class WorkflowGet(Request["Workflow"], frozen=True):
    operation = "workflow_get"

    id: str
    version: int | None = None


class WorkflowList(Request["WorkflowPage"], frozen=True, omit_defaults=True):
    operation = "workflow_list"

    limit: int = 50
    cursor: str | None = None
    offset: int | None = None
    category: str | None = None
    tags: list[str] = []
    enabled: bool | None = None
    q: str | None = None
    sort: WorkflowSort = "-updated_at"


class WorkflowUpdate(Request["Workflow"], frozen=True):
    """A new version from ``definition``, or from ``document`` (text in ``format``, read by
    the registry: its problems then carry their line and column)."""

    operation = "workflow_update"

    id: str
    definition: Any = None
    if_version: int | None = None
    document: str | None = None
    format: ExportFormat = "json"


class WorkflowPatch(Request["Workflow"], frozen=True, omit_defaults=True):
    operation = "workflow_patch"

    id: str
    enabled: bool | None = None
    tags: list[str] | None = None
    current_version: int | None = None
    if_version: int | None = None


class WorkflowDelete(Request["Deleted"], frozen=True):
    operation = "workflow_delete"

    id: str


class WorkflowApply(Request["WorkflowApplied"], frozen=True):
    operation = "workflow_apply"

    name: str
    definition: Any


class WorkflowVersions(Request["VersionPage"], frozen=True, omit_defaults=True):
    """A workflow's versions, newest first, a page at a time (``cursor`` from the last page)."""

    operation = "workflow_versions"

    id: str
    limit: int = 50
    cursor: str | None = None


class WorkflowClone(Request["Workflow"], frozen=True):
    operation = "workflow_clone"

    id: str
    name: str
    version: int | None = None


class WorkflowExport(Request["ExportedDocument"], frozen=True):
    operation = "workflow_export"

    id: str
    version: int | None = None
    format: ExportFormat = "json"


class WorkflowImport(Request["Workflow"], frozen=True):
    operation = "workflow_import"

    document: str
    format: ExportFormat = "json"


class WorkflowValidate(Request["ValidationResult"], frozen=True):
    """Validate ``definition``, or ``document`` (text in ``format``, read by the registry:
    each problem then carries its line and column, and text that is not well-formed is one
    INVALID_EXPORT_FORMAT problem at ``$``)."""

    operation = "workflow_validate"

    definition: Any = None
    document: str | None = None
    format: ExportFormat = "json"


class WorkflowLock(Request["LockInfo"], frozen=True):
    operation = "workflow_lock"

    id: str
    ttl_seconds: int = 300


class WorkflowUnlock(Request["Deleted"], frozen=True):
    operation = "workflow_unlock"

    id: str


class Workflow(_Result, frozen=True):
    """The workflow resource of DESIGN section 7: current (or asked) version and statistics."""

    id: str
    tenant_id: str
    name: str
    description: str
    category: str
    tags: list[str]
    enabled: bool
    version: int
    versions: int
    validation_status: ValidationStatus
    validation_errors: list[ProblemItem]
    input_schema: dict[str, Any] | None
    vars: dict[str, Any]
    triggers: list[dict[str, Any]]
    concurrency: dict[str, Any] | None
    timeout: str | None
    nodes: list[dict[str, Any]]
    edges: list[dict[str, Any]]
    output: str | None
    content_hash: str
    execution_count: int
    last_executed_at: datetime | None
    last_execution_status: str | None
    average_execution_ms: float | None
    is_locked: bool
    locked_by: str | None
    locked_at: datetime | None
    lock_expires_at: datetime | None
    created_at: datetime
    created_by: str
    updated_at: datetime
    updated_by: str
    #: Trigger id -> secret, for each ``webhook`` trigger given a secret by the write that
    #: answers with this resource: shown once, here, and absent from every other answer.
    webhook_secrets: dict[str, str] | msgspec.UnsetType = msgspec.UNSET

    def __repr__(self) -> str:  # a log line never shows a webhook secret
        fields = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in self.__struct_fields__
            if name != "webhook_secrets"
        )
        shown = self.webhook_secrets
        secrets = sorted(shown) if isinstance(shown, dict) else []
        return f"Workflow({fields}, webhook_secrets=<{len(secrets)} secret(s): {secrets}>)"


class WorkflowPage(_Result, frozen=True):
    items: list[Workflow]
    next_cursor: str | None
    has_more: bool


class WorkflowApplied(_Result, frozen=True):
    workflow: Workflow
    created: bool
    changed: bool


class VersionInfo(_Result, frozen=True):
    version: int
    created_at: datetime
    created_by: str
    validation_status: ValidationStatus
    content_hash: str


class VersionPage(_Result, frozen=True):
    items: list[VersionInfo]
    next_cursor: str | None
    has_more: bool


class ExportedDocument(_Result, frozen=True):
    format: ExportFormat
    content_type: str
    document: str


class ValidationResult(_Result, frozen=True):
    valid: bool
    errors: list[ProblemItem]


class LockInfo(_Result, frozen=True):
    workflow_id: str
    locked_by: str
    locked_at: datetime
    expires_at: datetime


class Deleted(_Result, frozen=True):
    id: str


# --- secrets -----------------------------------------------------------------------------
# Names match ``flowmesh_proto.ids.SECRET_NAME_PATTERN``. A value travels in exactly two
# messages: SecretPut (in) and SecretValues (out, to Flowmesh's own services only). Their
# reprs leave the values out, so neither can reach a log line by accident.


class SecretPut(Request["Secret"], frozen=True):
    """Create or replace a secret; ``value`` is 1 byte to 64 KiB of UTF-8."""

    operation = "secret_put"

    name: str
    value: str

    def __repr__(self) -> str:
        return f"SecretPut(name={self.name!r}, value=<{len(self.value)} characters>)"


class SecretDelete(Request["SecretDeleted"], frozen=True):
    operation = "secret_delete"

    name: str


class SecretList(Request["SecretPage"], frozen=True):
    operation = "secret_list"

    pass


class SecretResolve(Request["SecretValues"], frozen=True):
    """Asked by Flowmesh's services (``service:`` principals) only, for the request's tenant."""

    operation = "secret_resolve"

    names: list[str]


class Secret(_Result, frozen=True):
    """A secret as every reply shows it: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretPage(_Result, frozen=True):
    items: list[Secret]


class SecretDeleted(_Result, frozen=True):
    """The deleted secret's name and the stored versions that named it, now ``invalid``."""

    name: str
    invalidated: list[VersionRef]


class SecretValues(_Result, frozen=True):
    """Name -> value: the one reply that carries values."""

    values: dict[str, str]

    def __repr__(self) -> str:
        return f"SecretValues(names={sorted(self.values)!r})"


# --- batch -------------------------------------------------------------------------------

MAX_BATCH_OPERATIONS = 100


class _BatchOp(_Request, frozen=True, tag_field="op"):
    """One operation of a batch; ``op`` says which."""


class BatchCreate(_BatchOp, frozen=True, tag="create"):
    definition: Any


class BatchUpdate(_BatchOp, frozen=True, tag="update"):
    id: str
    definition: Any
    if_version: int | None = None


class BatchUpsert(_BatchOp, frozen=True, tag="upsert"):
    """Create by the definition's name, or add a version if its content changed."""

    definition: Any


class BatchDelete(_BatchOp, frozen=True, tag="delete"):
    id: str


BatchOperation = BatchCreate | BatchUpdate | BatchUpsert | BatchDelete


class WorkflowBatch(Request["BatchResults"], frozen=True):
    """Up to 100 operations, applied all or nothing in one transaction, in order."""

    operation = "workflow_batch"

    operations: list[BatchOperation]


class BatchResult(_Result, frozen=True):
    op: Literal["create", "update", "upsert", "delete"]
    id: str
    version: int | None
    created: bool = False
    changed: bool = True
    #: As :attr:`Workflow.webhook_secrets`: the secrets this operation made, shown once.
    webhook_secrets: dict[str, str] | msgspec.UnsetType = msgspec.UNSET

    def __repr__(self) -> str:
        shown = self.webhook_secrets
        secrets = sorted(shown) if isinstance(shown, dict) else []
        return (
            f"BatchResult(op={self.op!r}, id={self.id!r}, version={self.version!r}, "
            f"created={self.created!r}, changed={self.changed!r}, webhook_secrets={secrets!r})"
        )


class BatchResults(_Result, frozen=True):
    results: list[BatchResult]


# --- audit -------------------------------------------------------------------------------


class AuditRecord(Request["Recorded"], frozen=True):
    """An entry another Flowmesh service records (the gateway's denied accesses)."""

    operation = "audit_record"

    action: str
    target: str
    outcome: Literal["success", "denied", "failure"]
    detail: dict[str, Any] = {}


class Recorded(_Result, frozen=True):
    recorded: bool


class AuditList(Request["AuditPage"], frozen=True, omit_defaults=True):
    operation = "audit_list"

    limit: int = 50
    cursor: str | None = None
    action: str | None = None
    actor: str | None = None
    target: str | None = None


class AuditEntry(_Result, frozen=True):
    id: int
    tenant_id: str
    actor: str
    action: str
    target: str
    outcome: str
    request_id: str
    detail: dict[str, Any]
    at: datetime


class AuditPage(_Result, frozen=True):
    items: list[AuditEntry]
    next_cursor: str | None
    has_more: bool


# --- the changed event (outbox) ------------------------------------------------------------


class WorkflowChanged(msgspec.Struct, frozen=True, kw_only=True, tag="workflow.changed"):
    """Published on ``<prefix>.<t>.registry.workflow.changed`` through the outbox."""

    tenant: str
    workflow_id: str
    change: Literal["created", "updated", "patched", "deleted"]
    version: int
    enabled: bool
    triggers: list[dict[str, Any]]
    outbox_id: int
    at: datetime


# --- the trigger catalogue (the scheduler's full reload) -----------------------------------


class TriggerCatalogue(Request["CataloguePage"], frozen=True, omit_defaults=True):
    """Flowmesh services only (no tenant header): every live workflow that has triggers,
    of every tenant, in ``(tenant, workflow_id)`` order; page on with the last item's
    ``tenant`` and ``workflow_id`` as ``after_tenant`` / ``after_workflow_id``."""

    operation = "trigger_catalogue"

    after_tenant: str | None = None
    after_workflow_id: str | None = None
    limit: int = 500


class CatalogueEntry(msgspec.Struct, frozen=True, kw_only=True):
    """A workflow's current version as the scheduler needs it (``triggers`` are the
    definition's, as stored; ``valid``: the version is executable if ``enabled``)."""

    tenant: str
    workflow_id: str
    version: int
    enabled: bool
    valid: bool
    triggers: list[dict[str, Any]]


class CataloguePage(_Result, frozen=True):
    items: list[CatalogueEntry]
    has_more: bool


# --- webhook secrets -----------------------------------------------------------------------
# A ``webhook`` trigger's secret is made by the registry when the trigger is first stored
# (shown once, in ``Workflow.webhook_secrets``) and when it is rotated (shown once, in
# WebhookSecret). WebhookSecrets answers Flowmesh's own services only (the gateway checking
# a signature). The reprs leave the secrets out.


class WebhookSecretRotate(Request["WebhookSecret"], frozen=True):
    """A new secret for the webhook trigger ``trigger_id``; the previous one stays valid for
    the registry's grace period (``webhook_secret_grace``) so senders can switch over."""

    operation = "webhook_secret_rotate"

    workflow_id: str
    trigger_id: str


class WebhookSecret(_Result, frozen=True):
    """A secret as rotation made it: shown once."""

    workflow_id: str
    trigger_id: str
    secret: str
    created_at: datetime

    def __repr__(self) -> str:
        return (
            f"WebhookSecret(workflow_id={self.workflow_id!r}, trigger_id={self.trigger_id!r}, "
            f"secret=<redacted>, created_at={self.created_at!r})"
        )


class WebhookSecretGet(Request["WebhookSecrets"], frozen=True):
    """Flowmesh services only, for the request's tenant: what verifies a webhook call."""

    operation = "webhook_secret_get"

    workflow_id: str
    trigger_id: str


class WebhookKey(msgspec.Struct, frozen=True, kw_only=True):
    """A secret a webhook call may be signed with; ``expires_at``: the end of a previous
    secret's grace period (None for the current secret)."""

    secret: str
    created_at: datetime
    expires_at: datetime | None = None

    def __repr__(self) -> str:
        return f"WebhookKey(secret=<redacted>, created_at={self.created_at!r})"


class WebhookSecrets(_Result, frozen=True):
    """The secrets valid now (current first, then the previous one in its grace period), and
    whether a call may start a run: the workflow's current ``version``, ``enabled``,
    ``valid`` (its validation status), and whether ``trigger_id`` names a webhook trigger of
    that version (``trigger_exists``) that is enabled (``trigger_enabled``)."""

    workflow_id: str
    trigger_id: str
    version: int
    enabled: bool
    valid: bool
    trigger_exists: bool
    trigger_enabled: bool
    secrets: list[WebhookKey]

    def __repr__(self) -> str:
        return (
            f"WebhookSecrets(workflow_id={self.workflow_id!r}, trigger_id={self.trigger_id!r}, "
            f"version={self.version}, enabled={self.enabled}, valid={self.valid}, "
            f"trigger_exists={self.trigger_exists}, trigger_enabled={self.trigger_enabled}, "
            f"secrets=<{len(self.secrets)}>)"
        )


# --- run history (the projection of run events) ------------------------------------------


class RunGet(Request["Run"], frozen=True):
    """One run as projected, with its steps."""

    operation = "run_get"

    id: str


class RunList(Request["RunPage"], frozen=True, omit_defaults=True):
    """Runs newest first. Filters: ``workflow_id``, ``status`` (any of), ``trigger_kind``,
    ``created_after`` (inclusive) / ``created_before`` (exclusive). Items carry no steps."""

    operation = "run_list"

    limit: int = 50
    cursor: str | None = None
    workflow_id: str | None = None
    status: list[RunStatus] = []
    trigger_kind: TriggerKind | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None


class RunPage(_Result, frozen=True):
    items: list[Run]
    next_cursor: str | None
    has_more: bool


class WorkflowStatsGet(Request["WorkflowStats"], frozen=True):
    operation = "workflow_stats"

    id: str


class WorkflowStats(_Result, frozen=True):
    """DESIGN section 7's ``GET /workflows/{id}/stats``: over the runs the registry keeps."""

    execution_count: int
    success_count: int
    failure_count: int
    last_executed_at: datetime | None
    last_execution_status: str | None
    average_execution_ms: float | None
    p95_execution_ms: float | None


_REQUESTS: tuple[type[Request[Any]], ...] = (
    TenantCreate,
    TenantGet,
    TenantUpdate,
    ApiKeyCreate,
    ApiKeyList,
    ApiKeyRevoke,
    ApiKeyVerify,
    ApiKeyCheck,
    WorkflowCreate,
    WorkflowGet,
    WorkflowList,
    WorkflowUpdate,
    WorkflowPatch,
    WorkflowDelete,
    WorkflowApply,
    WorkflowVersions,
    WorkflowClone,
    WorkflowExport,
    WorkflowImport,
    WorkflowValidate,
    WorkflowLock,
    WorkflowUnlock,
    SecretPut,
    SecretDelete,
    SecretList,
    SecretResolve,
    WorkflowBatch,
    AuditList,
    AuditRecord,
    RunGet,
    RunList,
    WorkflowStatsGet,
    TriggerCatalogue,
    WebhookSecretRotate,
    WebhookSecretGet,
    ConnectorPut,
    ConnectorGet,
    ConnectorList,
    ConnectorDelete,
    ActionPut,
    ActionGet,
    ActionList,
    ActionVersions,
    ActionDelete,
)

#: Every operation the registry serves, by name: (request type, reply type). The subject is
#: ``rpc.registry.<name>``.
OPERATIONS: dict[str, tuple[type[Request[Any]], type[msgspec.Struct]]] = {
    request.operation: (request, reply_type(request)) for request in _REQUESTS
}
