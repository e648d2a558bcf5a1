"""Parked ``wait_for_event`` steps: their runs are asked for again when a matching event
arrives.

The executor keeps a parked step's wait in the event-waits bucket
(:class:`flowmesh_proto.timers.EventWait`); every scheduler replica watches the bucket and
indexes the waits by ``(tenant, event type)``. An event (taken from FM_EVENTS by one
replica, with the event triggers) wakes each wait it matches: the run's request is
published with ``Nats-Msg-Id: resume:<run_id>:<node_id>:<parked_at>:<event id>`` (one
wake per parking) and the wait deleted.
Only the copy of an event the event-ids ledger counts wakes anything (a copy stored again
is ignored, :mod:`.events`). A wait that appears is also checked against the events already
stored since its step started (an event may have come between the step's last look and its
parking), so no wake-up is lost. The resumed step finds the event itself; a wait left
behind (its run ended) wakes nothing but a request the executor acks at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from nats.js.kv import KeyValue

from flowmesh_proto.events import EventEnvelope, event_decoder
from flowmesh_proto.msgids import event_resume_msg_id
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.timers import EventWait, event_wait_decoder, event_wait_key
from flowmesh_scheduler.firing import Starter
from flowmesh_scheduler.matching import Verdict, holds
from flowmesh_scheduler.metrics import SchedulerMetrics
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.expressions import DEFAULT_BUDGET, Meter
from flowmesh_shared.turns import Turns

log = structlog.get_logger("flowmesh.scheduler.waits")


def matches(wait: EventWait, event: dict[str, Any], meter: Meter) -> Verdict:
    """Whether ``event`` (the envelope as plain values) ends ``wait``; an error is no."""
    if wait.match is None:
        return "yes"
    return holds(wait.match, {**wait.variables, "event": event}, meter)


class EventWaits:
    def __init__(
        self,
        js: JetStreamContext,
        bucket: KeyValue,
        bucket_name: str,
        subjects: Subjects,
        streams: StreamNames,
        starter: Starter,
        metrics: SchedulerMetrics,
        ids: EventIds,
        budget: float = DEFAULT_BUDGET,
        turns: Turns | None = None,
    ) -> None:
        self.ids, self.budget = ids, budget
        self.turns = Turns(budget) if turns is None else turns
        self.js, self.bucket, self.bucket_name = js, bucket, bucket_name
        self.subjects, self.streams = subjects, streams
        self.starter, self.metrics = starter, metrics
        self._by_type: dict[tuple[str, str], dict[str, EventWait]] = defaultdict(dict)
        self._sub: Subscription | None = None
        self._checks: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self.js.subscribe(
            f"$KV.{self.bucket_name}.>",
            stream=f"KV_{self.bucket_name}",
            cb=self._on_entry,
            ordered_consumer=True,
            deliver_policy=DeliverPolicy.LAST_PER_SUBJECT,
        )

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        for task in list(self._checks):
            task.cancel()

    def __len__(self) -> int:
        return sum(len(waits) for waits in self._by_type.values())

    async def _on_entry(self, msg: Msg) -> None:
        key = msg.subject.split(".", 2)[2]
        operation = (msg.headers or {}).get("KV-Operation")
        if operation in ("DEL", "PURGE") or not msg.data:
            for waits in self._by_type.values():
                waits.pop(key, None)
            return
        try:
            wait = event_wait_decoder.decode(msg.data)
            if event_wait_key(wait.tenant, wait.run_id, wait.node_id) != key:
                raise ValueError("the wait's key is not its run's")
        except (msgspec.DecodeError, ValueError) as exc:
            log.warning("wait.unreadable", key=key, error=str(exc))
            return
        self._by_type[(wait.tenant, wait.event)][key] = wait
        task = asyncio.create_task(self._check_stored(key, wait))
        self._checks.add(task)
        task.add_done_callback(self._checks.discard)

    async def on_event(self, envelope: EventEnvelope, tenant: str) -> int:
        """Wake every wait ``envelope`` ends; how many were woken."""
        waits = self._by_type.get((tenant, envelope.type))
        if not waits:
            return 0
        event = msgspec.to_builtins(envelope)
        woken = 0
        for key, wait in list(waits.items()):
            if await self._matches(wait, event):
                await self._wake(key, wait, envelope.id)
                woken += 1
        return woken

    async def _matches(self, wait: EventWait, event: dict[str, Any]) -> bool:
        """``matches``, in its turn at the loop (:class:`Turns`)."""
        meter = Meter(self.budget)
        await self.turns.take()
        verdict = matches(wait, event, meter)
        self.turns.spend(meter.spent)
        if verdict == "over_budget":
            self.metrics.over_budget.labels("wait").inc()
            log.warning("wait.match_over_budget", run_id=wait.run_id, node_id=wait.node_id)
        return verdict == "yes"

    async def _wake(self, key: str, wait: EventWait, event_id: str) -> None:
        msg_id = event_resume_msg_id(wait.run_id, wait.node_id, wait.parked_at, event_id)
        await self.starter.request(wait.request, msg_id)
        for waits in self._by_type.values():
            waits.pop(key, None)
        with contextlib.suppress(Exception):
            await self.bucket.delete(key)
        self.metrics.fires.labels("wait").inc()
        log.info("wait.woken", run_id=wait.run_id, node_id=wait.node_id, event_id=event_id)

    async def _check_stored(self, key: str, wait: EventWait) -> None:
        """Wake ``wait`` if a matching event is already stored (since its step started)."""
        try:
            sub = await self.js.subscribe(
                self.subjects.events(wait.tenant, wait.event),
                stream=self.streams.events,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.BY_START_TIME,
                config=ConsumerConfig(opt_start_time=wait.since),
            )
        except Exception as exc:
            log.warning("wait.check_failed", key=key, error=str(exc))
            return
        try:
            while True:
                if sub.pending_msgs == 0 and (await sub.consumer_info()).num_pending == 0:
                    return
                msg = await sub.next_msg(timeout=5.0)
                try:
                    envelope = event_decoder.decode(msg.data)
                except msgspec.DecodeError:
                    continue
                if envelope.tenant != wait.tenant:
                    continue
                if await self._matches(wait, msgspec.to_builtins(envelope)):
                    seq = msg.metadata.sequence.stream
                    if await self.ids.is_copy(wait.tenant, envelope.id, seq):
                        continue
                    if key in self._by_type.get((wait.tenant, wait.event), {}):
                        await self._wake(key, wait, envelope.id)
                    return
        except Exception as exc:  # the timer still resumes the run: log, do not fail
            log.warning("wait.check_failed", key=key, error=str(exc))
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
