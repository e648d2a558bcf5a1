"""The executor's Prometheus metrics (served on /metrics)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

RUN_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 3600)


class ExecutorMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.runs = Counter(
            "flowmesh_executor_runs",
            "Runs this executor finished, by final status (or fenced / released)",
            ["status"],
            registry=registry,
        )
        self.steps = Counter(
            "flowmesh_executor_steps",
            "Step attempts the shell ran, by node type and outcome",
            ["type", "outcome"],
            registry=registry,
        )
        self.run_duration = Histogram(
            "flowmesh_executor_run_duration_seconds",
            "Time from a run's start to its end, as this executor saw it",
            ["status"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.active = Gauge(
            "flowmesh_executor_runs_active", "Runs this executor holds now", registry=registry
        )
        self.queue_lag = Histogram(
            "flowmesh_executor_queue_lag_seconds",
            "Time from a run request's publication to its delivery to this executor",
            buckets=RUN_BUCKETS,
            registry=registry,
        )
        self.tenant_queued = Gauge(
            "flowmesh_executor_tenant_queued",
            "A tenant's run requests waiting in its queue, as last seen by this executor "
            "(one value for all executors: take the max)",
            ["tenant"],
            registry=registry,
        )
        self.tenant_running = Gauge(
            "flowmesh_executor_tenant_running",
            "A tenant's runs this executor holds now (sum over executors: the tenant's)",
            ["tenant"],
            registry=registry,
        )
        self.tenant_queue_wait = Histogram(
            "flowmesh_executor_tenant_queue_wait_seconds",
            "Time from a tenant's run request to an executor taking it",
            ["tenant"],
            buckets=RUN_BUCKETS,
            registry=registry,
        )
