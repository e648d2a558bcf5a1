"""Durable timers (:mod:`flowmesh_proto.timers`): fire each once, when it is due.

A timer not yet due is handed back to JetStream with a delayed ``nak`` (JetStream keeps
it and delivers it again then: the wait costs no process anything, and survives every
restart); one far away is handed back for ``max_hold`` at most and looked at again. A due
timer's request is published with its ``Nats-Msg-Id`` and the timer acked (removed: the
stream is a work queue). A timer that cannot be read is terminated and logged.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg

from flowmesh_proto import headers as h
from flowmesh_proto.subjects import tenant_of
from flowmesh_proto.timers import timer_decoder
from flowmesh_scheduler.firing import Starter
from flowmesh_scheduler.metrics import SchedulerMetrics

log = structlog.get_logger("flowmesh.scheduler.timers")

#: Headers a timer passes on to the request it fires.
_PASSED_ON = (h.TRACEPARENT, h.TRACESTATE)


class Timers:
    def __init__(
        self,
        starter: Starter,
        metrics: SchedulerMetrics,
        *,
        max_hold: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.starter, self.metrics, self.max_hold, self.clock = starter, metrics, max_hold, clock

    async def handle(self, msg: Msg) -> None:
        try:
            timer = timer_decoder.decode(msg.data)
            if timer.tenant != tenant_of(msg.subject) or timer.request.tenant != timer.tenant:
                raise ValueError("the timer's tenant is not its subject's")
        except (msgspec.DecodeError, ValueError) as exc:
            log.error("timer.refused", subject=msg.subject, error=str(exc))
            with contextlib.suppress(nats.errors.Error):
                await msg.term()
            return
        remaining = (timer.due - self.clock()).total_seconds()
        if remaining > 0:
            self.metrics.timers_held.inc()
            await msg.nak(delay=min(remaining, self.max_hold))
            return
        given = msg.headers or {}
        headers = {name: given[name] for name in _PASSED_ON if name in given}
        await self.starter.request(timer.request, timer.request_msg_id, headers)
        await msg.ack()
        self.metrics.fires.labels("timer").inc()
        self.metrics.fire_lateness.labels("timer").observe(max(0.0, -remaining))
        log.info(
            "timer.fired",
            tenant=timer.tenant,
            timer=timer.id,
            purpose=timer.purpose,
            run_id=timer.request.run_id,
            late_ms=round(-remaining * 1000, 1),
        )
