"""Fair share (DESIGN section 13) at the gateway, on real NATS and PostgreSQL: a tenant's
``weight`` and ``max_running`` (platform admin PATCH), its queued and running runs (the
admin GET), and why a queued run waits (``GET /runs/{id}`` and its SSE stream).

The executors' per-tenant run-request consumer is made by hand here, with the shape the
executors give it (durable ``runs-<t>``, the tenant's request subject, explicit acks), on
streams no executor of the session serves (:func:`isolated`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from flowmesh_proto.registry import MAX_TENANT_RUNNING, MAX_TENANT_WEIGHT
from flowmesh_proto.subjects import run_request_consumer
from flowmesh_registry.settings import RegistrySettings
from tests.integration.harness import new_tenant

from .conftest import ADMIN_TOKEN, Client, Http, Isolated, Keys, isolated_stack

pytestmark = pytest.mark.integration


async def test_weight_and_max_running_are_set_read_back_and_reset(
    http: Http, client: Client
) -> None:
    path = f"/api/v1/admin/tenants/{client.tenant.id}"

    async def patch(body: Any, token: str = ADMIN_TOKEN) -> tuple[int, Any]:
        status, answer, _ = await http.request("PATCH", path, token=token, json=body)
        return status, answer

    status, body = await patch({"weight": 5, "max_running": 2})
    assert (status, body["weight"], body["max_running"]) == (200, 5, 2)
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert (status, body["weight"], body["max_running"]) == (200, 5, 2)
    status, body = await patch({"weight": None})
    assert (status, body["weight"], body["max_running"]) == (200, None, 2)
    status, body = await patch({"max_running": None})
    assert (status, body["weight"], body["max_running"]) == (200, None, None)
    for field, bad in (
        ("weight", 0),
        ("weight", MAX_TENANT_WEIGHT + 1),
        ("weight", "2"),
        ("max_running", 0),
        ("max_running", MAX_TENANT_RUNNING + 1),
        ("max_running", 1.5),
    ):
        status, body = await patch({field: bad})
        assert (status, body["code"]) == (422, "VALIDATION_FAILED"), (field, bad)
        assert [item["path"] for item in body["errors"]] == [field], body
    for token in (client.tenant.admin_key, "wrong"):  # the platform admin's token only
        status, body = await patch({"weight": 9}, token)
        assert (status, body["code"]) == (401, "UNAUTHENTICATED")
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert (body["weight"], body["max_running"]) == (None, None)


@asynccontextmanager
async def intake(nc: Nats, own: Isolated, tenant: str, **config: Any) -> AsyncIterator[Any]:
    """The tenant's run-request consumer as the executors make it (removed at the end);
    yields a pull subscription bound to it."""
    js = nc.jetstream()
    durable = run_request_consumer(tenant)
    await js.add_consumer(
        own.streams.run_requests,
        ConsumerConfig(
            durable_name=durable,
            filter_subject=own.subjects.run_requests(tenant),
            ack_policy=AckPolicy.EXPLICIT,
            **config,
        ),
    )
    sub = await js.pull_subscribe_bind(durable, own.streams.run_requests)
    try:
        yield sub
    finally:
        await sub.unsubscribe()
        await js.delete_consumer(own.streams.run_requests, durable)
        await js.purge_stream(own.streams.run_requests, subject=own.subjects.run_requests(tenant))


async def taken(sub: Any, count: int) -> list[Msg]:
    """``count`` requests an executor took and holds (not acked)."""
    msgs: list[Msg] = await sub.fetch(count, timeout=3)
    assert len(msgs) == count
    return msgs


async def test_the_admin_get_shows_the_tenants_queued_and_running_runs(
    isolated: Isolated, nc: Nats
) -> None:
    http, tenant = isolated.http, await new_tenant(isolated.registry, "f")
    path = f"/api/v1/admin/tenants/{tenant.id}"
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert (status, body["runs"]) == (200, {"queued": 0, "running": 0})  # no consumer yet
    assert body["id"] == tenant.id and "weight" in body and "max_running" in body
    async with intake(nc, isolated, tenant.id) as sub:
        for n in range(3):
            await nc.jetstream().publish(
                isolated.subjects.run_requests(tenant.id), b"{}", headers={"Nats-Msg-Id": f"r{n}"}
            )
        await taken(sub, 1)
        status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
        assert (status, body["runs"]) == (200, {"queued": 2, "running": 1})
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert body["runs"] == {"queued": 0, "running": 0}  # the consumer is gone again
    status, body, _ = await http.request("GET", path, token=tenant.admin_key)
    assert status == 401


async def test_the_admin_get_is_503_when_jetstream_cannot_answer(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> None:
    async with isolated_stack(registry_settings, jwt_keys, nc) as own:
        tenant = await new_tenant(own.registry, "f")
        await nc.jetstream().delete_stream(own.streams.run_requests)
        status, body, _ = await own.http.request(
            "GET", f"/api/v1/admin/tenants/{tenant.id}", token=ADMIN_TOKEN
        )
        assert (status, body["code"]) == (503, "UNAVAILABLE"), body
