"""Fair share (DESIGN section 13) at the gateway, on real NATS and PostgreSQL: a tenant's
``weight`` and ``max_running`` (platform admin PATCH), its queued and running runs (the
admin GET), and why a queued run waits (``GET /runs/{id}`` and its SSE stream).

The executors' per-tenant run-request consumer is made by hand here, with the shape the
executors give it (durable ``runs-<t>``, the tenant's request subject, explicit acks), on
streams no executor of the session serves (:func:`isolated`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import pytest_asyncio
from nats.aio.client import Client as Nats
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig

from flowmesh_proto import headers as h
from flowmesh_proto.registry import MAX_TENANT_RUNNING, MAX_TENANT_WEIGHT
from flowmesh_proto.runs import RunEvent, RunStarted, RunSucceeded, RunWaiting
from flowmesh_proto.subjects import run_request_consumer
from flowmesh_registry.settings import RegistrySettings
from tests.helpers import until
from tests.integration.harness import new_tenant

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
from .sse_client import sse

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
    config.setdefault("max_ack_pending", -1)  # no max_running, as the executors make it
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
    no_runs = {"queued": 0, "running": 0, "max_running": None}
    assert (status, body["runs"]) == (200, no_runs)  # no consumer yet
    assert body["id"] == tenant.id and "weight" in body and "max_running" in body
    async with intake(nc, isolated, tenant.id) as sub:
        for n in range(3):
            await nc.jetstream().publish(
                isolated.subjects.run_requests(tenant.id), b"{}", headers={"Nats-Msg-Id": f"r{n}"}
            )
        await taken(sub, 1)
        status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
        assert (status, body["runs"]) == (200, {"queued": 2, "running": 1, "max_running": None})
    status, body, _ = await http.request("GET", path, token=ADMIN_TOKEN)
    assert body["runs"] == no_runs  # the consumer is gone again
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


class Fair(msgspec.Struct, frozen=True, kw_only=True):
    """Streams no executor serves, and a gateway that looks again quickly."""

    own: Isolated
    http: Http


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fair(
    registry_settings: RegistrySettings, jwt_keys: tuple[Keys, list[str]], nc: Nats
) -> AsyncIterator[Fair]:
    async with isolated_stack(registry_settings, jwt_keys, nc) as own, AsyncExitStack() as stack:
        settings = gateway_settings(
            own.registry,
            jwt_keys[1],
            tenant_limit_cache_seconds=0.05,
            intake_cache_seconds=0.05,
            sse_waiting_seconds=0.2,
            sse_heartbeat_seconds=0.3,
        )
        gateway = await started(settings, stack)
        http = Http(own.http.session, f"http://127.0.0.1:{gateway.port}", own.http.keys)
        yield Fair(own=own, http=http)


async def limited_tenant(fair: Fair, max_running: int) -> Client:
    client = Client(fair.http, await new_tenant(fair.own.registry, "w"))
    status, body, _ = await fair.http.request(
        "PATCH",
        f"/api/v1/admin/tenants/{client.tenant.id}",
        token=ADMIN_TOKEN,
        json={"max_running": max_running},
    )
    assert status == 200, body
    return client


async def execute(client: Client, workflow: dict[str, Any]) -> str:
    status, body, _ = await client("POST", f"/workflows/{workflow['id']}/execute")
    assert (status, body["status"]) == (202, "queued"), body
    run_id: str = body["run_id"]
    return run_id


async def append(nc: Nats, own: Isolated, event: RunEvent) -> int:
    """Publish ``event`` on its run's subject as an executor does (fenced on the last)."""
    js = nc.jetstream()
    subject = own.subjects.run_events(event.tenant, event.run_id)
    last = await js.get_last_msg(own.streams.run_events, subject)
    ack = await js.publish(
        subject,
        msgspec.json.encode(event),
        stream=own.streams.run_events,
        headers={h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last.seq)},
    )
    return ack.seq


def of(client: Client, workflow: dict[str, Any], run_id: str) -> dict[str, Any]:
    """What every event of the run repeats."""
    return {
        "tenant": client.tenant.id,
        "run_id": run_id,
        "workflow_id": workflow["id"],
        "version": workflow["version"],
        "at": datetime.now(UTC),
    }


def when(text: str) -> datetime:
    return msgspec.convert(text, datetime)


