"""``init_app``: the aiohttp application, its middlewares and its routes."""

from __future__ import annotations

import re
import time
from typing import Any

import msgspec
import structlog
from aiohttp import web
from opentelemetry.trace import SpanKind
from prometheus_client import CollectorRegistry, Counter, Histogram

from flowmesh_gateway.api import (
    CONSOLE_SESSIONS,
    EVENTS,
    INPUT_SCHEMAS,
    QUOTAS,
    REPLAYS,
    RUNS,
    SETTINGS,
    STREAMS,
    Guard,
    Limits,
    Route,
)
from flowmesh_gateway.auth import Authenticator
from flowmesh_gateway.console import Console
from flowmesh_gateway.events import EventPublisher
from flowmesh_gateway.inputs import InputSchemas
from flowmesh_gateway.openapi import build_document
from flowmesh_gateway.pages import add_console_pages
from flowmesh_gateway.problems import REQUEST_ID_KEY, Handler, problems_middleware
from flowmesh_gateway.quotas import Quotas
from flowmesh_gateway.replays import Replays
from flowmesh_gateway.routes import ROUTES
from flowmesh_gateway.runs import Runs
from flowmesh_gateway.session_store import Sessions
from flowmesh_gateway.settings import GatewaySettings
from flowmesh_gateway.streams import LiveStreams
from flowmesh_proto.ids import new_id
from flowmesh_shared import telemetry
from flowmesh_shared.health import LATENCY_BUCKETS, Health, add_health_routes
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.gateway.access")

_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


class HttpMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.duration = Histogram(
            "flowmesh_http_request_duration_seconds",
            "HTTP requests by route and status",
            ["method", "route", "status"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.rate_limited = Counter(
            "flowmesh_http_rate_limited",
            "Requests refused by a rate limit",
            registry=registry,
        )


def request_id_of(request: web.Request) -> str:
    return str(request.get(REQUEST_ID_KEY, ""))


def _observe(metrics: HttpMetrics) -> Any:
    @web.middleware
    async def observe(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("X-Request-Id", "")
        rid = given if _REQUEST_ID.fullmatch(given) else str(new_id())
        request[REQUEST_ID_KEY] = rid
        route = request.match_info.route.resource
        template = route.canonical if route is not None else "unmatched"
        began = time.perf_counter()
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=rid)
        with telemetry.consumer_span(
            f"{request.method} {template}",
            request.headers,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": request.method, "http.route": template},
        ):
            response = await handler(request)
        response.headers["X-Request-Id"] = rid
        # Every answer is what its Content-Type says, never sniffed: an API answer that
        # quotes what a caller wrote (a 404's path, a workflow's YAML) is never read as a page.
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        seconds = time.perf_counter() - began
        metrics.duration.labels(request.method, template, str(response.status)).observe(seconds)
        if response.status == 429:
            metrics.rate_limited.inc()
        log.info(
            "http.request",
            method=request.method,
            route=template,
            status=response.status,
            ms=round(seconds * 1000, 2),
        )
        return response

    return observe


def init_app(
    settings: GatewaySettings,
    registry: RpcClient,
    runs: Runs,
    auth: Authenticator,
    limits: Limits,
    health: Health,
    metrics_registry: CollectorRegistry,
    routes: list[Route] | None = None,
    *,
    replays: Replays,
    quotas: Quotas,
    sessions: Sessions,
) -> web.Application:
    app = web.Application(
        middlewares=[_observe(HttpMetrics(metrics_registry)), problems_middleware],
        client_max_size=settings.max_execute_body_bytes + 1,
    )
    app[SETTINGS] = settings
    app[RUNS] = runs
    app[REPLAYS] = replays
    app[QUOTAS] = quotas
    app[EVENTS] = EventPublisher.of(registry.nc, settings)
    app[INPUT_SCHEMAS] = InputSchemas(settings.input_schema_cache_size)
    app[STREAMS] = LiveStreams(registry.nc, settings, metrics_registry)
    app.on_shutdown.append(app[STREAMS].close_all)  # streams end before NATS is drained
    add_health_routes(app, health, metrics_registry)
    console = Console(
        sessions,
        auth,
        registry,
        sign_ins=limits.sign_ins,
        auth_failures=limits.auth_failures,
        trust_forwarded=settings.trust_forwarded_for,
    )
    app[CONSOLE_SESSIONS] = console
    guard = Guard(auth, registry, limits, console)
    for route in routes if routes is not None else ROUTES:
        app.router.add_route(route.method, route.path, guard.wrap(route, request_id_of))
    document = msgspec.json.encode(build_document(routes if routes is not None else ROUTES))

    async def openapi(_: web.Request) -> web.Response:
        return web.Response(body=document, content_type="application/json")

    app.router.add_get("/openapi.json", openapi)
    add_console_pages(app)
    return app
