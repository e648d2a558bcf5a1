"""Executor settings: read once from ``FLOWMESH_EXECUTOR_*`` (and NATS_URL)."""

from __future__ import annotations

from flowmesh_executor.networks import parse_networks
from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings

ENV_PREFIX = "FLOWMESH_EXECUTOR"


class ExecutorSettings(CommonSettings, frozen=True, kw_only=True):
    #: The port of /healthz, /readyz and /metrics (0 picks a free one).
    http_port: int = 8083
    #: Seconds a run's lease lasts without a heartbeat (the consumer's AckWait); a dead
    #: executor's runs move to another one after this.
    lease_seconds: float = 30.0
    #: Runs one process drives at once; more wait in the stream.
    max_runs: int = 256
    #: Run requests fetched per pull (one tenant's share of a turn is at most this).
    fetch_batch: int = 64
    #: Seconds between looks at which tenants have run requests stored (in case a
    #: doorbell was lost; each tenant found costs one fetch).
    intake_sweep: float = 2.0
    #: Runs one tenant may hold at once across every executor, when the platform admin set
    #: none for it (``max_running`` of PATCH /api/v1/admin/tenants/{id}); 0: no limit but
    #: the executors' room.
    tenant_max_running: int = 0
    #: Seconds a tenant's weight and max_running (from the registry) are used before they
    #: are read again: a change by the platform admin takes effect within this.
    tenant_refresh: float = 10.0
    #: Seconds a tenant's run-request consumer lives with no fetch (JetStream then deletes
    #: it; the tenant's next run request makes it again).
    tenant_consumer_idle: float = 86_400.0
    #: Step output limit (bytes of JSON); a bigger output fails the step.
    max_output_bytes: int = 256 * 1024
    #: Cost units one step's expressions may spend (a map: each item's), the same budget
    #: for a run's concurrency key and each ``wait_for_event`` match; one decision of the
    #: engine spends about this much before it yields (DESIGN section 12). A unit is at
    #: most ~0.6 us here (bench/expressions.py): 20,000 is ~12 ms at worst.
    expression_budget: int = 20_000
    #: Run input limit (bytes of JSON); a bigger input fails the run.
    max_input_bytes: int = 1024 * 1024
    #: Events one run may publish; the step that would exceed it fails, then the run.
    max_events_per_run: int = 10_000
    #: http steps: private, loopback and link-local addresses are refused unless allowed.
    http_allow_private: bool = False
    #: http steps: networks (CIDRs, comma-separated: ``127.0.0.0/8,::1/128``) a step may
    #: reach although the SSRF guard refuses private addresses; every other private,
    #: loopback and link-local address stays refused. ``make dev`` allows loopback only.
    http_allow_networks: tuple[str, ...] = ()
    #: http steps: response bodies over this many bytes fail the step.
    http_max_response_bytes: int = 1024 * 1024
    #: http steps: the per-attempt timeout when the node sets none (seconds).
    http_default_timeout: float = 30.0
    #: map steps: items one map may have.
    map_max_items: int = 10_000
    #: Workflow versions kept in memory (they are immutable: cached until evicted).
    definition_cache_size: int = 1024
    #: Seconds: a run whose running steps all wait longer than this (delays, retry
    #: backoffs) is parked: a durable timer (FM_TIMERS, served by the scheduler) asks for it
    #: again when it is due, and its lease is given back. 0 waits in process always.
    park_after: float = 30.0
    #: Seconds a parked run waiting with no end (a ``wait_for_event`` without ``timeout``)
    #: sleeps at most before it is resumed to look again.
    park_recheck: float = 3600.0
    #: Seconds a run parked in a concurrency queue sleeps at most before it looks again
    #: (a slot given back wakes the first waiting run at once; this covers a lost wake).
    slot_recheck: float = 60.0
    #: task steps: seconds JetStream waits for a worker's ack or heartbeat before it hands
    #: the task to another worker (the ``ack_wait`` of each queue's consumer, which the
    #: executor creates; workers heartbeat every 10 s by default).
    task_ack_wait: float = 30.0
    #: task steps: seconds a queue's consumer lives with no worker fetching and no task
    #: step publishing (then JetStream deletes it; the next task step makes it again).
    task_consumer_idle: float = 86_400.0
    #: Retention limits, storage and replicas of the streams and key-value buckets this
    #: service creates, or updates, at start.
    streams: StreamLimits = StreamLimits()

    def __post_init__(self) -> None:
        try:  # a network that is none stops the start
            parse_networks(self.http_allow_networks)
        except ValueError as exc:
            raise ValueError(f"{ENV_PREFIX}_HTTP_ALLOW_NETWORKS: {exc}") from None
