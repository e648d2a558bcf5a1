"""``publish``: emit an event on ``<prefix>.<t>.events.<type>`` (stream FM_EVENTS).

The event id is derived from the step's idempotency key, and the event is stored once per
``(tenant, id)`` through the event-ids ledger (:class:`flowmesh_shared.event_ids.EventIds`):
a step that runs twice (its executor died) emits one event, and a second copy stored by a
race is ignored by every consumer. No ``Nats-Msg-Id`` is set (docs/events.md).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from nats.js import errors as js_errors

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, text
from flowmesh_proto import headers as h
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.outputs import PublishOutput
from flowmesh_proto.subjects import SubjectError

EVENT_NAMESPACE = uuid.UUID("5b0c8f0e-6a3c-4a5e-9a53-7f1f0c2b8d11")
_ENCODER = msgspec.json.Encoder()


def event_id(idempotency_key: str) -> str:
    return str(uuid.uuid5(EVENT_NAMESPACE, idempotency_key))


async def run(call: StepCall, services: StepServices) -> Any:
    event_type = text(call.parameters.get("event"), "event")
    try:
        subject = services.subjects.events(call.tenant, event_type)
    except SubjectError as exc:
        raise StepError(INVALID, str(exc)) from None
    envelope = EventEnvelope(
        id=event_id(call.idempotency_key),
        type=event_type,
        tenant=call.tenant,
        source=f"flowmesh/workflows/{call.workflow_id}/runs/{call.run_id}",
        time=datetime.now(UTC),
        data=call.parameters.get("data"),
    )
    headers = {h.TRACEPARENT: call.traceparent} if call.traceparent else {}
    try:
        await services.event_ids.publish_once(
            services.js,
            subject,
            _ENCODER.encode(envelope),
            tenant=call.tenant,
            event_id=envelope.id,
            headers=headers,
        )
    except (TimeoutError, nats.errors.Error, js_errors.Error) as exc:
        raise StepError("PublishFailed", f"the event could not be published: {exc}") from None
    return msgspec.to_builtins(PublishOutput(event_id=envelope.id))
