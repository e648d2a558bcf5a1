"""Durable timers (``<prefix>.<t>.timers.<purpose>``, stream FM_TIMERS): a run request to
send at a time, held by the scheduler.

Whoever needs a run (re)requested later publishes a :class:`Timer` with ``Nats-Msg-Id:
timer:<id>`` (a timer set twice is stored once); the gateway for a delayed execute
(``delay``/``run_at``), the executor for a long wait it does not want to hold a lease for.
The stream is a work queue with one durable consumer shared by every scheduler replica: a
timer not yet due is handed back to JetStream with a delayed ``nak`` (redelivered when due,
or at most ``max_hold`` later to look again); a due timer's ``request`` is published on the
tenant's run-request subject with ``Nats-Msg-Id: <request_msg_id>`` and the timer acked.
A scheduler that dies between the two leaves the timer unacked: it is redelivered, and the
request's message id makes the second publish a duplicate. ``traceparent`` travels in the
timer's headers and goes on with the request.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime
from typing import Any, Literal

import msgspec

from flowmesh_proto.msgids import park_timer_id, request_msg_id, resume_msg_id
from flowmesh_proto.runs import RunRequest

#: ``delayed_run``: an execute with ``delay``/``run_at``; ``resume``: a parked run's wait ends.
TimerPurpose = Literal["delayed_run", "resume"]


class Timer(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    tenant: str
    purpose: TimerPurpose
    due: datetime
    #: The request published when due, and its ``Nats-Msg-Id`` (so a fire happens once).
    request: RunRequest
    request_msg_id: str


timer_decoder = msgspec.json.Decoder(Timer)


class EventWait(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """A parked ``wait_for_event`` step, kept in the event-waits bucket under
    ``<tenant>.<run_id>.<node_id>`` while its run is parked. The scheduler matches trigger
    events against it (``event`` type, then ``match`` over ``variables`` plus ``event``,
    the envelope) and, on the first match, publishes ``request`` with ``Nats-Msg-Id:
    resume:<run_id>:<node_id>:<parked_at>:<event id>`` and deletes the entry; the resumed step finds
    the event itself (it reads events from its attempt's start)."""

    tenant: str
    run_id: str
    node_id: str
    event: str
    match: str | None = None
    #: The run's CEL variables the match reads (never ``secrets``: such a wait is not parked).
    variables: dict[str, Any] = {}
    request: RunRequest
    since: datetime
    #: The run's last stream sequence when it parked: a run parked again is woken again.
    parked_at: int = 0


event_wait_decoder = msgspec.json.Decoder(EventWait)


def delayed_run_timer(request: RunRequest, due: datetime) -> Timer:
    """The durable timer that sends a delayed run's ``request`` at ``due`` (``Nats-Msg-Id``
    of the request: :func:`~flowmesh_proto.msgids.request_msg_id`, as every run's first)."""
    return Timer(
        id=request.run_id,
        tenant=request.tenant,
        purpose="delayed_run",
        due=due,
        request=request,
        request_msg_id=request_msg_id(request.run_id),
    )


def park_timer(request: RunRequest, last_seq: int, due: datetime) -> Timer:
    """The durable timer that asks at ``due`` for a run parked after its event at stream
    sequence ``last_seq``: named :func:`~flowmesh_proto.msgids.park_timer_id` (a run parked
    again gets a new one), its request sent with ``Nats-Msg-Id``
    :func:`~flowmesh_proto.msgids.resume_msg_id` (one park is resumed once)."""
    name = park_timer_id(request.run_id, last_seq)
    return Timer(
        id=name,
        tenant=request.tenant,
        purpose="resume",
        due=due,
        request=request,
        request_msg_id=resume_msg_id(name),
    )


def event_wait_key(tenant: str, run_id: str, node_id: str) -> str:
    return f"{tenant}.{run_id}.{node_id}"


def derived_run_id(name: str, at: datetime) -> str:
    """A UUIDv7-shaped run id fixed by ``name`` (time bits: ``at``): every scheduler replica
    firing the same thing (a cron tick, an event matching a trigger) names the same run."""
    millis = int(at.timestamp() * 1000) & ((1 << 48) - 1)
    rand = int.from_bytes(hashlib.sha256(name.encode()).digest()[:10], "big")  # 74 bits used
    value = (millis << 80) | (0x7 << 76) | ((rand >> 62) & 0xFFF) << 64
    value |= (0b10 << 62) | (rand & ((1 << 62) - 1))
    return str(uuid.UUID(int=value))
