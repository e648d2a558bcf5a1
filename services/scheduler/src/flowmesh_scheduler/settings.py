"""Scheduler settings: read once from ``FLOWMESH_SCHEDULER_*`` (and NATS_URL)."""

from __future__ import annotations

from flowmesh_shared.jetstream import StreamLimits
from flowmesh_shared.settings import CommonSettings

ENV_PREFIX = "FLOWMESH_SCHEDULER"


class SchedulerSettings(CommonSettings, frozen=True, kw_only=True):
    #: The port of /healthz, /readyz and /metrics (0 picks a free one).
    http_port: int = 8084
    #: The durable consumer of durable timers (FM_TIMERS) every scheduler replica shares.
    timers_consumer: str = "scheduler-timers"
    #: The durable consumer of trigger events (FM_EVENTS) every scheduler replica shares.
    events_consumer: str = "scheduler-events"
    #: Seconds before JetStream hands a timer or an event held by a dead replica to another.
    ack_wait: float = 30.0
    #: Seconds a timer not yet due is handed back for, at most, before it is looked at again.
    timer_max_hold: float = 3600.0
    #: Missed fires a ``catch_up: all`` trigger fires at most after downtime (the latest ones).
    catch_up_max: int = 100
    #: Seconds between full reloads of the trigger catalogue (changes arrive as events too).
    catalogue_reload_interval: float = 300.0
    #: Cost units one event filter or parked-wait match may spend; one over it is no
    #: match, counted (DESIGN section 12; a unit is at most ~0.6 us, bench/expressions.py).
    expression_budget: int = 20_000
    #: Messages (timers, events) one replica holds at once.
    max_in_flight: int = 256
    #: Retention limits, storage and replicas of the streams and key-value buckets this
    #: service creates, or updates, at start.
    streams: StreamLimits = StreamLimits()
