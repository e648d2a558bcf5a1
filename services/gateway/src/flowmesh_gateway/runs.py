"""Runs as NATS holds them: the gateway starts, reads, awaits and cancels them here.

- **Start** (DESIGN sections 3 and 5): ``run.queued`` on the run's subject, fenced on an
  empty subject (``Nats-Expected-Last-Subject-Sequence: 0``, ``Nats-Msg-Id:
  queued:<run_id>``), then the :class:`RunRequest` on the tenant's request subject
  (``Nats-Msg-Id: <run_id>``, ``traceparent``). Whoever finds the subject taken sends no
  request: one run, one request.
- **Idempotency keys**: the bucket maps ``<tenant>.<workflow_id>.<sha256 of the key>`` to a
  run id (24 h); ``create`` decides who owns a key. A later request with the key finishes a
  start that failed halfway (:meth:`Runs.resume_start`), so a 503 followed by a retry with
  the same key never leaves a run id that does not run.
- **Delayed runs** (``delay``/``run_at``): ``run.scheduled`` instead of ``run.queued``
  (fenced the same way), then a :class:`~flowmesh_proto.timers.Timer` on the tenant's
  timer subject (``Nats-Msg-Id: timer:<run_id>``) holding the request; the scheduler
  publishes the request when it is due.
- **Cancel**: the :class:`CancelRequest` is put in the run-control bucket (read by the
  executor that next picks the run up), then published on the run's control subject. A
  run that is only scheduled is cancelled at once: ``run.cancelled`` is published fenced
  on its ``run.scheduled``, and when its timer fires the executor finds it finished.

Every NATS failure becomes :class:`Unavailable` (503).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from flowmesh_gateway.settings import GatewaySettings
from flowmesh_proto import headers as h
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.msgids import (
    idempotency_key,
    opening_msg_id,
    request_msg_id,
    timer_msg_id,
    wake_msg_id,
)
from flowmesh_proto.runs import (
    TERMINAL_RUN_KINDS,
    CancelRequest,
    RunCancelled,
    RunEvent,
    RunQueued,
    RunRequest,
    RunScheduled,
    RunStatus,
    control_key,
    final_status,
    request_of,
    run_event_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects, stream_names
from flowmesh_proto.timers import Timer
from flowmesh_shared import telemetry
from flowmesh_shared.errors import FlowmeshError, Unavailable
from flowmesh_shared.jetstream import (
    CONTROL_TTL,
    IDEMPOTENCY_TTL,
    WRONG_LAST_SEQUENCE,
    ensure_bucket,
)

#: Seconds a tenant's count of queued runs is used again (see ``Runs.queued``).
QUEUED_FRESH = 0.1
#: Tenants whose counts are kept at once (all are forgotten past it).
QUEUED_TENANTS = 10_000

log = structlog.get_logger("flowmesh.gateway.runs")


_encoder = msgspec.json.Encoder()


class _Kind(msgspec.Struct):
    kind: str = ""


_kind_decoder = msgspec.json.Decoder(_Kind)


class LastEvent(msgspec.Struct, frozen=True):
    """A run's latest event and its stream sequence."""

    event: RunEvent
    seq: int

    @property
    def final_status(self) -> RunStatus | None:
        """The run's status if this event ended it, else None."""
        return final_status(self.event)


class Claim(msgspec.Struct, frozen=True):
    """Whose run an idempotency key names: ``new`` when this request took the key."""

    run_id: str
    new: bool
    #: The key's revision in the bucket when this request took it (0 otherwise).
    revision: int = 0


#: How long a live terminal event may wait for the stream to hold it (seconds, in turn).
_SETTLE_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)


