"""Events are the tenant's own (DESIGN section 12): another tenant's ``Nats-Msg-Id`` never
drops a tenant's ``publish`` step event, and a ``wait_for_event`` step takes a tenant's
event once, even when the stream holds it twice. The attacker publishes on its own
tenant's subject (all NATS lets it reach) with whatever headers it likes."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from nats.js.errors import NotFoundError

from flowmesh_executor.nodes.publish import event_id as step_event_id
from flowmesh_proto import headers as h
from flowmesh_proto.events import EventEnvelope, event_decoder

from .runs import Runs

pytestmark = pytest.mark.integration

ATTACKER = "mallory"


def _gate(event_type: str) -> dict[str, Any]:
    parameters = {"event": event_type, "timeout": "PT10S"}
    return {"id": "gate", "type": "wait_for_event", "parameters": parameters}


async def _send(runs: Runs, tenant: str, event_type: str, event_id: str, **headers: str) -> None:
    envelope = EventEnvelope(
        id=event_id, type=event_type, tenant=tenant, time=datetime.now(UTC), data={}
    )
    await runs.js.publish(
        runs.subjects.events(tenant, event_type), msgspec.json.encode(envelope), headers=headers
    )


async def _stored(runs: Runs, tenant: str, event_type: str) -> list[EventEnvelope]:
    found = []
    subject = runs.subjects.events(tenant, event_type)
    seq = 0
    while True:
        try:
            msg = await runs.js.get_msg(
                runs.streams.events, seq=seq + 1, subject=subject, next=True
            )
        except NotFoundError:
            return found
        found.append(event_decoder.decode(msg.data or b""))
        seq = msg.seq or 0


async def _publisher_run(runs: Runs, shipped: str) -> tuple[str, str]:
    """A run whose ``publish`` step waits behind a gate: (its run id, its event's id)."""
    gate = f"gate.{secrets.token_hex(4)}"
    workflow = await runs.workflow(
        {
            "name": "shipper",
            "nodes": [
                _gate(gate),
                {"id": "emit", "type": "publish", "parameters": {"event": shipped, "data": 1}},
            ],
            "edges": [{"from": "gate", "to": "emit"}],
        }
    )
    run_id = await runs.start(workflow)
    await runs.step_running(run_id, "gate")
    return run_id, gate


async def test_an_attackers_msg_id_does_not_drop_a_publish_steps_event(runs: Runs) -> None:
    shipped = f"order.shipped.{secrets.token_hex(4)}"
    run_id, gate = await _publisher_run(runs, shipped)
    victim_id = step_event_id(f"{run_id}:emit")
    for forged in (victim_id, f"{runs.tenant}:{victim_id}"):
        await _send(runs, ATTACKER, shipped, secrets.token_hex(4), **{h.MSG_ID: forged})
    await _send(runs, runs.tenant, gate, secrets.token_hex(4))
    state = await runs.finished(run_id)
    assert state.status == "succeeded", state.error
    assert state.nodes["emit"].output == {"event_id": victim_id}
    assert [event.id for event in await _stored(runs, runs.tenant, shipped)] == [victim_id]


async def test_a_wait_takes_a_tenants_event_once(runs: Runs) -> None:
    """A publish step's event, with an attacker's forged ids before it and a copy of it
    (the same tenant and id, sent again) after: the first wait takes it, the second,
    started after it, does not take the copy."""
    shipped = f"order.shipped.{secrets.token_hex(4)}"
    waiter = await runs.workflow(
        {
            "name": "waiter",
            "nodes": [
                {
                    "id": "first",
                    "type": "wait_for_event",
                    "parameters": {"event": shipped, "timeout": "PT10S"},
                },
                {
                    "id": "second",
                    "type": "wait_for_event",
                    "parameters": {"event": shipped, "timeout": "PT1S"},
                },
            ],
            "edges": [{"from": "first", "to": "second"}],
        }
    )
    waiting = await runs.start(waiter)
    await runs.step_running(waiting, "first")
    run_id, gate = await _publisher_run(runs, shipped)
    victim_id = step_event_id(f"{run_id}:emit")
    for forged in (victim_id, f"{runs.tenant}:{victim_id}"):
        await _send(runs, ATTACKER, shipped, victim_id, **{h.MSG_ID: forged})
    await _send(runs, runs.tenant, gate, secrets.token_hex(4))
    assert (await runs.finished(run_id)).status == "succeeded"
    await runs.step_running(waiting, "second")
    await _send(runs, runs.tenant, shipped, victim_id)  # a copy, sent again by the tenant
    state = await runs.finished(waiting)
    assert state.nodes["first"].status == "succeeded", state.error
    assert state.nodes["first"].output["id"] == victim_id
    assert state.nodes["first"].output["tenant"] == runs.tenant
    assert state.nodes["second"].error_class == "EventTimeout"
