"""The gateway process: settings -> NATS (and its buckets) -> the HTTP API -> until stopped.

``python -m flowmesh_gateway`` serves the API on ``FLOWMESH_GATEWAY_HTTP_PORT`` (8080).
"""

from __future__ import annotations

from contextlib import AsyncExitStack
from datetime import timedelta

import msgspec
import structlog
from aiohttp import web
from nats.aio.client import Client
from prometheus_client import CollectorRegistry

from flowmesh_gateway.api import EVENTS, Limits
from flowmesh_gateway.app import init_app
from flowmesh_gateway.auth import Authenticator, JwtVerifier, KeyCache
from flowmesh_gateway.counters import KvCounters
from flowmesh_gateway.ingress import EventIngress, IngressMetrics
from flowmesh_gateway.quotas import Quotas
from flowmesh_gateway.ratelimit import RateLimiter, TenantLimits
from flowmesh_gateway.replays import Replays
from flowmesh_gateway.runs import Runs
from flowmesh_gateway.session_store import Sessions
from flowmesh_gateway.settings import ENV_PREFIX, GatewaySettings
from flowmesh_proto.ids import new_id
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared.health import Health, nats_connected, service_metrics_registry
from flowmesh_shared.jetstream import ensure_bucket
from flowmesh_shared.lifecycle import service_cli
from flowmesh_shared.natsconn import connect, drain, service_inbox
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.gateway")

SERVICE = "gateway"


class GatewayApp(msgspec.Struct, kw_only=True):
    settings: GatewaySettings
    port: int
    app: web.Application


#: How long an untouched key of the quotas bucket lives (every value in it is renewed far
#: more often while it matters: buckets refill in seconds, holds are leased).
QUOTAS_TTL = timedelta(hours=1)


def limits_of(settings: GatewaySettings, shared: Quotas | None = None) -> Limits:
    return Limits(
        tenant=RateLimiter(settings.tenant_rate, settings.tenant_burst),
        key=RateLimiter(settings.key_rate, settings.key_burst),
        auth_failures=RateLimiter(settings.auth_failure_rate, settings.auth_failure_burst),
        sign_ins=RateLimiter(settings.console_sign_in_rate, settings.console_sign_in_burst),
        tenant_overrides=TenantLimits(settings.tenant_limit_cache_seconds),
        shared=shared,
    )


async def open_quotas(
    nc: Client, settings: GatewaySettings, metrics: CollectorRegistry, stack: AsyncExitStack
) -> Quotas:
    """The replicas' shared quotas in the ``<prefix>_QUOTAS`` bucket, renewed until closed."""
    bucket = stream_names(settings.stream_prefix).quotas
    js = nc.jetstream(timeout=settings.rpc_timeout)
    await ensure_bucket(js, bucket, QUOTAS_TTL, settings.streams)
    quick = nc.jetstream(timeout=settings.quota_store_timeout_seconds)
    counters = KvCounters(await quick.key_value(bucket))
    quotas = Quotas(counters, settings, metrics, replica=new_id().hex)
    quotas.start()
    stack.push_async_callback(quotas.close)
    return quotas


async def start_gateway(settings: GatewaySettings, stack: AsyncExitStack) -> GatewayApp:
    """Open every resource into ``stack`` (closed in reverse) and start serving HTTP."""
    nc = await connect(
        settings.nats_url, name="flowmesh-gateway", inbox_prefix=service_inbox("gateway")
    )
    stack.push_async_callback(drain, nc, settings.shutdown_timeout)
    registry = RpcClient(nc, Subjects(settings.subject_prefix), timeout=settings.rpc_timeout)
    runs = await Runs.open(nc, settings)
    replays = await Replays.open(nc, settings)
    jwts = JwtVerifier.from_files(
        settings.jwt_public_key_files,
        hs256_secret=settings.jwt_hs256_secret,
        audience=settings.jwt_audience,
        issuer=settings.jwt_issuer,
        leeway=settings.jwt_leeway_seconds,
    )
    auth = Authenticator(registry, jwts, KeyCache(settings.key_cache_seconds), settings.admin_token)
    health = Health()
    health.add_check("nats", nats_connected(nc))
    metrics = service_metrics_registry()
    quotas = await open_quotas(nc, settings, metrics, stack)
    sessions = await Sessions.open(nc, settings)
    app = init_app(
        settings,
        registry,
        runs,
        auth,
        limits_of(settings, quotas),
        health,
        metrics,
        replays=replays,
        quotas=quotas,
        sessions=sessions,
    )
    ingress = EventIngress(
        nc,
        Subjects(settings.subject_prefix),
        app[EVENTS],
        IngressMetrics(metrics),
        max_bytes=settings.max_body_bytes,
        max_in_flight=settings.ingress_max_in_flight,
        tenant_max_in_flight=settings.ingress_tenant_max_in_flight,
    )
    await ingress.start()
    stack.push_async_callback(ingress.stop, settings.shutdown_timeout)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=settings.shutdown_timeout)
    await runner.setup()
    site = web.TCPSite(runner, settings.http_host, settings.http_port)
    await site.start()
    stack.push_async_callback(runner.cleanup)
    port = int(runner.addresses[0][1])
    log.info("gateway.ready", url=f"http://{settings.http_host}:{port}")
    return GatewayApp(settings=settings, port=port, app=app)


def cli(argv: list[str] | None = None) -> int:
    return service_cli(SERVICE, GatewaySettings, ENV_PREFIX, start_gateway, argv)
