"""Message ids (``Nats-Msg-Id``) and idempotency-bucket keys: how a repeat is recognised.

JetStream drops a message whose ``Nats-Msg-Id`` it has stored within the stream's duplicate
window, so whoever may publish the same thing twice (a retry, a second replica, a resumed
attempt) must name it the same way. Every producer builds these names here:

- a run's opening event: ``queued:<run_id>`` or ``scheduled:<run_id>`` (also fenced on an
  empty subject);
- a run's first request: ``<run_id>``; a request asked again for a started run:
  ``wake:<run_id>:<last seq>`` (the gateway) or ``<why>:<run_id>`` (the executor's slots);
- a durable timer: ``timer:<timer id>``; a parked run's resumption: ``resume:<run_id>:<last
  seq>`` (timer id ``<run_id>:<last seq>``) or, woken by an event, ``resume:<run_id>:
  <node_id>:<parked_at>:<event id>``;
- a scheduler's fire: ``cron:<workflow>:<trigger>:<fire time>``,
  ``event:<workflow>:<trigger>:<event id>``;
- a key of the idempotency bucket: ``<tenant>.<workflow_id>.<sha256 of the key>``, for a
  client's idempotency key and for a fire's claim on a run id alike.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from flowmesh_proto.runs import RunQueued, RunScheduled


def opening_msg_id(first: RunQueued | RunScheduled) -> str:
    """A run's opening event: ``queued:<run_id>`` or ``scheduled:<run_id>``."""
    kind = "scheduled" if isinstance(first, RunScheduled) else "queued"
    return f"{kind}:{first.run_id}"


def request_msg_id(run_id: str) -> str:
    """A run's first request (and a delayed run's, sent by its timer): the run id."""
    return run_id


def wake_msg_id(run_id: str, last_seq: int) -> str:
    """A started run asked for again (to see its cancel): once per state of the run."""
    return f"wake:{run_id}:{last_seq}"


def rerequest_msg_id(why: str, run_id: str) -> str:
    """A parked run asked for again for a reason of the executor's (``slot:<revision>``)."""
    return f"{why}:{run_id}"


def timer_msg_id(timer_id: str) -> str:
    """A durable timer (a timer set twice is stored once)."""
    return f"timer:{timer_id}"


def park_timer_id(run_id: str, last_seq: int) -> str:
    """The timer of a run parked at ``last_seq`` (a run parked again gets a new one)."""
    return f"{run_id}:{last_seq}"


def resume_msg_id(timer_id: str) -> str:
    """The request a parked run's timer sends when due: one park is resumed once."""
    return f"resume:{timer_id}"


def event_resume_msg_id(run_id: str, node_id: str, parked_at: int, event_id: str) -> str:
    """The request that wakes a run parked on ``wait_for_event`` when an event matches."""
    return f"resume:{run_id}:{node_id}:{parked_at}:{event_id}"


def cron_fire_name(workflow_id: str, trigger_id: str, at: datetime) -> str:
    """A cron tick: every replica firing it names the same run and the same request."""
    return f"cron:{workflow_id}:{trigger_id}:{fire_stamp(at)}"


def event_fire_name(workflow_id: str, trigger_id: str, event_id: str) -> str:
    """An event matching a trigger: every replica taking it names the same run."""
    return f"event:{workflow_id}:{trigger_id}:{event_id}"


def fire_stamp(at: datetime) -> str:
    """A fire time as the cron names it: UTC, ISO 8601, trailing zeros of the fraction cut."""
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f").rstrip("0").rstrip(".") + "Z"


def idempotency_key(tenant: str, workflow_id: str, key: str) -> str:
    """The idempotency-bucket key of a client's idempotency key or of a fire's claim
    (hashed: any text, fixed length)."""
    return f"{tenant}.{workflow_id}.{hashlib.sha256(key.encode()).hexdigest()}"
