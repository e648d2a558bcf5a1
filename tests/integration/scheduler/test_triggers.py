"""Cron and event triggers on real NATS: on time, once per tick across replicas, catch-up
after downtime, filters, tenants kept apart, and the catalogue following changes."""

from __future__ import annotations

import asyncio
import itertools
import secrets
from collections import Counter
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from flowmesh_proto import headers as h
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.runs import RunQueued
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.gateway.conftest import Client

from .conftest import Schedulers
from .runs_seen import first_events, tenant_runs

pytestmark = pytest.mark.integration

NOOP = [{"id": "done", "type": "noop"}]


_MADE: list[tuple[Client, str]] = []


async def workflow(client: Client, name: str, *triggers: dict[str, Any]) -> str:
    definition = {"name": name, "nodes": NOOP, "triggers": list(triggers)}
    code, body, _ = await client("POST", "/workflows", json=definition)
    assert code == 201, body
    _MADE.append((client, str(body["id"])))
    return str(body["id"])


@pytest_asyncio.fixture(autouse=True, loop_scope="session")
async def _delete_made() -> AsyncIterator[None]:
    """Every-second crons of one test must not keep firing (and catching up) in the next."""
    yield
    while _MADE:
        client, workflow_id = _MADE.pop()
        await client("DELETE", f"/workflows/{workflow_id}")


class Seen:
    def __init__(self, nc: Any, subjects: Subjects, streams: StreamNames, tenant: str) -> None:
        self.nc, self.subjects, self.streams, self.tenant = nc, subjects, streams, tenant

    async def queued(self, workflow_id: str) -> list[RunQueued]:
        runs = await tenant_runs(self.nc, self.subjects, self.streams, self.tenant)
        return sorted(
            (
                event
                for event in first_events(runs).values()
                if isinstance(event, RunQueued) and event.workflow_id == workflow_id
            ),
            key=lambda event: event.at,
        )

    async def fire_times(self, workflow_id: str) -> list[datetime]:
        return sorted(
            datetime.fromisoformat(event.trigger.data["fire_time"])
            for event in await self.queued(workflow_id)
        )


@pytest.fixture
def seen(nc: Any, subjects: Subjects, streams: StreamNames, client: Client) -> Seen:
    return Seen(nc, subjects, streams, client.tenant.id)


def every_second(trigger_id: str = "tick", **extra: Any) -> dict[str, Any]:
    return {"id": trigger_id, "kind": "cron", "cron": "* * * * * *", **extra}


# --- cron ---------------------------------------------------------------------------------


async def test_a_seconds_cron_fires_on_time(
    client: Client, schedulers: Schedulers, seen: Seen
) -> None:
    await schedulers.start()
    wid = await workflow(client, "ticking", every_second())
    await asyncio.sleep(3.2)
    queued = await seen.queued(wid)
    assert len(queued) >= 2, queued
    for event in queued:
        fire = datetime.fromisoformat(event.trigger.data["fire_time"])
        assert fire.microsecond == 0
        assert timedelta(0) <= event.at - fire < timedelta(milliseconds=300), (event.at, fire)
        assert event.trigger.kind == "cron" and event.trigger.trigger_id == "tick"
    times = await seen.fire_times(wid)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))


async def test_two_replicas_start_one_run_per_tick_for_a_minute(
    client: Client, schedulers: Schedulers, seen: Seen
) -> None:
    await schedulers.start()
    await schedulers.start()
    wid = await workflow(client, "minute", every_second())
    began = datetime.now(UTC)
    await asyncio.sleep(61)
    times = await seen.fire_times(wid)
    assert len(times) >= 60, len(times)
    assert len(set(times)) == len(times), Counter(times).most_common(3)
    assert all(b - a == timedelta(seconds=1) for a, b in itertools.pairwise(times))
    assert times[0] - began < timedelta(seconds=2)


@pytest.mark.parametrize(("policy", "expected"), [("skip", 0), ("once", 1), ("all", 3)])
async def test_a_restart_with_missed_fires_follows_catch_up(
    client: Client, schedulers: Schedulers, seen: Seen, policy: str, expected: int
) -> None:
    first = await schedulers.start(catch_up_max=3)
    wid = await workflow(client, f"catch-{policy}", every_second(catch_up=policy))
    await until(lambda: seen.fire_times(wid), timeout=3)
    await first.stop()
    stopped = datetime.now(UTC)
    before = set(await seen.fire_times(wid))
    await asyncio.sleep(4.5)  # four or five ticks missed
    restarting = datetime.now(UTC)
    await schedulers.start(catch_up_max=3)
    restarted = datetime.now(UTC)

    async def caught_up() -> list[RunQueued]:
        queued = [event for event in await seen.queued(wid) if event.at >= restarting]
        return [event for event in queued if event.trigger.data.get("caught_up")]

    if expected:
        await until(lambda: _at_least(caught_up(), expected), timeout=3)
    await asyncio.sleep(0.5)  # and no more than that
    caught = await caught_up()
    assert len(caught) == expected, [event.trigger.data for event in caught]
    fires = sorted(datetime.fromisoformat(e.trigger.data["fire_time"]) for e in caught)
    assert all(stopped - timedelta(seconds=1) < fire <= restarted for fire in fires)
    assert not set(fires) & before
    if policy == "all":  # the most recent ones, in order
        assert fires == [fires[-1] - timedelta(seconds=n) for n in (2, 1, 0)]


