"""Subject and stream names (DESIGN section 3), built from a prefix so test runs can share a server.

No stream's subjects overlap another's, and none matches ``<prefix>.rpc.>``: the tenant
ids ``rpc``, ``sys`` and ``admin`` are reserved, and every operation name is one token.
"""

from __future__ import annotations

import msgspec

from flowmesh_proto.ids import is_event_type, is_queue_name, tenant_id_problem


class SubjectError(ValueError):
    """A value that cannot become a subject token."""


def _tenant(tenant: str) -> str:
    problem = tenant_id_problem(tenant)
    if problem is not None:
        raise SubjectError(problem)
    return tenant


def _token(value: str, what: str) -> str:
    if not value or any(c in value for c in ".*> \t\r\n"):
        raise SubjectError(f"{what} {value!r} is not a subject token")
    return value


class StreamNames(msgspec.Struct, frozen=True, kw_only=True):
    run_requests: str
    run_events: str
    events: str
    tasks: str
    registry: str
    #: Key-value bucket of cancel requests (``<tenant>.<run_id>``), read when a run starts.
    run_control: str
    #: Key-value bucket mapping execute idempotency keys to run ids (24 h).
    idempotency: str
    #: Key-value bucket of accepted webhook requests
    #: (``<tenant>.<workflow_id>.<trigger_id>.<digest>``), so a replayed one is refused.
    webhook_replays: str
    #: Key-value bucket of concurrency slots (``<tenant>.<workflow_id>.<key hash>``).
    concurrency: str
    #: Work-queue stream of durable timers (``<prefix>.<t>.timers.<purpose>``).
    timers: str
    #: Key-value bucket of each cron trigger's last fire (``<tenant>.<workflow_id>.<trigger>``).
    cron: str
    #: Key-value bucket of parked ``wait_for_event`` steps (``<tenant>.<run_id>.<node_id>``).
    event_waits: str
    #: Key-value bucket the gateway replicas share their rate limits and concurrent holds
    #: in (``rate.tenant.<t>``, ``rate.credential.<digest>``, ``holds.<t>``).
    quotas: str
    #: Key-value bucket of console sessions (the SHA-256 of a session id; DESIGN section 14).
    sessions: str


