"""The scheduler process: settings -> NATS, streams, cron bucket, catalogue, cron loop,
timers, event triggers, health -> until stopped.

Any number of replicas may run: cron fires are named (JetStream keeps one run per tick),
and timers and trigger events are each taken by one replica from shared durable consumers.
Stopping (SIGTERM): no more timers or events are taken, the ones being handled get
``shutdown_timeout`` seconds, the rest are left unacked for another replica.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from datetime import timedelta

import msgspec
import structlog

from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_scheduler.catalogue import Catalogue
from flowmesh_scheduler.consuming import Consuming
from flowmesh_scheduler.crons import CronLoop
from flowmesh_scheduler.events import EventTriggers
from flowmesh_scheduler.firing import Starter
from flowmesh_scheduler.metrics import SchedulerMetrics
from flowmesh_scheduler.settings import ENV_PREFIX, SchedulerSettings
from flowmesh_scheduler.sync import CatalogueSync
from flowmesh_scheduler.timers import Timers
from flowmesh_scheduler.waits import EventWaits
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.health import HealthServer, nats_connected, service_metrics_registry
from flowmesh_shared.jetstream import IDEMPOTENCY_TTL, ensure_bucket, provision_streams
from flowmesh_shared.lifecycle import service_cli
from flowmesh_shared.natsconn import connect, drain, service_inbox
from flowmesh_shared.rpc import RpcClient
from flowmesh_shared.runlife_nats import NatsRunLifecycle, message_limit, reads_direct
from flowmesh_shared.turns import Turns

log = structlog.get_logger("flowmesh.scheduler")

SERVICE = "scheduler"


class SchedulerApp(msgspec.Struct, kw_only=True):
    """The running scheduler's parts, for tests and the health endpoints."""

    settings: SchedulerSettings
    catalogue: Catalogue
    sync: CatalogueSync
    crons: CronLoop
    health_port: int


async def start_scheduler(settings: SchedulerSettings, stack: AsyncExitStack) -> SchedulerApp:
    """Open every resource into ``stack`` (closed in reverse) and start firing."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    nc = await connect(
        settings.nats_url,
        name=f"flowmesh-scheduler-{name}",
        inbox_prefix=service_inbox("scheduler"),
    )
    stack.push_async_callback(drain, nc, settings.shutdown_timeout)
    subjects = Subjects(settings.subject_prefix)
    streams = stream_names(settings.stream_prefix)
    js = nc.jetstream()
    await provision_streams(js, subjects, streams, settings.streams)
    cron_bucket = await ensure_bucket(js, streams.cron, timedelta(0), settings.streams)
    claims = await ensure_bucket(js, streams.idempotency, IDEMPOTENCY_TTL, settings.streams)
    wait_bucket = await ensure_bucket(js, streams.event_waits, timedelta(0), settings.streams)

    metrics_registry = service_metrics_registry()
    metrics = SchedulerMetrics(metrics_registry)
    life = NatsRunLifecycle(
        nc,
        js,
        subjects,
        streams,
        read_timeout=settings.rpc_timeout,
        max_message_bytes=message_limit(nc, settings.streams),
        direct=reads_direct(settings.streams),
    )
    starter = Starter(life, claims)
    catalogue = Catalogue()
    crons = CronLoop(catalogue, starter, cron_bucket, metrics, catch_up_max=settings.catch_up_max)
    sync = CatalogueSync(
        nc,
        RpcClient(nc, subjects, timeout=settings.rpc_timeout),
        subjects,
        streams,
        catalogue,
        metrics,
        on_change=crons.changed,
        reload_interval=settings.catalogue_reload_interval,
    )
    await sync.start()
    stack.push_async_callback(sync.stop)
    await crons.start()
    stack.push_async_callback(crons.stop, settings.shutdown_timeout)

    timers = Consuming(
        nc,
        streams.timers,
        settings.timers_consumer,
        subjects.all_timers,
        Timers(starter, metrics, max_hold=settings.timer_max_hold).handle,
        ack_wait=settings.ack_wait,
        max_in_flight=settings.max_in_flight,
    )
    await timers.start()
    stack.push_async_callback(timers.stop, settings.shutdown_timeout)
    ids = EventIds(js, streams.idempotency, settings.streams, claims)
    budget = settings.expression_budget
    turns = Turns(budget)  # one for the process: filters and parked-wait matches share it
    waits = EventWaits(
        js, wait_bucket, streams.event_waits, subjects, streams, starter, metrics, ids, budget,
        turns,
    )  # fmt: skip
    await waits.start()
    stack.push_async_callback(waits.stop)
    events = Consuming(
        nc,
        streams.events,
        settings.events_consumer,
        subjects.all_events,
        EventTriggers(
            catalogue, starter, metrics, subjects.prefix, ids, waits, budget, turns
        ).handle,
        ack_wait=settings.ack_wait,
        max_in_flight=settings.max_in_flight,
    )
    # Trigger events wait for the catalogue: one taken before it is loaded would match
    # nothing and be acked, its runs lost.
    events_started = asyncio.create_task(_after(sync.ready, events.start))
    stack.push_async_callback(_stop_events, events_started, events, settings.shutdown_timeout)

    health = HealthServer(settings.http_host, settings.http_port, registry=metrics_registry)
    health.add_check("nats", nats_connected(nc))
    health.add_check("catalogue", lambda: sync.loaded)
    port = await health.start()
    stack.push_async_callback(health.stop)
    log.info("scheduler.ready", health_port=port, name=name)
    return SchedulerApp(
        settings=settings, catalogue=catalogue, sync=sync, crons=crons, health_port=port
    )


async def _after(ready: asyncio.Event, start: Callable[[], Awaitable[None]]) -> None:
    """``start()`` once ``ready`` is set, trying again until it works (NATS may be away)."""
    await ready.wait()
    delay = 0.2
    while True:
        try:
            await start()
            return
        except Exception as exc:
            log.warning("scheduler.events_start_failed", error=str(exc), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 10.0)


async def _stop_events(
    started: asyncio.Task[None],
    events: Consuming,
    timeout: float,  # noqa: ASYNC109
) -> None:
    if not started.done():
        started.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await started
        return
    await events.stop(timeout)


def cli(argv: list[str] | None = None) -> int:
    return service_cli(SERVICE, SchedulerSettings, ENV_PREFIX, start_scheduler, argv)
