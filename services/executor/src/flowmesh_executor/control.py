"""Asking about and cancelling other runs (concurrency ``cancel_in_progress`` and leak
guards), the same way the gateway cancels: the run-control bucket, then the control subject.
"""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    CancelRequest,
    StepBatch,
    control_key,
    run_event_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects

_ENCODER = msgspec.json.Encoder()
_TERMINAL_KINDS = frozenset(f"run.{status}" for status in TERMINAL_RUN_STATUSES)


class RunControl:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        subjects: Subjects,
        streams: StreamNames,
        kv: KeyValue,
    ) -> None:
        self.nc, self.js, self.subjects, self.streams, self.kv = nc, js, subjects, streams, kv

    async def finished(self, key: str) -> bool:
        """Whether the run named by ``key`` (``<tenant>.<run_id>``) has its terminal event."""
        tenant, _, run_id = key.partition(".")
        try:
            last = await self.js.get_last_msg(
                self.streams.run_events, self.subjects.run_events(tenant, run_id), direct=True
            )
        except js_errors.NotFoundError:
            return True  # no such run (purged): it holds nothing
        event = run_event_decoder.decode(last.data or b"")
        if isinstance(event, StepBatch):
            return False
        return type(event).__struct_config__.tag in _TERMINAL_KINDS

    async def cancel(self, key: str, reason: str) -> None:
        tenant, _, run_id = key.partition(".")
        request = CancelRequest(
            tenant=tenant, run_id=run_id, reason=reason, by="service:executor", at=datetime.now(UTC)
        )
        data = _ENCODER.encode(request)
        await self.kv.put(control_key(tenant, run_id), data)
        await self.nc.publish(self.subjects.control(tenant, run_id), data)
