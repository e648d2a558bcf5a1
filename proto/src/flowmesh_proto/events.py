"""Trigger events (``<prefix>.<t>.events.<type>``, stream FM_EVENTS), with CloudEvents
field names: ``id``, ``type``, ``source``, ``time``, ``data``.

Other services publish them over NATS (or through the gateway's ``POST /events``); the
scheduler matches them to event triggers, and ``wait_for_event`` steps wait for them. A
``publish`` step emits one with a deterministic id, so a step that runs twice emits one
event (``Nats-Msg-Id`` is the event id).
"""

from __future__ import annotations

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
