"""/healthz, /readyz and /metrics over real HTTP."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import NamedTuple

import aiohttp
import pytest
import pytest_asyncio
from nats.aio.client import Client
from prometheus_client import CollectorRegistry, Counter

from flowmesh_shared.health import Health, HealthServer, nats_connected

pytestmark = pytest.mark.integration


class Switch:
    def __init__(self) -> None:
        self.on = True

    def __call__(self) -> bool:
        return self.on


@pytest_asyncio.fixture(loop_scope="session")
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


class Served(NamedTuple):
    health: HealthServer
    switch: Switch
    counter: Counter


@pytest_asyncio.fixture(loop_scope="session")
async def server(nc: Client) -> AsyncIterator[Served]:
    registry = CollectorRegistry()
    served = Counter("test_things", "Things done", registry=registry)
    switch = Switch()
    server = HealthServer("127.0.0.1", 0, registry=registry, health=Health(check_timeout=0.2))
    server.add_check("nats", nats_connected(nc))
    server.add_check("switch", switch)
    port = await server.start()
    assert port > 0
    assert server.port == port
    try:
        yield Served(server, switch, served)
    finally:
        await server.stop()


async def test_healthz_answers_while_running(http: aiohttp.ClientSession, server: Served) -> None:
    async with http.get(f"{server.health.url}/healthz") as response:
        assert response.status == 200
        assert await response.json() == {"status": "ok"}


async def test_readyz_reports_each_check(http: aiohttp.ClientSession, server: Served) -> None:
    health, switch, _ = server
    async with http.get(f"{health.url}/readyz") as response:
        assert response.status == 200
        assert (await response.json())["checks"] == {"nats": "ok", "switch": "ok"}
    switch.on = False
    async with http.get(f"{health.url}/readyz") as response:
        assert response.status == 503
        body = await response.json()
    assert body["status"] == "not ready"
    assert body["checks"] == {"nats": "ok", "switch": "failed"}


async def test_a_raising_or_hanging_check_fails_readiness(
    http: aiohttp.ClientSession, server: Served
) -> None:
    health = server.health

    def broken() -> bool:
        raise ConnectionError("pool closed")

    async def hanging() -> bool:
        await asyncio.Event().wait()
        return True

    health.add_check("broken", broken)
    health.add_check("hanging", hanging)
    async with http.get(f"{health.url}/readyz") as response:
        assert response.status == 503
        checks = (await response.json())["checks"]
    assert checks["broken"] == "ConnectionError: pool closed"
    assert checks["hanging"].startswith("timed out")


async def test_draining_is_not_ready(http: aiohttp.ClientSession, server: Served) -> None:
    health = server.health
    health.health.draining = True
    async with http.get(f"{health.url}/readyz") as response:
        assert response.status == 503
        assert "draining" in (await response.json())["checks"]


async def test_metrics_are_the_prometheus_text_of_the_registry(
    http: aiohttp.ClientSession, server: Served
) -> None:
    health, _, counter = server
    counter.inc(3)
    async with http.get(f"{health.url}/metrics") as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        text = await response.text()
    assert "test_things_total 3.0" in text
