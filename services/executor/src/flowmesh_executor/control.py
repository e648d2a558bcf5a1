"""Asking about and cancelling other runs (concurrency ``cancel_in_progress`` and leak
guards), the same way the gateway cancels: the run-control bucket, then the control subject.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from flowmesh_proto import headers as h
from flowmesh_proto.msgids import rerequest_msg_id
from flowmesh_proto.runs import (
    CancelRequest,
    RunQueued,
    RunScheduled,
    control_key,
    final_status,
    request_of,
    run_event_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects

_ENCODER = msgspec.json.Encoder()


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
        return final_status(event) is not None

    async def wake(self, key: str, why: str) -> None:
        """Ask for the run named by ``key`` again (a parked run waiting for a slot): its
        request, rebuilt from its first event, with ``Nats-Msg-Id: <why>:<run_id>``."""
        tenant, _, run_id = key.partition(".")
        subject = self.subjects.run_events(tenant, run_id)
        try:
            first = await self.js.get_msg(
                self.streams.run_events, seq=1, subject=subject, next=True, direct=True
            )
        except js_errors.NotFoundError:
            return
        opened = run_event_decoder.decode(first.data or b"")
        if not isinstance(opened, RunQueued | RunScheduled):
            return
        await self.js.publish(
            self.subjects.run_requests(tenant),
            _ENCODER.encode(request_of(opened)),
            stream=self.streams.run_requests,
            headers={h.MSG_ID: rerequest_msg_id(why, run_id)},
        )

    async def cancel(self, key: str, reason: str) -> None:
        tenant, _, run_id = key.partition(".")
        request = CancelRequest(
            tenant=tenant, run_id=run_id, reason=reason, by="service:executor", at=datetime.now(UTC)
        )
        data = _ENCODER.encode(request)
        await self.kv.put(control_key(tenant, run_id), data)
        await self.nc.publish(self.subjects.control(tenant, run_id), data)


class CancelBook:
    """The run-control bucket, kept in memory by watching it: which runs were asked to cancel.

    A run start looks here instead of asking the bucket (no round trip); a cancel recorded
    for a run this executor already holds is handed to ``on_cancel`` as it arrives, so a
    cancel racing a pickup is never lost (the control subject may reach this executor
    before the run does; the bucket's update then comes after it).
    """

    def __init__(self, js: JetStreamContext, bucket: str, on_cancel: Callable[[str, str], None]):
        self.js, self.bucket, self.on_cancel = js, bucket, on_cancel
        self._reasons: dict[str, str] = {}
        self._sub: Subscription | None = None

    def reason(self, key: str) -> str | None:
        """Why the run ``<tenant>.<run_id>`` was asked to cancel, or None."""
        return self._reasons.get(key)

    async def start(self) -> None:
        self._sub = await self.js.subscribe(
            f"$KV.{self.bucket}.>",
            stream=f"KV_{self.bucket}",
            cb=self._on_entry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
            self._sub = None

    async def _on_entry(self, msg: Msg) -> None:
        key = msg.subject.split(".", 2)[2]
        operation = (msg.headers or {}).get("KV-Operation")
        if operation in ("DEL", "PURGE") or not msg.data:
            self._reasons.pop(key, None)
            return
        try:
            request = msgspec.json.decode(msg.data, type=CancelRequest)
        except msgspec.DecodeError:
            request = None
        reason = (request.reason if request is not None else "") or "cancelled"
        self._reasons[key] = reason
        self.on_cancel(key, reason)
