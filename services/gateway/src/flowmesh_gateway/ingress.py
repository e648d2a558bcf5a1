"""Tenants' own events over NATS: the ingress (``<prefix>.*.ingress.>``).

A tenant's account maps what its publishers send on ``<prefix>.<t>.events.<type>`` to
``<prefix>.<t>.ingress.<type>`` in the services' account, where no stream captures it
(``deploy/nats``). Every gateway replica subscribes in the queue group ``gateway-ingress``,
so each event reaches one of them. The tenant is the subject's (the account's import
guarantees it); the event is checked (:func:`admit`: its size, its envelope), stored by
:class:`~flowmesh_gateway.events.EventPublisher` once per ``(tenant, id)``, as ``POST
/events`` stores one, and a request is answered as JetStream would answer it: an
:class:`~flowmesh_proto.events.EventStored` (``duplicate`` when the tenant sent the id
already) or an :class:`~flowmesh_proto.events.EventRefused`, so ``js.publish`` of nats-py
works unchanged. A plain publish gets no answer (a refused one is logged and counted).

None of the publisher's ``Nats-*`` headers is passed on: a ``Nats-Msg-Id`` would be
JetStream's deduplication id again, shared by every tenant of the stream, and others
(rollups, TTLs, expected sequences) act on the stream, not on the tenant's event.
``Nats-Expected-Stream`` is checked as JetStream would check it.

Bounds: one replica stores at most ``ingress_max_in_flight`` events at once, and at most
``ingress_tenant_max_in_flight`` of one tenant; an event past either is refused at once
(503, send it again), so a tenant's flood never holds another tenant's event behind it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Mapping

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from prometheus_client import CollectorRegistry
from prometheus_client import Counter as Metric

from flowmesh_gateway.events import EventPublisher
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.events import (
    EventEnvelope,
    EventProblem,
    EventRefused,
    EventStored,
    IngressError,
    checked_event,
)
from flowmesh_proto.subjects import SubjectError, Subjects
from flowmesh_shared.errors import FlowmeshError

log = structlog.get_logger("flowmesh.gateway.ingress")

#: The queue group every gateway replica's ingress subscription joins.
QUEUE = "gateway-ingress"
_EXPECTED_STREAM = "nats-expected-stream"
_encoder = msgspec.json.Encoder()


class Admitted(msgspec.Struct, frozen=True, kw_only=True):
    """An event to store: its envelope, its payload as sent, the headers passed on."""

    envelope: EventEnvelope
    payload: bytes
    headers: dict[str, str]


def refusal(code: ErrorCode, status: int, description: str) -> IngressError:
    return IngressError(code=status, err_code=code.num, description=description)


def admit(
    subjects: Subjects,
    subject: str,
    headers: Mapping[str, str],
    payload: bytes,
    *,
    max_bytes: int,
    stream: str,
) -> Admitted | IngressError:
    """PURE: what to do with ``payload`` received on the ingress ``subject``."""
    if len(payload) > max_bytes:
        return refusal(
            ErrorCode.PAYLOAD_TOO_LARGE,
            400,
            f"the event is {len(payload)} bytes; at most {max_bytes} are taken",
        )
    expected = next((v for k, v in headers.items() if k.lower() == _EXPECTED_STREAM), None)
    if expected is not None and expected != stream:
        return refusal(ErrorCode.VALIDATION_FAILED, 400, "expected stream does not match")
    try:
        tenant, event_type = subjects.ingress_event(subject)
        envelope = checked_event(tenant, event_type, payload)
    except (SubjectError, EventProblem) as exc:
        return refusal(ErrorCode.VALIDATION_FAILED, 400, str(exc))
    kept = {k: v for k, v in headers.items() if not k.lower().startswith("nats-")}
    return Admitted(envelope=envelope, payload=payload, headers=kept)


class IngressMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.events = Metric(
            "flowmesh_gateway_ingress_events",
            "Events tenants' publishers sent over NATS, by outcome "
            "(stored, duplicate, refused, busy, unavailable)",
            ["outcome"],
            registry=registry,
        )


class EventIngress:
    """The ingress subscription of one gateway replica and the events it is storing."""

    def __init__(
        self,
        nc: Client,
        subjects: Subjects,
        events: EventPublisher,
        metrics: IngressMetrics,
        *,
        max_bytes: int,
        max_in_flight: int,
        tenant_max_in_flight: int,
    ) -> None:
        self._nc, self._subjects, self._events, self._metrics = nc, subjects, events, metrics
        self._max_bytes = max_bytes
        self._max_in_flight, self._tenant_max_in_flight = max_in_flight, tenant_max_in_flight
        self._running: set[asyncio.Task[None]] = set()
        self._per_tenant: Counter[str] = Counter()
        self._subscription: Subscription | None = None

    async def start(self) -> None:
        self._subscription = await self._nc.subscribe(
            self._subjects.all_ingress, queue=QUEUE, cb=self._take
        )
        log.info("ingress.listening", subject=self._subjects.all_ingress, queue=QUEUE)

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109
        """Take no more events; let those being stored finish for ``timeout`` seconds."""
        if self._subscription is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._subscription.unsubscribe()
            self._subscription = None
        if not self._running:
            return
        _, late = await asyncio.wait(set(self._running), timeout=timeout)
        for task in late:
            task.cancel()
        log.info("ingress.stopped", cancelled=len(late))

    async def _take(self, msg: Msg) -> None:
        """Runs in the subscription's one reader: decides at once, stores in a task."""
        tenant = msg.subject.split(".", 2)[1] if msg.subject.count(".") >= 2 else ""
        if (
            len(self._running) >= self._max_in_flight
            or self._per_tenant[tenant] >= self._tenant_max_in_flight
        ):
            self._metrics.events.labels("busy").inc()
            log.warning("ingress.busy", tenant=tenant, in_flight=len(self._running))
            busy = "too many events in flight; send it again"
            await self._answer(msg, refusal(ErrorCode.RATE_LIMITED, 503, busy))
            return
        self._per_tenant[tenant] += 1
        task = asyncio.create_task(self._handle(msg))
        self._running.add(task)

        def done(finished: asyncio.Task[None]) -> None:
            self._running.discard(finished)
            self._per_tenant[tenant] -= 1
            if self._per_tenant[tenant] <= 0:
                del self._per_tenant[tenant]

        task.add_done_callback(done)

    async def _handle(self, msg: Msg) -> None:
        decision = admit(
            self._subjects,
            msg.subject,
            msg.headers or {},
            msg.data,
            max_bytes=self._max_bytes,
            stream=self._events.stream,
        )
        if isinstance(decision, IngressError):
            self._metrics.events.labels("refused").inc()
            log.info("ingress.refused", subject=msg.subject, error=decision.description)
            await self._answer(msg, decision)
            return
        envelope = decision.envelope
        try:
            seq, stored = await self._events.store(envelope, decision.payload, decision.headers)
        except FlowmeshError as exc:
            outcome = "refused" if exc.code is ErrorCode.PAYLOAD_TOO_LARGE else "unavailable"
            self._metrics.events.labels(outcome).inc()
            status = 400 if outcome == "refused" else 503
            await self._answer(msg, refusal(exc.code, status, exc.detail))
            return
        self._metrics.events.labels("stored" if stored else "duplicate").inc()
        await self._answer(
            msg, EventStored(stream=self._events.stream, seq=seq, duplicate=not stored)
        )

    async def _answer(self, msg: Msg, answer: EventStored | IngressError) -> None:
        if not msg.reply:
            return
        body = answer if isinstance(answer, EventStored) else EventRefused(error=answer)
        try:
            await self._nc.publish(msg.reply, _encoder.encode(body))
        except nats.errors.Error as exc:
            log.warning("ingress.answer_failed", subject=msg.subject, error=repr(exc))
