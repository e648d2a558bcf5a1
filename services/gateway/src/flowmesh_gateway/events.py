"""Trigger events stored by the gateway, on ``<prefix>.<t>.events.<type>`` in stream
FM_EVENTS: those of ``POST /events``, and those tenants' own publishers send over NATS
(:mod:`flowmesh_gateway.ingress`).

An event is ``(tenant, id)``, recorded in the event-ids ledger
(:class:`flowmesh_shared.event_ids.EventIds`): one sent again within a day is not stored
again, and its triggered run starts once. No ``Nats-Msg-Id`` is set: the stream's duplicate
window is shared by every tenant, and another tenant's publisher may set any header
(docs/events.md). Every NATS failure becomes :class:`Unavailable` (503); a message NATS
cannot take is 413.
"""

from __future__ import annotations

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.events import EventEnvelope
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_shared import telemetry
from flowmesh_shared.errors import FlowmeshError, Unavailable
from flowmesh_shared.event_ids import EventIds

log = structlog.get_logger("flowmesh.gateway.events")

_encoder = msgspec.json.Encoder()


class EventPublisher:
    """Publishes trigger events to JetStream (one per gateway process)."""

    def __init__(
        self,
        js: JetStreamContext,
        subjects: Subjects,
        stream: str,
        max_message_bytes: int,
        ids: EventIds,
    ) -> None:
        self._js, self._subjects, self._stream = js, subjects, stream
        self._max_message_bytes = max_message_bytes
        self._ids = ids

    @classmethod
    def of(cls, nc: Client, settings: GatewaySettings) -> EventPublisher:
        limit = settings.streams.max_msg_size
        js = nc.jetstream(timeout=settings.rpc_timeout)
        streams = stream_names(settings.stream_prefix)
        return cls(
            js,
            Subjects(settings.subject_prefix),
            streams.events,
            min(nc.max_payload, limit) if limit > 0 else nc.max_payload,
            EventIds(js, streams.idempotency, settings.streams),
        )

    @property
    def stream(self) -> str:
        return self._stream

    async def publish(self, envelope: EventEnvelope) -> bool:
        """Store the event; False when the stream already held it (a duplicate)."""
        _, stored = await self.store(envelope, _encoder.encode(envelope), telemetry.inject({}))
        return stored

    async def store(
        self, envelope: EventEnvelope, payload: bytes, headers: dict[str, str]
    ) -> tuple[int, bool]:
        """Store ``payload`` (``envelope`` encoded, as its publisher wrote it) unless the
        ledger knows the event: (the sequence of the copy that counts, whether this call
        stored it)."""
        if len(payload) > self._max_message_bytes:
            raise FlowmeshError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the event would be {len(payload)} bytes; NATS takes at most "
                f"{self._max_message_bytes}",
            )
        subject = self._subjects.events(envelope.tenant, envelope.type)
        try:
            seq, stored = await self._ids.publish_once(
                self._js,
                subject,
                payload,
                tenant=envelope.tenant,
                event_id=envelope.id,
                stream=self._stream,
                headers=headers,
            )
        except js_errors.APIError as exc:
            log.warning("jetstream.refused", what="event", error=repr(exc))
            raise Unavailable(f"JetStream cannot store the event now: {exc.description}") from exc
        except (TimeoutError, nats.errors.Error) as exc:
            log.warning("nats.unavailable", what="event", error=repr(exc))
            raise Unavailable("NATS JetStream did not answer in time (the event)") from exc
        log.info(
            "event.published",
            tenant=envelope.tenant,
            type=envelope.type,
            event_id=envelope.id,
            seq=seq,
            dup=not stored,
        )
        return seq, stored
