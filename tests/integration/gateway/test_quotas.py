"""Quotas against a hostile tenant (DESIGN section 12), on real NATS and PostgreSQL: concurrent
streams and ``?wait`` holds per credential and tenant, queued runs per tenant, and rate
limits that hold across gateway replicas (two gateways in this process, one NATS)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import aiohttp
import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.js.errors import KeyNotFoundError

from flowmesh_gateway import holds
from flowmesh_gateway.api import QUOTAS
from flowmesh_gateway.counters import MemoryCounters
from flowmesh_gateway.main import GatewayApp
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.subjects import stream_names
from flowmesh_registry.settings import RegistrySettings
from tests.helpers import until
from tests.integration.harness import Registry, new_tenant

from .conftest import (
    ADMIN_TOKEN,
    Client,
    Http,
    Isolated,
    Keys,
    gateway_settings,
    isolated_stack,
    started,
)
from .sse_client import ExecutorDouble, SseReader, run_base, script, sse

pytestmark = pytest.mark.integration

SMALL = {
    "credential_max_holds": 2,
    "tenant_max_holds": 3,
    "tenant_limit_cache_seconds": 0.05,
    "sse_heartbeat_seconds": 0.2,  # a client that left is noticed at the next write
}


class Gateways(msgspec.Struct, frozen=True, kw_only=True):
    """Two gateway replicas over one registry and one NATS."""

    a: GatewayApp
    b: GatewayApp
    http_a: Http
    http_b: Http
    session: aiohttp.ClientSession
    prefix: str

    def url(self, gateway: GatewayApp, path: str) -> str:
        return f"http://127.0.0.1:{gateway.port}{path}"


async def two_gateways(
    registry: Registry, jwt_keys: tuple[Keys, list[str]], stack: AsyncExitStack, **settings: Any
) -> Gateways:
    keys, files = jwt_keys
    values = gateway_settings(registry, files, **settings)
    a, b = await started(values, stack), await started(values, stack)
    session = await stack.enter_async_context(
        aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    )
    return Gateways(
        a=a,
        b=b,
        http_a=Http(session, f"http://127.0.0.1:{a.port}", keys),
        http_b=Http(session, f"http://127.0.0.1:{b.port}", keys),
        session=session,
        prefix=registry.settings.stream_prefix,
    )


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def pair(registry: Registry, jwt_keys: tuple[Keys, list[str]]) -> AsyncIterator[Gateways]:
    async with AsyncExitStack() as stack:
        yield await two_gateways(registry, jwt_keys, stack, **SMALL)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def idle(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> AsyncIterator[tuple[Isolated, GatewayApp]]:
    """A registry no executor serves (runs stay queued) and a gateway with small quotas."""
    async with isolated_stack(registry_settings, jwt_keys, nc) as own, AsyncExitStack() as stack:
        settings = gateway_settings(
            own.registry,
            jwt_keys[1],
            tenant_max_queued_runs=3,
            credential_max_holds=1,
            tenant_limit_cache_seconds=0.05,
        )
        gateway = await started(settings, stack)
        yield own, gateway


async def shared_holds(nc: Nats, prefix: str, tenant: str) -> int:
    kv = await nc.jetstream().key_value(stream_names(prefix).quotas)
    try:
        entry = await kv.get(f"holds.{tenant}")
    except KeyNotFoundError:
        return 0
    return holds.total(holds.live(holds.decode(entry.value), time.time(), 30.0))


async def open_stream(
    stack: AsyncExitStack, session: aiohttp.ClientSession, url: str, key: str
) -> SseReader:
    stream = await stack.enter_async_context(sse(session, url, key))
    assert stream.response.status == 200, await stream.response.text()
    await until(lambda: stream.response.content.total_bytes > 0, timeout=3)
    return stream


async def refused(session: aiohttp.ClientSession, url: str, key: str, why: str) -> None:
    async with session.get(url, headers={"Authorization": f"Bearer {key}"}) as resp:
        assert resp.status == 429, await resp.text()
        assert resp.content_type == "application/problem+json"
        assert int(resp.headers["Retry-After"]) >= 1
        body = await resp.json(content_type=None)
        assert body["code"] == "RATE_LIMITED" and why in body["detail"], body


async def test_streams_are_limited_per_credential_and_tenant_across_gateways_and_freed(
    pair: Gateways, registry: Registry, nc: Nats
) -> None:
    client = Client(pair.http_a, await new_tenant(registry, "q"))
    tenant, viewer, other = client.tenant.id, await client.key("viewer"), await client.key("viewer")
    stream_path = f"/api/v1/{tenant}/events/stream"
    async with AsyncExitStack() as streams:
        first = await open_stream(streams, pair.session, pair.url(pair.a, stream_path), viewer)
        await open_stream(streams, pair.session, pair.url(pair.b, stream_path), viewer)
        for gateway in (pair.a, pair.b):  # the third of one credential, on either replica
            await refused(pair.session, pair.url(gateway, stream_path), viewer, "credential")
        await open_stream(streams, pair.session, pair.url(pair.b, stream_path), other)
        await refused(pair.session, pair.url(pair.a, stream_path), other, "tenant")
        assert await shared_holds(nc, pair.prefix, tenant) == 3
        first.response.close()  # a client that leaves frees its hold
        await until(lambda: pair.a.app[QUOTAS].holding(tenant) == 0, timeout=5)
        await open_stream(streams, pair.session, pair.url(pair.a, stream_path), other)
    for gateway in (pair.a, pair.b):
        await until(lambda g=gateway: g.app[QUOTAS].holding(tenant) == 0, timeout=5)
    await until(lambda: _is(shared_holds(nc, pair.prefix, tenant), 0), timeout=5)


async def test_a_just_executed_runs_stream_works_at_once_and_its_hold_ends_with_it(
    idle: tuple[Isolated, GatewayApp], jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> None:
    # The registry no executor serves: the test plays the executor (the session's
    # executor, once started, would run the run and end its stream before it is looked at).
    own, _ = idle
    async with AsyncExitStack() as stack:
        pair = await two_gateways(own.registry, jwt_keys, stack, **SMALL)
        client = Client(pair.http_a, await new_tenant(own.registry, "q"))
        workflow = await client.create("held")
        status, body, _ = await client("POST", f"/workflows/{workflow['id']}/execute")
        assert status == 202, body
        run_id = body["run_id"]
        url = pair.url(pair.b, f"{client.prefix}/runs/{run_id}/events")  # the other replica
        async with sse(pair.session, url, client.tenant.admin_key) as stream:
            assert stream.response.status == 200
            first = await asyncio.wait_for(stream.next(), 3)
            assert first is not None and first.kind == "run.queued"
            assert pair.b.app[QUOTAS].holding(client.tenant.id) == 1
            double = ExecutorDouble(nc, own.subjects, own.streams)
            double._last[own.subjects.run_events(client.tenant.id, run_id)] = first.id
            await double.publish_all(script(run_base(client.tenant.id, workflow["id"], run_id))[1:])
            assert [e.kind for e in await stream.rest(timeout=5)][-1] == "run.succeeded"
        await until(lambda: pair.b.app[QUOTAS].holding(client.tenant.id) == 0, timeout=5)
        await until(lambda: _is(shared_holds(nc, pair.prefix, client.tenant.id), 0), timeout=5)
        for run in (str(new_run_id()), run_id.replace("-", "")[:8]):  # unknown, not an id
            began = time.monotonic()
            status, body, _ = await client("GET", f"/runs/{run}/events")
            assert (status, body["code"]) == (404, "NOT_FOUND") and time.monotonic() - began < 1
        other = Client(pair.http_b, await new_tenant(own.registry, "q"))
        status, body, _ = await other("GET", f"/runs/{run_id}/events")  # a foreign run
        assert (status, body["code"]) == (404, "NOT_FOUND")


async def test_wait_holds_are_counted_and_refused_waits_start_nothing(
    idle: tuple[Isolated, GatewayApp], nc: Nats
) -> None:
    own, gateway = idle
    http = Http(own.http.session, f"http://127.0.0.1:{gateway.port}", own.http.keys)
    client = Client(http, await new_tenant(own.registry, "w"))
    workflow = await client.create("waits")
    operator = await client.key("operator")
    execute = f"/workflows/{workflow['id']}/execute?wait=PT2S"
    waiting = asyncio.create_task(client("POST", execute, token=operator))
    await until(lambda: gateway.app[QUOTAS].holding(client.tenant.id) == 1, timeout=3)
    status, body, headers = await client("POST", execute, token=operator)
    assert (status, body["code"]) == (429, "RATE_LIMITED") and int(headers["Retry-After"]) >= 1
    path = f"{client.prefix}/events/stream"
    async with sse(own.http.session, http.url(path), operator) as stream:
        assert stream.response.status == 429  # a stream and a wait share the credential's holds
    status, body, _ = await waiting
    assert status == 202, body  # no executor: the run did not finish within the wait
    status, page, _ = await client("GET", "/runs")
    assert [run["id"] for run in page["items"]] in ([], [body["run_id"]])  # not the refused one
    assert gateway.app[QUOTAS].holding(client.tenant.id) == 0
    await _drain_queue(nc, own, client.tenant.id)


async def test_queued_runs_past_the_tenants_limit_are_429_and_nothing_is_lost(
    idle: tuple[Isolated, GatewayApp], nc: Nats
) -> None:
    own, gateway = idle
    http = Http(own.http.session, f"http://127.0.0.1:{gateway.port}", own.http.keys)
    client = Client(http, await new_tenant(own.registry, "u"))
    workflow = await client.create("queue")
    execute = f"/workflows/{workflow['id']}/execute"
    accepted = []
    for _ in range(3):
        status, body, _ = await client("POST", execute, json={"input": {}})
        assert status == 202, body
        accepted.append(body["run_id"])
    keyed = {"input": {}, "idempotency_key": "k-1"}
    for body_sent in (keyed, {"input": {}, "delay": "PT1H"}):
        status, body, headers = await client("POST", execute, json=body_sent)
        assert (status, body["code"]) == (429, "RATE_LIMITED"), body
        assert int(headers["Retry-After"]) >= 1 and "queued" in body["detail"]
    js = nc.jetstream()
    requests = await js.stream_info(
        own.streams.run_requests, subjects_filter=own.subjects.run_requests(client.tenant.id)
    )
    assert sum((requests.state.subjects or {}).values()) == 3
    runs = await js.stream_info(
        own.streams.run_events, subjects_filter=f"{own.subjects.prefix}.{client.tenant.id}.runs.*"
    )
    assert sorted(s.rsplit(".", 1)[1] for s in runs.state.subjects or {}) == sorted(accepted)
    # The platform admin raises the tenant's limit: the refused key was given back, unused.
    tenant_path = f"/api/v1/admin/tenants/{client.tenant.id}"
    for bad in (-1, "5", 100_000_001, 2.5):
        status, body, _ = await http.request(
            "PATCH", tenant_path, token=ADMIN_TOKEN, json={"max_queued_runs": bad}
        )
        assert (status, body["code"]) == (422, "VALIDATION_FAILED"), bad
    status, body, _ = await http.request(
        "PATCH", tenant_path, token=ADMIN_TOKEN, json={"max_queued_runs": 5, "max_holds": 9}
    )
    assert (status, body["max_queued_runs"], body["max_holds"]) == (200, 5, 9)
    await asyncio.sleep(0.1)  # the gateway's cache of tenant limits (0.05 s here)
    status, body, _ = await client("POST", execute, json=keyed)
    assert status == 202 and body["run_id"] not in accepted
    status, again, _ = await client("POST", execute, json=keyed)
    assert (status, again["run_id"]) == (202, body["run_id"])  # the same run, not a new one
    status, body, _ = await client("POST", execute, json={"input": {}, "delay": "PT1H"})
    assert status == 202  # 5 now: four requests and one delayed run's timer
    status, body, _ = await client("POST", execute, json={"input": {}})
    assert status == 429
    status, body, _ = await http.request(
        "PATCH", tenant_path, token=ADMIN_TOKEN, json={"max_queued_runs": None}
    )
    assert status == 200 and body.get("max_queued_runs") is None
    await _drain_queue(nc, own, client.tenant.id)


async def test_two_gateways_enforce_one_tenants_rate_limit_together(
    pair: Gateways, registry: Registry
) -> None:
    client = Client(pair.http_a, await new_tenant(registry, "r"))
    status, _, _ = await pair.http_a.request(
        "PATCH",
        f"/api/v1/admin/tenants/{client.tenant.id}",
        token=ADMIN_TOKEN,
        json={"rate_limit": {"rate": 0.01, "burst": 10}},
    )
    assert status == 200
    await asyncio.sleep(0.1)  # the tenant limits the gateways cached
    statuses = []
    for i in range(24):
        http = pair.http_a if i % 2 else pair.http_b
        status, body, headers = await http.request(
            "GET", f"{client.prefix}/workflows", token=client.tenant.admin_key
        )
        statuses.append(status)
        if status == 429:
            assert body["code"] == "RATE_LIMITED" and int(headers["Retry-After"]) > 1
    assert statuses == [200] * 10 + [429] * 14  # not 2 x 10


async def test_a_credentials_rate_is_shared_by_the_replicas(
    registry: Registry, jwt_keys: tuple[Keys, list[str]]
) -> None:
    async with AsyncExitStack() as stack:
        pair = await two_gateways(registry, jwt_keys, stack, key_rate=0.01, key_burst=6)
        client = Client(pair.http_a, await new_tenant(registry, "r"))
        token = client.tenant.admin_key
        statuses = [
            (await http.request("GET", f"{client.prefix}/workflows", token=token))[0]
            for http in [pair.http_a, pair.http_b] * 6
        ]
        assert statuses.count(200) == 6 and statuses[6:] == [429] * 6


async def test_a_dead_gateways_holds_lapse_after_its_lease(
    registry: Registry, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> None:
    async with AsyncExitStack() as stack:
        pair = await two_gateways(
            registry, jwt_keys, stack, credential_max_holds=1, hold_lease_seconds=1.5
        )
        client = Client(pair.http_a, await new_tenant(registry, "d"))
        path = f"{client.prefix}/events/stream"
        key = client.tenant.admin_key
        async with AsyncExitStack() as streams:
            await open_stream(streams, pair.session, pair.url(pair.a, path), key)
            await refused(pair.session, pair.url(pair.b, path), key, "credential")
            # Replica a "dies": it never tells the store again (its heartbeat stops too).
            dead = pair.a.app[QUOTAS]
            dead.counters = MemoryCounters()
            assert dead._heartbeat is not None
            dead._heartbeat.cancel()
            began = time.monotonic()
            await until(lambda: _opens(pair, pair.b, path, key), timeout=5, interval=0.1)
            assert 0.5 < time.monotonic() - began < 3.5


async def test_with_the_store_gone_limits_fall_back_to_each_gateways_own(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> None:
    async with isolated_stack(registry_settings, jwt_keys, nc) as own, AsyncExitStack() as stack:
        settings = gateway_settings(
            own.registry, jwt_keys[1], key_rate=0.01, key_burst=3, credential_max_holds=1
        )
        gateway = await started(settings, stack)
        http = Http(own.http.session, f"http://127.0.0.1:{gateway.port}", own.http.keys)
        client = Client(http, await new_tenant(own.registry, "s"))
        viewer = await client.key("viewer")
        await nc.jetstream().delete_key_value(own.streams.quotas)  # the store is unreachable
        statuses = [(await client("GET", "/workflows"))[0] for _ in range(5)]
        assert statuses == [200, 200, 200, 429, 429]  # never unlimited, never refused by it
        url = http.url(f"{client.prefix}/events/stream")
        async with AsyncExitStack() as streams:
            await open_stream(streams, own.http.session, url, viewer)
            await refused(own.http.session, url, viewer, "credential")
        assert gateway.app[QUOTAS].metrics.store_unavailable._value.get() >= 5


async def _opens(pair: Gateways, gateway: GatewayApp, path: str, key: str) -> bool:
    async with pair.session.get(
        pair.url(gateway, path), headers={"Authorization": f"Bearer {key}"}
    ) as resp:
        return resp.status == 200


async def _is(value: Any, expected: int) -> bool:
    return bool(await value == expected)


async def _drain_queue(nc: Nats, own: Isolated, tenant: str) -> None:
    """Nothing of this module's queued runs is left for the next test of the module."""
    js = nc.jetstream()
    await js.purge_stream(own.streams.run_requests, subject=own.subjects.run_requests(tenant))
    await js.purge_stream(own.streams.timers, subject=own.subjects.timers(tenant, "delayed_run"))
