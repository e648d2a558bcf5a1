"""The registry process: settings -> migrations -> pool, NATS, relay, health, projection,
retention, RPC -> until stopped.

``python -m flowmesh_registry`` serves; ``python -m flowmesh_registry migrate`` applies the
migrations and exits.
"""

from __future__ import annotations

import asyncio
import sys
from contextlib import AsyncExitStack

import msgspec
import structlog

from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_registry.actions import ActionOperations
from flowmesh_registry.connectors import ConnectorOperations
from flowmesh_registry.db import Database, runtime_dsn
from flowmesh_registry.handlers import RegistryHandlers
from flowmesh_registry.history import RunHistory
from flowmesh_registry.keys import KeyOperations
from flowmesh_registry.locks import LockOperations
from flowmesh_registry.migrate import migrate
from flowmesh_registry.outbox import OutboxRelay
from flowmesh_registry.projection import Projection, ProjectionMetrics
from flowmesh_registry.retention import RunRetention
from flowmesh_registry.secrets import SecretOperations
from flowmesh_registry.settings import ENV_PREFIX, RegistrySettings
from flowmesh_registry.webhooks import WebhookSecretOperations
from flowmesh_registry.workflows import WorkflowOperations
from flowmesh_shared.health import (
    HealthServer,
    RpcMetrics,
    nats_connected,
    service_metrics_registry,
)
from flowmesh_shared.jetstream import provision_streams
from flowmesh_shared.lifecycle import serve
from flowmesh_shared.logging import configure_logging
from flowmesh_shared.natsconn import connect, drain, service_inbox
from flowmesh_shared.rpc import RpcService
from flowmesh_shared.settings import SettingsError, load_settings

log = structlog.get_logger("flowmesh.registry")

SERVICE = "registry"


class RegistryApp(msgspec.Struct, kw_only=True):
    """The running registry's parts, for tests and for the health endpoints."""

    settings: RegistrySettings
    db: Database
    relay: OutboxRelay
    rpc: RpcService
    health_port: int
    projection: Projection | None
    retention: RunRetention


def runtime_url(settings: RegistrySettings) -> str:
    return settings.runtime_database_url or runtime_dsn(
        settings.database_url, settings.runtime_role
    )


async def start_registry(settings: RegistrySettings, stack: AsyncExitStack) -> RegistryApp:
    """Open every resource into ``stack`` (closed in reverse) and start serving."""
    if settings.migrate_on_start:
        applied = await migrate(
            settings.database_url, settings.runtime_role, settings.runtime_password or None
        )
        log.info("registry.migrated", applied=applied)
    dsn = runtime_url(settings)
    db = await Database.connect(
        dsn, min_size=settings.pool_min_size, max_size=settings.pool_max_size
    )
    stack.push_async_callback(db.close)

    nc = await connect(
        settings.nats_url, name="flowmesh-registry", inbox_prefix=service_inbox("registry")
    )
    stack.push_async_callback(drain, nc, settings.shutdown_timeout)
    subjects = Subjects(settings.subject_prefix)
    js = nc.jetstream()
    await provision_streams(js, subjects, stream_names(settings.stream_prefix), settings.streams)

    relay = OutboxRelay(
        db, js, subjects, listen_dsn=dsn, poll_interval=settings.outbox_poll_interval
    )
    await relay.start()
    stack.push_async_callback(relay.stop)

    metrics = service_metrics_registry()
    health = HealthServer(settings.http_host, settings.http_port, registry=metrics)
    health.add_check("nats", nats_connected(nc))
    health.add_check("postgres", db.ping)

    projection = None
    if settings.projection_enabled:
        projection = Projection(
            db,
            nc,
            subjects,
            stream_names(settings.stream_prefix).run_events,
            consumer=settings.projection_consumer,
            batch_size=settings.projection_batch_size,
            max_buffered=settings.projection_max_buffered,
            ack_wait=settings.projection_ack_wait,
            default_retention_days=settings.run_retention_days,
            metrics=ProjectionMetrics(metrics),
        )
        await projection.start()
        stack.push_async_callback(projection.stop, settings.shutdown_timeout)
        health.add_check("projection", lambda: projection is not None and projection.running)
    retention = RunRetention(
        db,
        default_days=settings.run_retention_days,
        batch_size=settings.retention_batch_size,
        interval=settings.retention_interval,
    )
    await retention.start()
    stack.push_async_callback(retention.stop)

    keyring = settings.secrets_keyring
    if keyring is None:
        log.warning("registry.secrets_unavailable", reason="no secrets key configured")
    webhooks = WebhookSecretOperations(db, keyring, settings.webhook_secret_grace)
    handlers = RegistryHandlers(
        WorkflowOperations(db, settings.limits, webhooks),
        LockOperations(db),
        KeyOperations(db),
        SecretOperations(db, keyring),
        RunHistory(db),
        webhooks,
        ConnectorOperations(db, settings.max_connectors),
        ActionOperations(
            db,
            max_actions=settings.max_actions,
            max_versions=settings.max_action_versions,
            max_bytes=settings.max_action_bytes,
            page_max_bytes=settings.action_page_max_bytes,
        ),
    )
    rpc = RpcService(
        nc,
        subjects,
        service=SERVICE,
        max_in_flight=settings.rpc_max_in_flight,
        metrics=RpcMetrics(metrics),
    )
    handlers.register(rpc)
    await rpc.start()
    stack.push_async_callback(rpc.stop, settings.shutdown_timeout)

    port = await health.start()
    stack.push_async_callback(health.stop)
    log.info("registry.ready", health_port=port, subject_prefix=settings.subject_prefix)
    return RegistryApp(
        settings=settings,
        db=db,
        relay=relay,
        rpc=rpc,
        health_port=port,
        projection=projection,
        retention=retention,
    )


def cli(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    try:
        settings = load_settings(RegistrySettings, ENV_PREFIX)
    except SettingsError as exc:
        print(f"flowmesh-registry: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if args[:1] == ["migrate"]:
        applied = asyncio.run(
            migrate(settings.database_url, settings.runtime_role, settings.runtime_password or None)
        )
        log.info("registry.migrated", applied=applied)
        return 0
    if args:
        print("usage: python -m flowmesh_registry [migrate]", file=sys.stderr)
        return 2

    async def start(stack: AsyncExitStack, stop: asyncio.Event) -> None:
        await start_registry(settings, stack)

    return serve(
        SERVICE,
        start,
        shutdown_timeout=settings.shutdown_timeout,
        otel_service_name=settings.otel_service_name,
    )
