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
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

import msgspec


class EventEnvelope(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    id: str
    type: str
    tenant: str
    source: str = ""
    time: datetime | None = None
    data: Any = None


event_decoder = msgspec.json.Decoder(EventEnvelope)


#: The longest event id (it is a CloudEvents ``id``, chosen by the publisher).
MAX_EVENT_ID_LENGTH = 200


def event_key(tenant: str, event_id: str) -> str:
    """The one name of the event ``event_id`` of ``tenant`` (the tenant of its subject):
    its key in the event-ids ledger. The id is hashed (any text, fixed length)."""
    return f"{tenant}.events.{hashlib.sha256(event_id.encode()).hexdigest()}"
