"""Events are the tenant's own (DESIGN section 12): an attacker tenant that publishes with
the victim's event ids, as ``Nats-Msg-Id`` (scoped ``<victim>:<id>`` or bare) on its own
subject over NATS and as its own ``POST /events``, neither drops nor repeats the victim's
event: the victim's event-triggered run starts once, a retried ``POST /events`` included."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest

from flowmesh_proto.subjects import Subjects
from tests.helpers import until
from tests.integration.gateway.conftest import Client

from .conftest import Schedulers
from .test_triggers import Seen, publish, seen, workflow

__all__ = ["seen"]  # the fixture

pytestmark = pytest.mark.integration


async def test_an_attacker_cannot_drop_or_repeat_a_victims_event(
    client: Client,
    other_client: Client,
    schedulers: Schedulers,
    seen: Seen,
    nc: Any,
    subjects: Subjects,
) -> None:
    await schedulers.start()
    trigger = {"id": "paid", "kind": "event", "event": "order.paid"}
    victims = await workflow(client, "victim", trigger)
    attackers = await workflow(other_client, "attacker", trigger)
    await asyncio.sleep(0.3)  # the catalogue hears of the new workflows
    victim, attacker = client.tenant.id, other_client.tenant.id
    event_id = f"order-{secrets.token_hex(4)}"
    for forged in (f"{victim}:{event_id}", event_id):
        await publish(nc, subjects, attacker, "order.paid", {}, msg_id=forged)
    body = {"id": event_id, "type": "order.paid", "data": {"total": 1}}
    assert (await other_client("POST", "/events", json=body))[0] == 202
    for _ in range(2):  # the victim's request, and its retry
        status, answer, _ = await client("POST", "/events", json=body)
        assert (status, answer) == (202, {"id": event_id})
    (run,) = await until(lambda: seen.queued(victims))
    assert run.trigger.event["id"] == event_id and run.tenant == victim
    theirs = Seen(nc, subjects, seen.streams, attacker)
    await until(lambda: _at_least(theirs.queued(attackers), 3))
    await asyncio.sleep(0.5)
    assert len(await seen.queued(victims)) == 1


async def _at_least(found: Any, count: int) -> Any:
    items = await found
    return items if len(items) >= count else None


async def test_a_copy_with_any_msg_id_starts_no_second_run(
    client: Client, schedulers: Schedulers, seen: Seen, nc: Any, subjects: Subjects
) -> None:
    """The victim's own event sent again over NATS, with and without a header of its own."""
    await schedulers.start()
    victims = await workflow(client, "copies", {"id": "t", "kind": "event", "event": "a.b"})
    await asyncio.sleep(0.3)
    tenant = client.tenant.id
    event_id = await publish(nc, subjects, tenant, "a.b", {}, msg_id=secrets.token_hex(4))
    await publish(nc, subjects, tenant, "a.b", {}, id=event_id, msg_id=secrets.token_hex(4))
    await until(lambda: seen.queued(victims))
    await asyncio.sleep(0.5)
    assert len(await seen.queued(victims)) == 1
