"""The scheduler's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENESS_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 60.0)


class SchedulerMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.fires = Counter(
            "flowmesh_scheduler_fires",
            "Runs requested, by what fired them (cron, event, timer, wait: a parked wait woken)",
            ["kind"],
            registry=registry,
        )
        self.fire_lateness = Histogram(
            "flowmesh_scheduler_fire_lateness_seconds",
            "From when a fire was due (cron tick, timer due, event published) to its request",
            ["kind"],
            buckets=LATENESS_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "flowmesh_scheduler_events",
            "Trigger events taken, by outcome (matched: started at least one run; "
            "unmatched; refused: not an event of its subject's tenant; copy: an event stored "
            "again, ignored)",
            ["outcome"],
            registry=registry,
        )
        self.over_budget = Counter(
            "flowmesh_scheduler_expressions_over_budget",
            "Event filters and parked-wait matches not evaluated, as they would cost more "
            "than their budget (taken as no match), by where (filter, wait)",
            ["where"],
            registry=registry,
        )
        self.cron_triggers = Gauge(
            "flowmesh_scheduler_cron_triggers", "Cron triggers scheduled", registry=registry
        )
        self.workflows = Gauge(
            "flowmesh_scheduler_catalogue_workflows",
            "Workflows with triggers in the catalogue",
            registry=registry,
        )
        self.timers_held = Counter(
            "flowmesh_scheduler_timers_deferred",
            "Timers looked at before they were due and handed back until then",
            registry=registry,
        )
