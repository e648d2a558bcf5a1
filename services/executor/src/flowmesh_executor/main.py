"""The executor process: settings -> NATS, streams, steps, consumer, health -> until stopped.

Stopping (SIGTERM): the consumer stops taking runs, held runs get ``shutdown_timeout`` to
finish, the rest are handed back (nak: another executor resumes them at once), then the
HTTP client closes and NATS drains.
"""

from __future__ import annotations

import os
import socket
from contextlib import AsyncExitStack
from datetime import timedelta

import msgspec
import structlog

from flowmesh_executor.children import ChildRuns
from flowmesh_executor.concurrency import Slots
from flowmesh_executor.consumer import RunConsumer
from flowmesh_executor.control import CancelBook, RunControl
from flowmesh_executor.definitions import Definitions
from flowmesh_executor.metrics import ExecutorMetrics
from flowmesh_executor.nodes.base import StepServices
from flowmesh_executor.nodes.http import http_session
from flowmesh_executor.nodes.registry import shell_steps
from flowmesh_executor.parts import ExecutorParts
from flowmesh_executor.pauses import PauseWatch, pause_threshold
from flowmesh_executor.settings import ENV_PREFIX, ExecutorSettings
from flowmesh_executor.waits import InProcessWaits
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.health import HealthServer, nats_connected, service_metrics_registry
from flowmesh_shared.jetstream import CONTROL_TTL, ensure_bucket, provision_streams
from flowmesh_shared.lifecycle import service_cli
from flowmesh_shared.natsconn import connect, drain, service_inbox
from flowmesh_shared.rpc import RpcClient
from flowmesh_shared.runlife_nats import NatsRunLifecycle, message_limit, reads_direct
from flowmesh_shared.turns import Turns

log = structlog.get_logger("flowmesh.executor")

SERVICE = "executor"
#: How long a cancel request waits in the run-control bucket for its run to be picked up.


class ExecutorApp(msgspec.Struct, kw_only=True):
    """The running executor's parts, for tests and the health endpoints."""

    settings: ExecutorSettings
    consumer: RunConsumer
    parts: ExecutorParts
    health_port: int


async def start_executor(settings: ExecutorSettings, stack: AsyncExitStack) -> ExecutorApp:
    """Open every resource into ``stack`` (closed in reverse) and start taking runs."""
    name = f"{socket.gethostname()}:{os.getpid()}"
    nc = await connect(
        settings.nats_url, name=f"flowmesh-executor-{name}", inbox_prefix=service_inbox("executor")
    )
    stack.push_async_callback(drain, nc, settings.shutdown_timeout)
    subjects = Subjects(settings.subject_prefix)
    streams = stream_names(settings.stream_prefix)
    js = nc.jetstream()
    await provision_streams(js, subjects, streams, settings.streams)
    control = await ensure_bucket(js, streams.run_control, CONTROL_TTL, settings.streams)
    slot_bucket = await ensure_bucket(js, streams.concurrency, timedelta(0), settings.streams)
    event_waits = await ensure_bucket(js, streams.event_waits, timedelta(0), settings.streams)
    life = NatsRunLifecycle(
        nc,
        js,
        subjects,
        streams,
        control,
        read_timeout=settings.rpc_timeout,
        max_message_bytes=message_limit(nc, settings.streams),
        direct=reads_direct(settings.streams),
    )
    control_plane = RunControl(life)

    http = http_session(settings)
    stack.push_async_callback(http.close)
    rpc = RpcClient(nc, subjects, timeout=settings.rpc_timeout)
    definitions = Definitions(rpc, settings.definition_cache_size)
    services = StepServices(
        nc=nc,
        js=js,
        subjects=subjects,
        streams=streams,
        settings=settings,
        http=http,
        waits=InProcessWaits(),
        children=ChildRuns(life, definitions),
        definitions=definitions,
        event_ids=EventIds(js, streams.idempotency, settings.streams),
        event_waits=event_waits,
        turns=Turns(settings.expression_budget),
    )
    metrics_registry = service_metrics_registry()
    parts = ExecutorParts(
        services=services,
        rpc=rpc,
        cancels=CancelBook(
            js, streams.run_control, lambda key, reason: consumer.cancel(key, reason)
        ),
        steps=shell_steps(),
        metrics=ExecutorMetrics(metrics_registry),
        name=name,
        slots=Slots(slot_bucket, control_plane.finished, control_plane.cancel, control_plane.wake),
        control=control_plane,
        pauses=PauseWatch(pause_threshold(settings.lease_seconds)),
        life=life,
    )
    consumer = RunConsumer(parts)
    await parts.cancels.start()
    stack.push_async_callback(parts.cancels.stop)
    await consumer.start()
    stack.push_async_callback(consumer.stop, settings.shutdown_timeout)

    health = HealthServer(settings.http_host, settings.http_port, registry=metrics_registry)
    health.add_check("nats", nats_connected(nc))
    port = await health.start()
    stack.push_async_callback(health.stop)
    log.info("executor.ready", health_port=port, name=name)
    return ExecutorApp(settings=settings, consumer=consumer, parts=parts, health_port=port)


def cli(argv: list[str] | None = None) -> int:
    return service_cli(SERVICE, ExecutorSettings, ENV_PREFIX, start_executor, argv)
