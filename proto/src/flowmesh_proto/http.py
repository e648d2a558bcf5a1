"""Bodies of the HTTP API (DESIGN §7) that are not registry messages as they are.

Unknown fields are refused, not ignored. Responses reuse the registry's result Structs.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

import msgspec

from flowmesh_proto.errors import ProblemItem
from flowmesh_proto.ids import EVENT_ID_PATTERN, EVENT_TYPE_PATTERN, MAX_EVENT_ID_LENGTH
from flowmesh_proto.registry import (
    MAX_RUN_RETENTION_DAYS,
    MAX_TENANT_HOLDS,
    MAX_TENANT_QUEUED_RUNS,
    MAX_TENANT_RUNNING,
    MAX_TENANT_WEIGHT,
    RateLimit,
    Role,
    Tenant,
)


class _Body(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base of every request body."""


class WorkflowPatchBody(_Body, frozen=True, omit_defaults=True):
    enabled: bool | None = None
    tags: list[str] | None = None
    current_version: int | None = None


class CloneBody(_Body, frozen=True):
    name: str
    version: int | None = None


class LockBody(_Body, frozen=True):
    ttl_seconds: int = 300


class ApiKeyBody(_Body, frozen=True):
    name: str
    role: Role


class ConsoleSignInBody(_Body, frozen=True):
    """``POST /console/session``: the API key to sign in with (never in a URL)."""

    key: str


class ConsoleSession(msgspec.Struct, frozen=True, kw_only=True):
    """A console session as its page sees it (the session id is in the cookie only)."""

    tenant: str
    role: Role
    csrf_token: str
    #: The id of the API key the session was signed in with (never the key): the console
    #: marks it in the keys list, as revoking it ends the session.
    key_id: str
    #: Seconds until the session ends if it is not used again.
    expires_in: int


class TenantBody(_Body, frozen=True):
    id: str
    name: str = ""


class TenantPatchBody(_Body, frozen=True, omit_defaults=True):
    """``PATCH /api/v1/admin/tenants/{id}``: ``rate_limit: null`` returns to the default;
    ``run_retention_days`` (1..3650): how long run history is kept (``null``: the default);
    ``max_holds``: concurrent SSE streams and ``?wait`` executes of the tenant, across
    gateways; ``max_queued_runs``: runs queued before ``execute`` answers 429 (each
    ``null``: the gateway's default); ``weight`` (1..1000): the tenant's share of the
    executors when all are busy (``null``: 1); ``max_running`` (1..1000000): the runs it
    holds at once across executors (``null``: as many as the executors have room for)."""

    name: str | None = None
    rate_limit: RateLimit | msgspec.UnsetType | None = msgspec.UNSET
    run_retention_days: (
        Annotated[int, msgspec.Meta(ge=1, le=MAX_RUN_RETENTION_DAYS)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    max_holds: (
        Annotated[int, msgspec.Meta(ge=0, le=MAX_TENANT_HOLDS)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    max_queued_runs: (
        Annotated[int, msgspec.Meta(ge=0, le=MAX_TENANT_QUEUED_RUNS)] | msgspec.UnsetType | None
    ) = msgspec.UNSET
    weight: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=MAX_TENANT_WEIGHT,
                description="The tenant's share of the executors when all are busy "
                "(a tenant of weight 2 gets twice the turns of one of weight 1); null: 1.",
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET
    max_running: (
        Annotated[
            int,
            msgspec.Meta(
                ge=1,
                le=MAX_TENANT_RUNNING,
                description="The runs the tenant holds at once, across executors; past it "
                "its runs stay queued (waiting: tenant_max_running). null: as many as the "
                "executors have room for.",
            ),
        ]
        | msgspec.UnsetType
        | None
    ) = msgspec.UNSET


class TenantRuns(msgspec.Struct, frozen=True, kw_only=True):
    """A tenant's runs in the executors' intake (DESIGN section 13), from its run-request
    consumer: ``queued``, requested and taken by no executor yet; ``running``, held by
    executors now (a parked run is held by none); ``max_running``, the most the executors
    let it hold now (its consumer's ``max_ack_pending``: the tenant's ``max_running``, or
    the executors' default; ``null``: no limit but their room)."""

    queued: int
    running: int
    max_running: int | None = None


class TenantView(Tenant, frozen=True, kw_only=True):
    """``GET /api/v1/admin/tenants/{id}``: the tenant, its settings, and its runs now."""

    runs: TenantRuns


class ValidationAnswer(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /workflows/validate``: a question, answered 200 either way."""

    valid: bool
    errors: list[ProblemItem]


class SecretBody(_Body, frozen=True):
    """``PUT /secrets/{name}``: the value is write-only."""

    value: str

    def __repr__(self) -> str:
        return "SecretBody(value=<redacted>)"


#: The largest version number a body may name.
MAX_VERSION = 1_000_000_000


class ExecuteBody(_Body, frozen=True):
    """``POST /workflows/{id}/execute``: every field optional; no input is ``{}``.
    ``delay`` (ISO 8601 duration) or ``run_at`` (RFC 3339 with an offset), not both, make a
    delayed run: ``202 {"status": "scheduled"}``, started by the scheduler when due."""

    input: Any = {}
    idempotency_key: Annotated[str, msgspec.Meta(min_length=1, max_length=255)] | None = None
    version: Annotated[int, msgspec.Meta(ge=1, le=MAX_VERSION)] | None = None
    delay: timedelta | None = None
    run_at: datetime | None = None


class RunAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """``execute`` and ``retry``: 202, the run is queued (``Location`` names it)."""

    run_id: str
    status: Literal["queued", "scheduled"]


class CancelBody(_Body, frozen=True):
    """``POST /runs/{run_id}/cancel``: optional; the reason is recorded with the cancel."""

    reason: Annotated[str, msgspec.Meta(max_length=1000)] = ""


class CancelAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """``cancel``: 202, the executor holding the run (or the next to pick it up) stops it."""

    run_id: str
    status: Literal["cancelling"]


class EventBody(_Body, frozen=True):
    """``POST /events``: a CloudEvents-named envelope. ``type`` is dot-separated subject
    tokens (``order.created``); no ``id`` gets a UUIDv7, no ``time`` the time received."""

    type: Annotated[str, msgspec.Meta(max_length=200, pattern=EVENT_TYPE_PATTERN)]
    data: Any
    id: (
        Annotated[
            str,
            msgspec.Meta(min_length=1, max_length=MAX_EVENT_ID_LENGTH, pattern=EVENT_ID_PATTERN),
        ]
        | None
    ) = None
    source: Annotated[str, msgspec.Meta(max_length=1000)] = ""
    time: Annotated[datetime, msgspec.Meta(tz=True)] | None = None


class EventAccepted(msgspec.Struct, frozen=True, kw_only=True):
    """``POST /events``: 202, the event is stored (once, however often it is sent)."""

    id: str
