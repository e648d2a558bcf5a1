"""Event triggers: each event on ``FM_EVENTS`` starts a run of every trigger it matches.

An event matches a tenant's trigger when its type is the trigger's ``event`` and the
trigger's ``filter`` (CEL over ``event``, the envelope) is exactly true. The run's
``trigger`` is ``{kind: event, trigger_id, data: <the event's data>, event: <the
envelope>}`` and its input the event's data. An event is ``(tenant of its subject, id)``: a
stored copy of one the event-ids ledger already counts (a publisher sent it again within a
day) is acked and does nothing, whatever its ``Nats-Msg-Id`` (docs/events.md). The run is
named ``event:<workflow>:<trigger>:<event id>``, so an event delivered twice (a replica died
before acking it) starts one run: the run id is derived from that name and the
event's ``time`` (the message's stream time when it has none), and the first one made for
the name is claimed in the idempotency bucket. Events of a tenant only ever start
that tenant's workflows: the tenant is the event subject's, and an envelope naming
another tenant is refused. The same event also wakes the tenant's parked
``wait_for_event`` steps it matches (:mod:`.waits`).
"""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg

from flowmesh_proto.events import event_decoder
from flowmesh_proto.msgids import event_fire_name
from flowmesh_proto.runs import TriggerInfo
from flowmesh_proto.subjects import SubjectError, tenant_of
from flowmesh_scheduler.catalogue import ArmedEvent, Catalogue
from flowmesh_scheduler.firing import Fire, Starter
from flowmesh_scheduler.matching import event_view
from flowmesh_scheduler.metrics import SchedulerMetrics
from flowmesh_scheduler.waits import EventWaits
from flowmesh_shared.event_ids import EventIds
from flowmesh_shared.expressions import DEFAULT_BUDGET, Meter
from flowmesh_shared.turns import Turns

log = structlog.get_logger("flowmesh.scheduler.events")


class EventTriggers:
    def __init__(
        self,
        catalogue: Catalogue,
        starter: Starter,
        metrics: SchedulerMetrics,
        prefix: str,
        ids: EventIds,
        waits: EventWaits | None = None,
        budget: float = DEFAULT_BUDGET,
        turns: Turns | None = None,
    ) -> None:
        self.budget = budget
        self.turns = Turns(budget) if turns is None else turns
        self.catalogue, self.starter, self.metrics = catalogue, starter, metrics
        self.ids, self.waits = ids, waits
        self._head = f"{prefix}."

    async def handle(self, msg: Msg) -> None:
        try:
            tenant = tenant_of(msg.subject)
            envelope = event_decoder.decode(msg.data)
            if envelope.tenant != tenant:
                raise ValueError("the event's tenant is not its subject's")
            if msg.subject != f"{self._head}{tenant}.events.{envelope.type}":
                raise ValueError("the event's type is not its subject's")
        except (msgspec.DecodeError, ValueError, SubjectError, UnicodeDecodeError) as exc:
            log.warning("event.refused", subject=msg.subject, error=str(exc))
            self.metrics.events.labels("refused").inc()
            with contextlib.suppress(nats.errors.Error):
                await msg.term()
            return
        if await self.ids.is_copy(tenant, envelope.id, msg.metadata.sequence.stream):
            log.info("event.copy_ignored", tenant=tenant, event_id=envelope.id)
            self.metrics.events.labels("copy").inc()
            await msg.ack()
            return
        published = _published_at(msg)
        view = event_view(envelope)
        matched = await self._matching(tenant, envelope.type, view)
        for armed in matched:
            await self._start(armed, envelope.id, envelope.time or published, view, published)
        if self.waits is not None:
            await self.waits.on_event(envelope, tenant)
        await msg.ack()
        self.metrics.events.labels("matched" if matched else "unmatched").inc()

    async def _matching(
        self, tenant: str, event_type: str, view: dict[str, Any]
    ) -> list[ArmedEvent]:
        """The triggers ``view`` fires. Each filter has a budget of its own; one over it is
        no match (counted), and each takes its turn at the loop (:class:`Turns`), so no
        event of many costly filters, nor many events at once, hold it."""
        matched: list[ArmedEvent] = []
        for armed in self.catalogue.event_triggers(tenant, event_type):
            if armed.filter is None:
                matched.append(armed)
                continue
            meter = Meter(self.budget)
            await self.turns.take()
            verdict = armed.filter.matches(view, meter)
            self.turns.spend(meter.spent)
            if verdict == "yes":
                matched.append(armed)
            elif verdict == "over_budget":
                self.metrics.over_budget.labels("filter").inc()
                log.warning(
                    "event.filter_over_budget",
                    tenant=tenant,
                    workflow_id=armed.workflow_id,
                    trigger=armed.trigger_id,
                )
        return matched

    async def _start(
        self,
        armed: ArmedEvent,
        event_id: str,
        at: datetime,
        view: dict[str, object],
        published: datetime,
    ) -> None:
        trigger = TriggerInfo(
            kind="event", trigger_id=armed.trigger_id, data=view.get("data"), event=view
        )
        fire = Fire(
            tenant=armed.tenant,
            workflow_id=armed.workflow_id,
            version=armed.version,
            name=event_fire_name(armed.workflow_id, armed.trigger_id, event_id),
            at=at,
            trigger=trigger,
            input=view.get("data"),
        )
        run_id = await self.starter.start(fire, claim=True)
        lateness = (datetime.now(UTC) - published).total_seconds()
        self.metrics.fires.labels("event").inc()
        self.metrics.fire_lateness.labels("event").observe(max(0.0, lateness))
        log.info(
            "event.matched",
            trigger=armed.key,
            event_id=event_id,
            run_id=run_id,
            since_published_ms=round(lateness * 1000, 1),
            since_event_time_ms=round((datetime.now(UTC) - at).total_seconds() * 1000, 1),
        )


def _published_at(msg: Msg) -> datetime:
    try:
        return msg.metadata.timestamp
    except (nats.errors.Error, AttributeError, ValueError):
        return datetime.now(UTC)
