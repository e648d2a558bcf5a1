"""Trigger events (``<prefix>.<t>.events.<type>``, stream FM_EVENTS), with CloudEvents
field names: ``id``, ``type``, ``source``, ``time``, ``data``.

Other services publish them over NATS (or through the gateway's ``POST /events``); the
scheduler matches them to event triggers, and ``wait_for_event`` steps wait for them. A
``publish`` step emits one with a deterministic id, so a step that runs twice emits one
event.

An event is named by its subject's tenant and its envelope's ``id`` (:func:`event_key`),
never by a ``Nats-Msg-Id`` header: FM_EVENTS's duplicate window is one for every tenant,
and a tenant's publisher may set any header, another tenant's ids included. The tenant of
the subject is what NATS permissions guarantee, so it is the scope (docs/events.md).

A tenant's own publishers never reach the stream: their account maps
``<prefix>.<t>.events.<type>`` to the ingress subject ``<prefix>.<t>.ingress.<type>``,
where the gateway checks each event (:func:`checked_event`), stores it once per
``(tenant, id)`` and answers a request as JetStream would (:class:`EventStored`, or
:class:`EventRefused`), so ``js.publish`` works unchanged.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec

from flowmesh_proto.ids import MAX_EVENT_ID_LENGTH, is_event_id
from flowmesh_proto.storable import unstorable_json


class EventEnvelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    type: str
    tenant: str
    source: str = ""
    time: datetime | None = None
    data: Any = None


event_decoder = msgspec.json.Decoder(EventEnvelope)


class EventProblem(ValueError):
    """An event that is not one of its subject's: it is not stored."""


def checked_event(tenant: str, event_type: str, data: bytes) -> EventEnvelope:
    """The envelope ``data`` sent on the events subject of ``tenant`` and ``event_type``.

    :class:`EventProblem` when it does not decode, names another tenant or type than the
    subject's, its ``id`` is not 1..200 printable ASCII characters without spaces, or it
    holds what PostgreSQL cannot store (:func:`~flowmesh_proto.storable.unstorable`: the
    problem's path, such as ``data.k``, opens the message).
    """
    try:
        envelope = event_decoder.decode(data)
    except (msgspec.DecodeError, UnicodeDecodeError) as exc:
        raise EventProblem(f"the event is not an event envelope: {exc}") from exc
    if envelope.tenant != tenant:
        raise EventProblem(f"the event's tenant is not its subject's ({tenant!r})")
    if envelope.type != event_type:
        raise EventProblem(f"the event's type is not its subject's ({event_type!r})")
    if not is_event_id(envelope.id):
        raise EventProblem(
            f"the event's id must be 1 to {MAX_EVENT_ID_LENGTH} printable ASCII characters"
            " without spaces"
        )
    found = unstorable_json(data)
    if found is not None:
        raise EventProblem(f"{found.path}: {found.reason}")
    return envelope


class EventStored(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """The ingress's answer to a stored event, shaped like JetStream's publish
    acknowledgement: the stream, the sequence of the copy that counts, and ``duplicate``
    when the tenant had already sent an event with this id (within a day)."""

    stream: str
    seq: int
    duplicate: bool = False


class IngressError(msgspec.Struct, frozen=True, kw_only=True):
    """Why an event was not stored, as JetStream words an API error: ``code`` an HTTP
    status (400 a bad event, 503 try again), ``err_code`` a Flowmesh error number."""

    code: int
    err_code: int
    description: str


class EventRefused(msgspec.Struct, frozen=True, kw_only=True):
    """The ingress's answer to an event it did not store (nats-py raises ``APIError``)."""

    error: IngressError


def event_key(tenant: str, event_id: str) -> str:
    """The one name of the event ``event_id`` of ``tenant`` (the tenant of its subject):
    its key in the event-ids ledger. The id is hashed (any text, fixed length)."""
    return f"{tenant}.events.{hashlib.sha256(event_id.encode()).hexdigest()}"
