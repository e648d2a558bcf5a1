"""The event-ids ledger: which stored copy of a tenant's event is the event.

An event is ``(tenant of its subject, envelope id)`` (:func:`flowmesh_proto.events.event_key`).
FM_EVENTS may hold it more than once (a publisher's retry, a step run twice, a tenant
sending it again over NATS); the ledger keeps, for a day, the stream sequence of the copy
that counts, and every consumer (event triggers, parked waits, ``wait_for_event``) acts on
that copy only. The first to record a sequence for the key wins (an atomic create), so all
agree whichever sees a copy first.

No ``Nats-Msg-Id`` is involved: the stream's duplicate window is shared by every tenant and
any tenant's publisher may set any header, so an id there could be another tenant's. The
ledger's key comes from the subject's tenant, which NATS permissions guarantee.
"""

from __future__ import annotations

from collections.abc import Mapping

from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto.events import event_key
from flowmesh_shared.jetstream import IDEMPOTENCY_TTL, StreamLimits, ensure_bucket


class EventIds:
    """The ledger over one key-value bucket (opened on first use)."""

    def __init__(
        self,
        js: JetStreamContext,
        bucket: str,
        limits: StreamLimits,
        kv: KeyValue | None = None,
    ) -> None:
        self._js, self._bucket_name, self._limits = js, bucket, limits
        self._kv = kv

    async def _bucket(self) -> KeyValue:
        if self._kv is None:
            # How long an event's id names it (a copy stored later is a new event): the
            # ledger lives in the idempotency bucket, beside run idempotency keys and claims.
            self._kv = await ensure_bucket(
                self._js, self._bucket_name, IDEMPOTENCY_TTL, self._limits
            )
        return self._kv

    async def counted(self, tenant: str, event_id: str) -> int | None:
        """The stream sequence of the event's copy that counts; None if none is known."""
        kv = await self._bucket()
        try:
            entry = await kv.get(event_key(tenant, event_id))
        except js_errors.KeyNotFoundError:
            return None
        try:
            return int((entry.value or b"").decode())
        except ValueError:
            return None

    async def settle(self, tenant: str, event_id: str, seq: int) -> int:
        """Record ``seq`` as the event's copy unless one is recorded; the one that counts."""
        kv = await self._bucket()
        key = event_key(tenant, event_id)
        try:
            await kv.create(key, str(seq).encode())
            return seq
        except js_errors.KeyWrongLastSequenceError:
            pass
        known = await self.counted(tenant, event_id)
        return seq if known is None else known

    async def is_copy(self, tenant: str, event_id: str, seq: int) -> bool:
        """Whether the message at ``seq`` repeats an event already stored (to be ignored)."""
        return await self.settle(tenant, event_id, seq) != seq

    async def publish_once(
        self,
        js: JetStreamContext,
        subject: str,
        payload: bytes,
        *,
        tenant: str,
        event_id: str,
        stream: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> tuple[int, bool]:
        """Store the event unless a copy is already recorded: (the sequence that counts,
        whether this call stored it). Two concurrent calls may both store it; the ledger
        then counts one, and consumers ignore the other."""
        known = await self.counted(tenant, event_id)
        if known is not None:
            return known, False
        ack = await js.publish(subject, payload, stream=stream, headers=dict(headers or {}))
        counted = await self.settle(tenant, event_id, ack.seq)
        return counted, counted == ack.seq