async def test_the_catalogue_follows_changes_within_a_second(
    client: Client, schedulers: Schedulers, seen: Seen
) -> None:
    await schedulers.start()
    wid = await workflow(client, "changing")  # no trigger yet
    definition = {"name": "changing", "nodes": NOOP, "triggers": [every_second()]}
    code, body, _ = await client("PUT", f"/workflows/{wid}", json=definition)
    assert code == 200, body
    await until(lambda: seen.queued(wid), timeout=2.5, message="fires after the update")
    code, body, _ = await client("PATCH", f"/workflows/{wid}", json={"enabled": False})
    assert code == 200, body
    await asyncio.sleep(1.2)
    count = len(await seen.queued(wid))
    await asyncio.sleep(2)
    assert len(await seen.queued(wid)) == count  # disabled: no more fires


# --- events -------------------------------------------------------------------------------


async def publish(
    nc: Any, subjects: Subjects, tenant: str, event_type: str, data: Any, **extra: Any
) -> str:
    envelope = EventEnvelope(
        id=extra.pop("id", None) or secrets.token_hex(8),
        type=event_type,
        tenant=extra.pop("as_tenant", tenant),
        source="tests",
        time=datetime.now(UTC),
        data=data,
    )
    await nc.jetstream().publish(
        subjects.events(tenant, event_type),
        msgspec.json.encode(envelope),
        headers={h.MSG_ID: extra.pop("msg_id", envelope.id)},
    )
    return envelope.id


ORDER = {"id": "big", "kind": "event", "event": "order.created", "filter": "event.data.total > 100"}


async def test_event_filters_match_and_do_not(
    client: Client, schedulers: Schedulers, seen: Seen, nc: Any, subjects: Subjects
) -> None:
    await schedulers.start()
    wid = await workflow(client, "orders", ORDER)
    await asyncio.sleep(0.3)  # the catalogue hears of the new workflow
    tenant = client.tenant.id
    big = await publish(nc, subjects, tenant, "order.created", {"total": 150})
    await publish(nc, subjects, tenant, "order.created", {"total": 50})
    await publish(nc, subjects, tenant, "order.created", {"no_total": True})  # filter errs
    await publish(nc, subjects, tenant, "order.cancelled", {"total": 500})
    (queued,) = await until(lambda: seen.queued(wid))
    assert queued.trigger.kind == "event" and queued.trigger.trigger_id == "big"
    assert queued.trigger.data == {"total": 150} and queued.input == {"total": 150}
    assert queued.trigger.event["id"] == big and queued.trigger.event["type"] == "order.created"
    await asyncio.sleep(0.5)
    assert len(await seen.queued(wid)) == 1


async def test_an_event_sent_twice_starts_one_run(
    client: Client, schedulers: Schedulers, seen: Seen, nc: Any, subjects: Subjects
) -> None:
    await schedulers.start()
    wid = await workflow(client, "once", {**ORDER, "filter": None})
    await asyncio.sleep(0.3)
    tenant = client.tenant.id
    event_id = await publish(nc, subjects, tenant, "order.created", {"total": 1})
    # The same event again as a different message (past the stream's dedup), sent later.
    await asyncio.sleep(0.01)
    await publish(nc, subjects, tenant, "order.created", {"total": 1}, id=event_id, msg_id="x")
    await until(lambda: seen.queued(wid))
    await asyncio.sleep(0.5)
    assert len(await seen.queued(wid)) == 1


async def test_a_tenants_events_never_start_another_tenants_workflows(
    client: Client,
    other_client: Client,
    schedulers: Schedulers,
    seen: Seen,
    nc: Any,
    subjects: Subjects,
    streams: StreamNames,
) -> None:
    await schedulers.start()
    mine = await workflow(client, "mine", ORDER)
    theirs = await workflow(other_client, "theirs", ORDER)
    await asyncio.sleep(0.3)
    await publish(nc, subjects, client.tenant.id, "order.created", {"total": 101})
    # An envelope claiming the other tenant, on this tenant's subject: refused.
    await publish(
        nc, subjects, client.tenant.id, "order.created", {"total": 999},
        as_tenant=other_client.tenant.id,
    )  # fmt: skip
    await until(lambda: seen.queued(mine))
    await asyncio.sleep(0.5)
    assert len(await seen.queued(mine)) == 1
    other = Seen(nc, subjects, streams, other_client.tenant.id)
    assert await other.queued(theirs) == []


async def test_events_published_while_no_scheduler_runs_start_their_runs_later(
    client: Client, schedulers: Schedulers, seen: Seen, nc: Any, subjects: Subjects
) -> None:
    wid = await workflow(client, "backlog", ORDER)
    for total in (101, 102, 5):
        await publish(nc, subjects, client.tenant.id, "order.created", {"total": total})
    await schedulers.start()  # takes the backlog only once its catalogue is loaded
    queued = await until(lambda: _at_least(seen.queued(wid), 2))
    assert sorted(event.input["total"] for event in queued) == [101, 102]


async def _at_least(found: Any, count: int) -> Any:
    items = await found
    return items if len(items) >= count else None
