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

from flowmesh_proto.errors import ProblemItem
from flowmesh_proto.runs import Run, RunStatus, TriggerKind

Role = Literal["viewer", "operator", "editor", "admin"]
ROLES: tuple[str, ...] = ("viewer", "operator", "editor", "admin")
ValidationStatus = Literal["valid", "invalid"]
ExportFormat = Literal["json", "yaml"]
WorkflowSort = Literal["name", "-name", "created_at", "-created_at", "updated_at", "-updated_at"]


class _Request(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request: unknown fields are refused, not ignored."""


class _Result(msgspec.Struct, frozen=True, kw_only=True):
    """Base of every reply payload."""


# --- tenants -----------------------------------------------------------------------------


class TenantCreate(_Request, frozen=True):
    id: str
    name: str = ""


class TenantGet(_Request, frozen=True):
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


class TenantUpdate(_Request, frozen=True, omit_defaults=True):
    """Platform admins only. ``rate_limit: null`` returns to the gateway's default;
    ``run_retention_days`` (1..3650) sets how long run history is kept, ``null`` returns
    to the registry's default; ``max_holds`` (0..100000, concurrent SSE streams and waits)
    and ``max_queued_runs`` (0..100000000) are the tenant's quotas, ``null`` the gateway's
    defaults."""

    id: str
    name: str | None = None
    rate_limit: RateLimit | msgspec.UnsetType | None = msgspec.UNSET
    run_retention_days: int | msgspec.UnsetType | None = msgspec.UNSET
    max_holds: int | msgspec.UnsetType | None = msgspec.UNSET
    max_queued_runs: int | msgspec.UnsetType | None = msgspec.UNSET


class Tenant(_Result, frozen=True):
    """``run_retention_days: null``: the registry's default applies; ``max_holds`` and
    ``max_queued_runs`` ``null``: the gateway's defaults."""

    id: str
    name: str
    created_at: datetime
    rate_limit: RateLimit | None = None
    run_retention_days: int | None = None
    max_holds: int | None = None
    max_queued_runs: int | None = None


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


class ApiKeyCreate(_Request, frozen=True):
    name: str
    role: Role


class ApiKeyList(_Request, frozen=True):
    pass


class ApiKeyRevoke(_Request, frozen=True):
    id: str


class ApiKeyVerify(_Request, frozen=True):
    """Asked by the gateway with the bearer key; the tenant comes from the key itself."""

    key: str


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


class WorkflowCreate(_Request, frozen=True):
    definition: Any


class WorkflowGet(_Request, frozen=True):
    id: str
    version: int | None = None


class WorkflowList(_Request, frozen=True, omit_defaults=True):
    limit: int = 50
    cursor: str | None = None
    offset: int | None = None
    category: str | None = None
    tags: list[str] = []
    enabled: bool | None = None
    q: str | None = None
    sort: WorkflowSort = "-updated_at"


class WorkflowUpdate(_Request, frozen=True):
    id: str
    definition: Any
    if_version: int | None = None


class WorkflowPatch(_Request, frozen=True, omit_defaults=True):
    id: str
    enabled: bool | None = None
    tags: list[str] | None = None
    current_version: int | None = None
    if_version: int | None = None


class WorkflowDelete(_Request, frozen=True):
    id: str


class WorkflowApply(_Request, frozen=True):
    name: str
    definition: Any


class WorkflowVersions(_Request, frozen=True):
    id: str


class WorkflowClone(_Request, frozen=True):
    id: str
    name: str
    version: int | None = None


class WorkflowExport(_Request, frozen=True):
    id: str
    version: int | None = None
    format: ExportFormat = "json"


class WorkflowImport(_Request, frozen=True):
    document: str
    format: ExportFormat = "json"


class WorkflowValidate(_Request, frozen=True):
    definition: Any


class WorkflowLock(_Request, frozen=True):
    id: str
    ttl_seconds: int = 300


class WorkflowUnlock(_Request, frozen=True):
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


class SecretPut(_Request, frozen=True):
    """Create or replace a secret; ``value`` is 1 byte to 64 KiB of UTF-8."""

    name: str
    value: str

    def __repr__(self) -> str:
        return f"SecretPut(name={self.name!r}, value=<{len(self.value)} characters>)"


class SecretDelete(_Request, frozen=True):
    name: str


class SecretList(_Request, frozen=True):
    pass


class SecretResolve(_Request, frozen=True):
    """Asked by Flowmesh's services (``service:`` principals) only, for the request's tenant."""

    names: list[str]


class Secret(_Result, frozen=True):
    """A secret as every reply shows it: never its value."""

    name: str
    created_at: datetime
    updated_at: datetime


class SecretPage(_Result, frozen=True):
    items: list[Secret]


class VersionRef(_Result, frozen=True):
    workflow_id: str
    version: int


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


class WorkflowBatch(_Request, frozen=True):
    """Up to 100 operations, applied all or nothing in one transaction, in order."""

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


class AuditRecord(_Request, frozen=True):
    """An entry another Flowmesh service records (the gateway's denied accesses)."""

    action: str
    target: str
    outcome: Literal["success", "denied", "failure"]
    detail: dict[str, Any] = {}


class Recorded(_Result, frozen=True):
    recorded: bool


class AuditList(_Request, frozen=True, omit_defaults=True):
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


class TriggerCatalogue(_Request, frozen=True, omit_defaults=True):
    """Flowmesh services only (no tenant header): every live workflow that has triggers,
    of every tenant, in ``(tenant, workflow_id)`` order; page on with the last item's
    ``tenant`` and ``workflow_id`` as ``after_tenant`` / ``after_workflow_id``."""

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


class WebhookSecretRotate(_Request, frozen=True):
    """A new secret for the webhook trigger ``trigger_id``; the previous one stays valid for
    the registry's grace period (``webhook_secret_grace``) so senders can switch over."""

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


class WebhookSecretGet(_Request, frozen=True):
    """Flowmesh services only, for the request's tenant: what verifies a webhook call."""

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


class RunGet(_Request, frozen=True):
    """One run as projected, with its steps."""

    id: str


class RunList(_Request, frozen=True, omit_defaults=True):
    """Runs newest first. Filters: ``workflow_id``, ``status`` (any of), ``trigger_kind``,
    ``created_after`` (inclusive) / ``created_before`` (exclusive). Items carry no steps."""

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


class WorkflowStatsGet(_Request, frozen=True):
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


#: Operation name -> (request type, result type). The subject is ``rpc.registry.<name>``.
OPERATIONS: dict[str, tuple[type[_Request], type[msgspec.Struct]]] = {
    "tenant_create": (TenantCreate, TenantCreated),
    "tenant_get": (TenantGet, Tenant),
    "tenant_update": (TenantUpdate, Tenant),
    "apikey_create": (ApiKeyCreate, ApiKeySecret),
    "apikey_list": (ApiKeyList, ApiKeyPage),
    "apikey_revoke": (ApiKeyRevoke, ApiKey),
    "apikey_verify": (ApiKeyVerify, ApiKeyIdentity),
    "workflow_create": (WorkflowCreate, Workflow),
    "workflow_get": (WorkflowGet, Workflow),
    "workflow_list": (WorkflowList, WorkflowPage),
    "workflow_update": (WorkflowUpdate, Workflow),
    "workflow_patch": (WorkflowPatch, Workflow),
    "workflow_delete": (WorkflowDelete, Deleted),
    "workflow_apply": (WorkflowApply, WorkflowApplied),
    "workflow_versions": (WorkflowVersions, VersionPage),
    "workflow_clone": (WorkflowClone, Workflow),
    "workflow_export": (WorkflowExport, ExportedDocument),
    "workflow_import": (WorkflowImport, Workflow),
    "workflow_validate": (WorkflowValidate, ValidationResult),
    "workflow_lock": (WorkflowLock, LockInfo),
    "workflow_unlock": (WorkflowUnlock, Deleted),
    "secret_put": (SecretPut, Secret),
    "secret_delete": (SecretDelete, SecretDeleted),
    "secret_list": (SecretList, SecretPage),
    "secret_resolve": (SecretResolve, SecretValues),
    "workflow_batch": (WorkflowBatch, BatchResults),
    "audit_list": (AuditList, AuditPage),
    "audit_record": (AuditRecord, Recorded),
    "run_get": (RunGet, Run),
    "run_list": (RunList, RunPage),
    "workflow_stats": (WorkflowStatsGet, WorkflowStats),
    "trigger_catalogue": (TriggerCatalogue, CataloguePage),
    "webhook_secret_rotate": (WebhookSecretRotate, WebhookSecret),
    "webhook_secret_get": (WebhookSecretGet, WebhookSecrets),
}