class Runs:
    """The gateway's side of runs on NATS (one per process)."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        subjects: Subjects,
        streams: StreamNames,
        control: KeyValue,
        keys: KeyValue,
        *,
        read_timeout: float,
        max_message_bytes: int,
    ) -> None:
        self._nc, self._js = nc, js
        self._subjects, self._streams = subjects, streams
        self._control, self._keys = control, keys
        self._read_timeout = read_timeout
        self._max_message_bytes = max_message_bytes
        self._queued: dict[str, tuple[float, int]] = {}  # tenant: (when counted, count)

    @classmethod
    async def open(cls, nc: Client, settings: GatewaySettings) -> Runs:
        """Runs over ``nc``, with the run-control and idempotency buckets made if missing."""
        js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout)
        streams = stream_names(settings.stream_prefix)
        control = await ensure_bucket(js, streams.run_control, CONTROL_TTL, settings.streams)
        keys = await ensure_bucket(js, streams.idempotency, IDEMPOTENCY_TTL, settings.streams)
        limit = settings.streams.max_msg_size
        return cls(
            nc,
            js,
            Subjects(settings.subject_prefix),
            streams,
            control,
            keys,
            read_timeout=settings.rpc_timeout,
            max_message_bytes=min(nc.max_payload, limit) if limit > 0 else nc.max_payload,
        )

    # --- starting ---

    async def claim(self, tenant: str, workflow_id: str, key: str, run_id: str) -> Claim:
        """Take ``key`` for ``run_id``, or learn which run already holds it."""
        name = idempotency_key(tenant, workflow_id, key)
        with _unavailable("the idempotency key"):
            try:
                revision = await self._keys.create(name, run_id.encode())
                return Claim(run_id, new=True, revision=revision)
            except js_errors.KeyWrongLastSequenceError:
                entry = await self._keys.get(name)
        return Claim((entry.value or b"").decode(errors="replace"), new=False)

    async def unclaim(self, tenant: str, workflow_id: str, key: str, claim: Claim) -> None:
        """Give back a key this request took and will not start a run for (a refusal)."""
        name = idempotency_key(tenant, workflow_id, key)
        with _unavailable("the idempotency key"), suppress(js_errors.KeyWrongLastSequenceError):
            await self._keys.delete(name, last=claim.revision)

    async def start(self, request: RunRequest, queued: RunQueued) -> None:
        """Publish ``queued`` and then ``request``; nothing when the run already has events."""
        payload = self._payload(request)
        if await self._open(queued, "queued"):
            await self._request(request.tenant, request.run_id, payload)
            log.info("run.queued", run_id=request.run_id, workflow=request.workflow_id)

    async def schedule(self, request: RunRequest, scheduled: RunScheduled) -> None:
        """Publish ``scheduled``, then the timer that sends ``request`` at ``run_at``;
        nothing when the run already has events."""
        if await self._open(scheduled, "scheduled"):
            await self._timer(request, scheduled.run_at)
            log.info("run.scheduled", run_id=request.run_id, run_at=scheduled.run_at.isoformat())

    async def _open(self, first: RunQueued | RunScheduled, kind: str) -> bool:
        """Publish a run's first event, fenced on an empty subject (``Nats-Msg-Id:
        <kind>:<run_id>``); False when the run already has events (someone started it)."""
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: opening_msg_id(first)}
        subject = self._subjects.run_events(first.tenant, first.run_id)
        with _unavailable(f"the run's {kind} event"):
            try:
                await self._js.publish(
                    subject, self._payload(first), stream=self._streams.run_events, headers=headers
                )
            except js_errors.BadRequestError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                log.info("run.already_started", run_id=first.run_id)
                return False
        return True

    async def _timer(self, request: RunRequest, due: datetime) -> None:
        timer = Timer(
            id=request.run_id,
            tenant=request.tenant,
            purpose="delayed_run",
            due=due,
            request=request,
            request_msg_id=request_msg_id(request.run_id),
        )
        headers = telemetry.inject({h.MSG_ID: timer_msg_id(request.run_id)})
        with _unavailable("the run's timer"):
            await self._js.publish(
                self._subjects.timers(request.tenant, "delayed_run"),
                self._payload(timer),
                stream=self._streams.timers,
                headers=headers,
            )

    async def resume_start(self, request: RunRequest, first: RunQueued | RunScheduled) -> None:
        """Make sure the run ``request`` names was started: start it if it has no event, and
        send its request (or timer) again, deduplicated by its id, while it is only queued
        (or scheduled)."""
        last = await self.last(request.tenant, request.run_id)
        if last is None:
            if isinstance(first, RunScheduled):
                await self.schedule(request, first)
            else:
                await self.start(request, first)
        elif isinstance(last.event, RunQueued):
            again = request_of(last.event, request.idempotency_key)
            await self._request(again.tenant, again.run_id, self._payload(again))
        elif isinstance(last.event, RunScheduled):
            again = request_of(last.event, request.idempotency_key)
            await self._timer(again, last.event.run_at)

    async def cancel_scheduled(self, last: LastEvent, request: CancelRequest) -> bool:
        """End a run that is only scheduled (``run.cancelled`` fenced on its
        ``run.scheduled``); False when it moved on meanwhile (cancel it the usual way)."""
        event = last.event
        cancelled = RunCancelled(
            tenant=event.tenant,
            run_id=event.run_id,
            workflow_id=event.workflow_id,
            version=event.version,
            at=request.at or datetime.now(UTC),
            reason=request.reason,
        )
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last.seq)}
        with _unavailable("the run's cancelled event"):
            try:
                await self._js.publish(
                    self._subjects.run_events(event.tenant, event.run_id),
                    self._payload(cancelled),
                    stream=self._streams.run_events,
                    headers=headers,
                )
            except js_errors.BadRequestError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                return False
        log.info("run.cancelled_before_start", run_id=event.run_id, by=request.by)
        return True

    async def _request(self, tenant: str, run_id: str, payload: bytes) -> None:
        headers = telemetry.inject({h.MSG_ID: request_msg_id(run_id)})
        with _unavailable("the run request"):
            await self._js.publish(
                self._subjects.run_requests(tenant),
                payload,
                stream=self._streams.run_requests,
                headers=headers,
            )

    def _payload(self, message: msgspec.Struct) -> bytes:
        payload = _encoder.encode(message)
        if len(payload) > self._max_message_bytes:
            raise FlowmeshError(
                ErrorCode.PAYLOAD_TOO_LARGE,
                f"the run's messages would be {len(payload)} bytes; NATS takes at most "
                f"{self._max_message_bytes}: make the input smaller",
            )
        return payload

    # --- counting ---

    async def queued(self, tenant: str) -> int:
        """The tenant's runs requested and not yet finished: its messages in the run-request
        work queue (an executor holds a run's request until the run ends; a parked run's
        is acked, and counted again when it wakes) plus its delayed runs' timers.

        A count is used again for :data:`QUEUED_FRESH` seconds, plus the runs this gateway
        started meanwhile (:meth:`started`): a burst of executes asks JetStream once, not
        twice per run (runs that finish meanwhile are still counted: it errs on refusing).
        """
        known = self._queued.get(tenant)
        now = time.monotonic()
        if known is not None and now - known[0] < QUEUED_FRESH:
            return known[1]
        counts = (
            (self._streams.run_requests, self._subjects.run_requests(tenant)),
            (self._streams.timers, self._subjects.timers(tenant, "delayed_run")),
        )
        with _unavailable("the tenant's queued runs"):
            infos = await asyncio.gather(
                *(self._js.stream_info(name, subjects_filter=subject) for name, subject in counts)
            )
        found = sum(sum((info.state.subjects or {}).values()) for info in infos)
        if len(self._queued) >= QUEUED_TENANTS:
            self._queued.clear()
        self._queued[tenant] = (now, found)
        return found

    def started(self, tenant: str) -> None:
        """One more run of ``tenant`` queued by this gateway (see :meth:`queued`)."""
        known = self._queued.get(tenant)
        if known is not None:
            self._queued[tenant] = (known[0], known[1] + 1)

    # --- reading ---

    async def last(self, tenant: str, run_id: str) -> LastEvent | None:
        """The run's latest event, None for a run that has none (an unknown run)."""
        subject = self._subjects.run_events(tenant, run_id)
        with _unavailable("the run's events"):
            try:
                msg = await self._js.get_last_msg(self._streams.run_events, subject, direct=True)
            except js_errors.NotFoundError:
                # A direct get answers 404 for a subject with no message; a missing stream
                # has no responder at all (a 503).
                return None
            return LastEvent(run_event_decoder.decode(msg.data or b""), msg.seq or 0)

    async def replay(self, tenant: str, run_id: str, upto: int) -> list[RunEvent]:
        """The run's events in order, up to the stream sequence ``upto``."""
        subject = self._subjects.run_events(tenant, run_id)
        events: list[RunEvent] = []
        seq = 0
        with _unavailable("the run's events"):
            sub = await self._js.subscribe(
                subject,
                stream=self._streams.run_events,
                ordered_consumer=True,
                deliver_policy=DeliverPolicy.ALL,
            )
            try:
                while seq < upto:
                    msg = await sub.next_msg(timeout=self._read_timeout)
                    seq = msg.metadata.sequence.stream
                    events.append(run_event_decoder.decode(msg.data))
            finally:
                await sub.unsubscribe()
        return events

    async def finished(self, tenant: str, run_id: str) -> list[RunEvent] | None:
        """The events of a finished run, None while it has not finished."""
        last = await self.last(tenant, run_id)
        if last is None or last.final_status is None:
            return None
        return await self.replay(tenant, run_id, last.seq)

    async def wait(
        self,
        tenant: str,
        run_id: str,
        seconds: float,
        start: Callable[[], Awaitable[None]],
        *,
        check_first: bool,
    ) -> list[RunEvent] | None:
        """Watch the run's subject, call ``start``, then wait up to ``seconds`` for the run to
        finish: its events, or None if it has not. ``check_first`` for a run that may have
        finished before the watch began.

        A terminal event seen live only wakes the wait: the stream decides (a stale
        executor's fenced-out publish reaches subscribers too, though the stream refused it).
        """
        loop = asyncio.get_running_loop()
        with _unavailable("the run's events"):
            sub = await self._nc.subscribe(self._subjects.run_events(tenant, run_id))
        try:
            await start()
            deadline = loop.time() + seconds
            if check_first and (events := await self.finished(tenant, run_id)) is not None:
                return events
            while (remaining := deadline - loop.time()) > 0:
                try:
                    msg = await sub.next_msg(timeout=remaining)
                except nats.errors.TimeoutError:
                    break
                if _kind(msg.data) in TERMINAL_RUN_KINDS:
                    # Core subscribers may see a message before the stream has stored it:
                    # ask the stream again for a moment before going back to waiting.
                    for pause in _SETTLE_PAUSES:
                        events = await self.finished(tenant, run_id)
                        if events is not None or loop.time() + pause > deadline:
                            break
                        await asyncio.sleep(pause)
                    if events is not None:
                        return events
            return await self.finished(tenant, run_id)  # a message missed is not a run missed
        finally:
            with suppress(nats.errors.Error):
                await sub.unsubscribe()

    # --- cancelling ---

    async def cancel(self, request: CancelRequest) -> None:
        """Record the cancel for whoever picks the run up next, then tell whoever holds it."""
        payload = _encoder.encode(request)
        with _unavailable("the cancel request"):
            await self._control.put(control_key(request.tenant, request.run_id), payload)
            await self._nc.publish(self._subjects.control(request.tenant, request.run_id), payload)
        log.info("run.cancel_requested", run_id=request.run_id, by=request.by)

    async def wake(self, last: LastEvent) -> None:
        """Ask for a run that has started again (``Nats-Msg-Id: wake:<run_id>:<last seq>``):
        a parked run (no executor holds it while it waits on a timer) is picked up now and
        sees its cancel; a run an executor holds keeps it, and the extra request is acked
        once the run has ended."""
        event = last.event
        subject = self._subjects.run_events(event.tenant, event.run_id)
        with _unavailable("the run's first event"):
            try:
                first = await self._js.get_msg(
                    self._streams.run_events, seq=1, subject=subject, next=True, direct=True
                )
            except js_errors.NotFoundError:
                return
            opened = run_event_decoder.decode(first.data or b"")
        if not isinstance(opened, RunQueued | RunScheduled):
            return
        request = request_of(opened)
        headers = telemetry.inject({h.MSG_ID: wake_msg_id(event.run_id, last.seq)})
        with _unavailable("the run request"):
            await self._js.publish(
                self._subjects.run_requests(event.tenant),
                self._payload(request),
                stream=self._streams.run_requests,
                headers=headers,
            )


def _kind(data: bytes) -> str:
    try:
        return _kind_decoder.decode(data).kind
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """NATS and JetStream failures as 503 problems naming ``what`` was being read or sent."""
    try:
        yield
    except FlowmeshError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("run.event_undecodable", what=what, error=str(exc))
        raise Unavailable(f"{what}: a message on the run's subject cannot be read") from exc
    except js_errors.APIError as exc:
        log.warning("jetstream.refused", what=what, error=repr(exc))
        raise Unavailable(f"JetStream cannot serve {what} now: {exc.description}") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("nats.unavailable", what=what, error=repr(exc))
        raise Unavailable(f"NATS JetStream did not answer in time ({what})") from exc