async def test_get_says_why_a_queued_run_waits(fair: Fair, nc: Nats) -> None:
    client = await limited_tenant(fair, max_running=1)
    workflow = await client.create("waits")
    first, second = await execute(client, workflow), await execute(client, workflow)
    status, run, _ = await client("GET", f"/runs/{first}")
    assert (status, run["status"], run["waiting"]["reason"]) == (200, "queued", "capacity")
    assert when(run["waiting"]["since"]) == when(run["created_at"])  # when it was queued

    async def reason(run_id: str) -> str | None:
        status, run, _ = await client("GET", f"/runs/{run_id}")
        assert status == 200, run
        return None if run["waiting"] is None else str(run["waiting"]["reason"])

    async with intake(nc, fair.own, client.tenant.id, max_ack_pending=1) as sub:
        await taken(sub, 1)  # an executor holds the first run: the tenant's max_running
        await until(lambda: _is(reason(second), "tenant_max_running"), timeout=5)
        # An executor took the second run, which waits for a slot of its concurrency key.
        since = datetime.now(UTC) - timedelta(seconds=3)
        waiting = RunWaiting(**of(client, workflow, second), reason="concurrency_key", since=since)
        await append(nc, fair.own, waiting)
        status, run, _ = await client("GET", f"/runs/{second}")
        assert (status, run["status"]) == (200, "queued")
        assert run["waiting"]["reason"] == "concurrency_key"
        assert when(run["waiting"]["since"]) == since
        await append(nc, fair.own, RunStarted(**of(client, workflow, first), executor="double"))
        status, run, _ = await client("GET", f"/runs/{first}")
        assert (status, run["status"], run["waiting"]) == (200, "running", None)
        await until(lambda: _projected(client, first), timeout=5)  # the registry has it so
        status, run, _ = await client("GET", f"/runs/{first}")
        assert (status, run["status"], run["waiting"]) == (200, "running", None)
    status, page, _ = await client("GET", "/runs")
    assert status == 200
    assert {item["id"]: item["waiting"] for item in page["items"]} == {
        first: None,
        second: None,  # the history says nothing of waits: GET /runs/{id} reads them live
    }


async def test_a_queued_runs_stream_says_why_it_waits_until_its_next_event(
    fair: Fair, nc: Nats
) -> None:
    client = await limited_tenant(fair, max_running=1)
    workflow = await client.create("streams")
    run_id = await execute(client, workflow)
    url = fair.http.url(f"{client.prefix}/runs/{run_id}/events")
    session = fair.own.http.session
    async with (
        sse(session, url, client.tenant.admin_key, computed=True) as stream,
        intake(nc, fair.own, client.tenant.id, max_ack_pending=1) as sub,
    ):
        queued, said = await stream.events(2, timeout=5)
        assert queued.kind == "run.queued" and queued.id > 0
        assert (said.kind, said.id, said.data["reason"]) == ("run.waiting", 0, "capacity")
        assert when(said.data["since"]) == when(queued.data["at"])
        assert said.data["run_id"] == run_id and said.data["kind"] == "run.waiting"
        (held,) = await taken(sub, 1)  # the tenant holds its one run (this one's request)
        (again,) = await stream.events(1, timeout=5)
        assert (again.kind, again.id, again.data["reason"]) == (
            "run.waiting",
            0,
            "tenant_max_running",
        )
        seq = await append(nc, fair.own, RunStarted(**of(client, workflow, run_id)))
        (moved,) = await stream.events(1, timeout=5)
        assert (moved.kind, moved.id) == ("run.started", seq)
        await held.ack()  # the reason would change now, but the run has moved on
        rest = asyncio.create_task(stream.rest(timeout=10))
        heard = stream.comments
        await until(lambda: stream.comments >= heard + 2, timeout=5)  # quiet for 2 heartbeats
        await append(nc, fair.own, RunSucceeded(**of(client, workflow, run_id)))
        assert [event.kind for event in await rest] == ["run.succeeded"]


async def _is(value: Any, expected: Any) -> bool:
    return bool(await value == expected)


async def _projected(client: Client, run_id: str) -> bool:
    status, page, _ = await client("GET", "/runs")
    assert status == 200, page
    return any(item["id"] == run_id and item["status"] == "running" for item in page["items"])