class Subjects(msgspec.Struct, frozen=True):
    """Every subject of the contract under one prefix (``fm`` by default)."""

    prefix: str = "fm"

    # --- per tenant ---
    def run_requests(self, tenant: str) -> str:
        return f"{self.prefix}.{_tenant(tenant)}.requests.runs"

    def run_events(self, tenant: str, run_id: str) -> str:
        return f"{self.prefix}.{_tenant(tenant)}.runs.{_token(run_id, 'run id')}"

    def events(self, tenant: str, event_type: str) -> str:
        if not is_event_type(event_type):
            raise SubjectError(f"event type {event_type!r} is not dot-separated tokens")
        return f"{self.prefix}.{_tenant(tenant)}.events.{event_type}"

    def ingress(self, tenant: str, event_type: str) -> str:
        """Where a tenant's own publisher's event arrives (its account maps
        ``<prefix>.<t>.events.>`` here); no stream captures it: the gateway stores it."""
        if not is_event_type(event_type):
            raise SubjectError(f"event type {event_type!r} is not dot-separated tokens")
        return f"{self.prefix}.{_tenant(tenant)}.ingress.{event_type}"

    def ingress_event(self, subject: str) -> tuple[str, str]:
        """(tenant, event type) of an ingress subject; SubjectError if it is not one."""
        head, _, rest = subject.partition(".")
        tenant, _, rest = rest.partition(".")
        kind, _, event_type = rest.partition(".")
        if head != self.prefix or kind != "ingress" or not is_event_type(event_type):
            raise SubjectError(f"{subject!r} is not an ingress subject")
        return _tenant(tenant), event_type

    def tasks(self, tenant: str, queue: str) -> str:
        if not is_queue_name(queue):
            raise SubjectError(f"queue {queue!r} is not a valid queue name")
        return f"{self.prefix}.{_tenant(tenant)}.tasks.{queue}"

    def task_replies(self, tenant: str, token: str) -> str:
        """Where a worker answers one execution of a task step (``token``: fresh per call)."""
        return f"{self.prefix}.{_tenant(tenant)}.task-replies.{_token(token, 'reply token')}"

    def control(self, tenant: str, run_id: str) -> str:
        return f"{self.prefix}.{_tenant(tenant)}.control.{_token(run_id, 'run id')}"

    def timers(self, tenant: str, purpose: str) -> str:
        return f"{self.prefix}.{_tenant(tenant)}.timers.{_token(purpose, 'timer purpose')}"

    def workflow_changed(self, tenant: str) -> str:
        return f"{self.prefix}.{_tenant(tenant)}.registry.workflow.changed"

    def intake(self, tenant: str) -> str:
        """The doorbell (core NATS, no payload) rung after each run request of ``tenant``
        is stored, and when a run of a tenant with ``max_running`` ends: executors listen
        here to know whose queue to take from next (DESIGN section 13)."""
        return f"{self.prefix}.sys.intake.{_tenant(tenant)}"

    # --- services ---
    def rpc(self, service: str, operation: str) -> str:
        return f"{self.prefix}.rpc.{_token(service, 'service')}.{_token(operation, 'operation')}"

    # --- stream filters (every tenant) ---
    @property
    def all_run_requests(self) -> str:
        return f"{self.prefix}.*.requests.runs"

    @property
    def all_intake(self) -> str:
        return f"{self.prefix}.sys.intake.*"

    @property
    def all_run_events(self) -> str:
        return f"{self.prefix}.*.runs.*"

    @property
    def all_events(self) -> str:
        return f"{self.prefix}.*.events.>"

    @property
    def all_ingress(self) -> str:
        return f"{self.prefix}.*.ingress.>"

    @property
    def all_tasks(self) -> str:
        return f"{self.prefix}.*.tasks.*"

    @property
    def all_task_replies(self) -> str:
        return f"{self.prefix}.*.task-replies.*"

    @property
    def all_timers(self) -> str:
        return f"{self.prefix}.*.timers.*"

    @property
    def all_workflow_changes(self) -> str:
        return f"{self.prefix}.*.registry.workflow.changed"


def stream_names(prefix: str = "FM") -> StreamNames:
    """Stream names under a prefix (``FM`` gives ``FM_RUN_REQUESTS`` ...)."""
    return StreamNames(
        run_requests=f"{prefix}_RUN_REQUESTS",
        run_events=f"{prefix}_RUN_EVENTS",
        events=f"{prefix}_EVENTS",
        tasks=f"{prefix}_TASKS",
        registry=f"{prefix}_REGISTRY",
        run_control=f"{prefix}_RUN_CONTROL",
        idempotency=f"{prefix}_IDEMPOTENCY",
        webhook_replays=f"{prefix}_WEBHOOK_REPLAYS",
        concurrency=f"{prefix}_CONCURRENCY",
        timers=f"{prefix}_TIMERS",
        cron=f"{prefix}_CRON",
        event_waits=f"{prefix}_EVENT_WAITS",
        quotas=f"{prefix}_QUOTAS",
        sessions=f"{prefix}_SESSIONS",
    )


def run_request_consumer(tenant: str) -> str:
    """The durable consumer of one tenant's run requests (every executor pulls from it;
    its ``num_pending`` is the tenant's queue, its ``num_ack_pending`` its leased runs)."""
    return f"runs-{_tenant(tenant)}"


def tenant_of(subject: str) -> str:
    """The tenant token of a tenant subject (``fm.<t>.…``)."""
    parts = subject.split(".", 2)
    if len(parts) < 3:
        raise SubjectError(f"{subject!r} is not a tenant subject")
    return parts[1]
