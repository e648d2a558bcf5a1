"""Health and metrics over HTTP, for every service: ``/healthz``, ``/readyz``, ``/metrics``.

- ``GET /healthz``: 200 while the process runs (liveness).
- ``GET /readyz``: 200 when every readiness check passes, else 503 naming the failures as
  JSON; also 503 once the service is draining (it is stopping and takes no new work).
- ``GET /metrics``: the Prometheus text format of the registry given.

A readiness check is a function returning a bool (or an awaitable of one); raising, timing
out or returning False fails it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any

import prometheus_client
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

ReadinessCheck = Callable[[], "Awaitable[bool] | bool"]

#: Seconds: RPCs take from tenths of a millisecond to seconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Health:
    """The readiness checks of a service, and whether it is draining."""

    def __init__(self, check_timeout: float = 2.0) -> None:
        self.checks: dict[str, ReadinessCheck] = {}
        self.check_timeout = check_timeout
        self.draining = False

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.checks[name] = check

    async def readiness(self) -> tuple[bool, dict[str, str]]:
        """Run every check concurrently: (all passed, ``{name: "ok" | why it failed}``)."""
        names = list(self.checks)
        results = await asyncio.gather(*(self._run(self.checks[name]) for name in names))
        report = dict(zip(names, results, strict=True))
        if self.draining:
            report["draining"] = "the service is stopping"
        return all(result == "ok" for result in report.values()), report

    async def _run(self, check: ReadinessCheck) -> str:
        try:
            async with asyncio.timeout(self.check_timeout):
                outcome = check()
                if inspect.isawaitable(outcome):
                    outcome = await outcome
        except TimeoutError:
            return f"timed out after {self.check_timeout:g} s"
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return "ok" if outcome else "failed"


HEALTH = web.AppKey("health", Health)
METRICS = web.AppKey("metrics", CollectorRegistry)


def create_health_app(health: Health, registry: CollectorRegistry) -> web.Application:
    app = web.Application()
    add_health_routes(app, health, registry)
    return app


def add_health_routes(app: web.Application, health: Health, registry: CollectorRegistry) -> None:
    """Serve ``/healthz``, ``/readyz`` and ``/metrics`` from ``app`` (a service's own API too)."""
    app[HEALTH] = health
    app[METRICS] = registry
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    ready, report = await request.app[HEALTH].readiness()
    body = {"status": "ready" if ready else "not ready", "checks": report}
    return web.json_response(body, status=200 if ready else 503)


async def metrics(request: web.Request) -> web.Response:
    text = generate_latest(request.app[METRICS])
    return web.Response(body=text, headers={"Content-Type": CONTENT_TYPE_LATEST})


class HealthServer:
    """Serves the health app on ``host:port`` (port 0 picks a free one).

    ``registry`` defaults to prometheus_client's default registry (process metrics included).
    Open it before the intake (RPC service, consumers) so that it closes after them, and
    set ``health.draining = True`` when the stop begins: /readyz then answers 503 while
    in-flight work finishes.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        registry: CollectorRegistry | None = None,
        health: Health | None = None,
    ) -> None:
        self.health = health if health is not None else Health()
        self.registry = registry if registry is not None else prometheus_client.REGISTRY
        self.host, self.port = host, port
        self._runner: web.AppRunner | None = None

    def add_check(self, name: str, check: ReadinessCheck) -> None:
        self.health.add_check(name, check)

    async def start(self) -> int:
        """Start serving; returns the port bound."""
        runner = web.AppRunner(create_health_app(self.health, self.registry), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, self.host, self.port)
        try:
            await site.start()
        except OSError:
            await runner.cleanup()
            raise
        self._runner = runner
        address: Any = runner.addresses[0]
        self.port = int(address[1])
        return self.port

    async def stop(self) -> None:
        self.health.draining = True
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def service_metrics_registry() -> CollectorRegistry:
    """A registry of one service's metrics, with the process and platform collectors.

    One per service instance, so two instances in one process (tests) never collide.
    """
    registry = CollectorRegistry()
    prometheus_client.ProcessCollector(registry=registry)
    prometheus_client.PlatformCollector(registry=registry)
    return registry


def nats_connected(nc: Any) -> ReadinessCheck:
    """A readiness check: the NATS connection is up (not reconnecting, not closed)."""
    return lambda: bool(nc.is_connected)


class RpcMetrics:
    """Request count and duration by service, operation and outcome (ok, error, failed)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "flowmesh_rpc_requests",
            "RPC requests served, by outcome (error: 4xx reply; failed: 5xx reply)",
            ["service", "operation", "outcome"],
            registry=registry,
        )
        self.duration = Histogram(
            "flowmesh_rpc_request_duration_seconds",
            "Time to serve an RPC request",
            ["service", "operation"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    def observe(self, service: str, operation: str, outcome: str, seconds: float) -> None:
        self.requests.labels(service, operation, outcome).inc()
        self.duration.labels(service, operation).observe(seconds)
