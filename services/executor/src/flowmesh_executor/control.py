"""Asking about and cancelling other runs (concurrency ``cancel_in_progress`` and leak
guards) through the run lifecycle, the same way the gateway cancels and wakes; and the
cancels recorded in the run-control bucket, kept in memory (:class:`CancelBook`).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy

from flowmesh_proto.msgids import rerequest_msg_id
from flowmesh_proto.runs import CancelRequest
from flowmesh_shared.runlife import RunLifecycle


class RunControl:
    """Other runs, named by their run-control key (``<tenant>.<run_id>``)."""

    def __init__(self, life: RunLifecycle) -> None:
        self.life = life

    async def finished(self, key: str) -> bool:
        """Whether the run named by ``key`` has its terminal event."""
        tenant, _, run_id = key.partition(".")
        last = await self.life.last(tenant, run_id)
        return last is None or last.final_status is not None  # no such run: it holds nothing

    async def wake(self, key: str, why: str) -> None:
        """Ask for the run named by ``key`` again (a parked run waiting for a slot): its
        request, rebuilt from its opening, with ``Nats-Msg-Id: <why>:<run_id>``."""
        tenant, _, run_id = key.partition(".")
        await self.life.wake(tenant, run_id, rerequest_msg_id(why, run_id), trace={})

    async def cancel(self, key: str, reason: str) -> None:
        tenant, _, run_id = key.partition(".")
        request = CancelRequest(
            tenant=tenant, run_id=run_id, reason=reason, by="service:executor", at=datetime.now(UTC)
        )
        await self.life.cancel(request)


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
