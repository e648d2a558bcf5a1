"""The run lifecycle on NATS JetStream (:class:`NatsRunLifecycle`): what
:mod:`flowmesh_shared.runlife` says, written with the streams, subjects and buckets of
:mod:`flowmesh_proto.subjects`, the message ids of :mod:`flowmesh_proto.msgids` and the
fencing header ``Nats-Expected-Last-Subject-Sequence``. NATS and JetStream failures leave
it as :class:`~flowmesh_shared.runlife.RunStoreUnavailable`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, datetime

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import DeliverPolicy
from nats.js.kv import KeyValue

from flowmesh_proto import headers as h
from flowmesh_proto.msgids import opening_msg_id, request_msg_id, timer_msg_id
from flowmesh_proto.runs import (
    TERMINAL_RUN_KINDS,
    CancelRequest,
    RunEvent,
    RunQueued,
    RunRequest,
    RunScheduled,
    control_key,
    request_of,
    run_cancelled_before_start,
    run_event_decoder,
    run_queued,
    run_scheduled,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.timers import Timer, delayed_run_timer, park_timer
from flowmesh_shared import telemetry
from flowmesh_shared.jetstream import WRONG_LAST_SEQUENCE, StreamLimits
from flowmesh_shared.runlife import (
    LastEvent,
    Opening,
    RunLifeError,
    RunStoreUnavailable,
    RunTooLarge,
    Trace,
)

__all__ = ["NatsRunLifecycle", "message_limit", "reads_direct"]

_encoder = msgspec.json.Encoder()

#: How long a terminal event seen live may wait for the stream to hold it (seconds, in turn).
SETTLE_PAUSES = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5)


class NatsRunLifecycle:
    """:class:`RunLifecycle` on NATS JetStream (the run-control bucket for cancels).

    ``direct``: read a run's last and first events with direct gets, which any replica of
    the stream answers. With one replica that is the stream itself; with several, a
    follower may not have stored the latest event yet (a stale last sequence would fence
    an executor out of a run nobody else holds), so replicated streams are read through
    the stream leader (``direct=False``: see :func:`reads_direct`).
    """

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        subjects: Subjects,
        streams: StreamNames,
        control: KeyValue | None = None,
        *,
        read_timeout: float = 5.0,
        max_message_bytes: int | None = None,
        direct: bool = True,
    ) -> None:
        self._nc, self._js = nc, js
        self._direct = direct
        self._subjects, self._streams = subjects, streams
        self._control = control
        self._read_timeout = read_timeout
        self._max_message_bytes = max_message_bytes or nc.max_payload

    async def start(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        payload = self._payload(request)
        opening, last = await self._open(run_queued(request, at))
        if opening is Opening.OPENED:
            await self._send(request.tenant, payload, request_msg_id(request.run_id), trace)
        elif last is not None:
            await self._again(last, request.idempotency_key, trace)
        return opening

    async def schedule(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        scheduled = run_scheduled(request, at)
        self._payload(delayed_run_timer(request, scheduled.run_at))  # too large: open nothing
        opening, last = await self._open(scheduled)
        if opening is Opening.OPENED:
            await self._set_timer(delayed_run_timer(request, scheduled.run_at), trace)
        elif last is not None:
            await self._again(last, request.idempotency_key, trace)
        return opening

    async def request(self, request: RunRequest, msg_id: str, *, trace: Trace = None) -> None:
        await self._send(request.tenant, self._payload(request), msg_id, trace)

    async def wake(self, tenant: str, run_id: str, msg_id: str, *, trace: Trace = None) -> bool:
        opened = await self._opening(tenant, run_id)
        if opened is None:
            return False
        await self._send(tenant, self._payload(request_of(opened)), msg_id, trace)
        return True

    async def park(
        self, request: RunRequest, last_seq: int, due: datetime, *, trace: Trace = None
    ) -> None:
        await self._set_timer(park_timer(request, last_seq, due), trace)

    async def cancel(self, request: CancelRequest) -> None:
        if self._control is None:
            raise RunStoreUnavailable("no run-control bucket to record the cancel in")
        payload = _encoder.encode(request)
        with _unavailable("the cancel request"):
            await self._control.put(control_key(request.tenant, request.run_id), payload)
            await self._nc.publish(self._subjects.control(request.tenant, request.run_id), payload)

    async def cancel_scheduled(self, last: LastEvent, request: CancelRequest) -> bool:
        if not isinstance(last.event, RunScheduled):
            return False
        at = request.at or datetime.now(UTC)
        cancelled = run_cancelled_before_start(last.event, request, at)
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(last.seq)}
        with _unavailable("the run's cancelled event"):
            try:
                await self._js.publish(
                    self._subjects.run_events(cancelled.tenant, cancelled.run_id),
                    self._payload(cancelled),
                    stream=self._streams.run_events,
                    headers=headers,
                )
            except js_errors.BadRequestError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                return False
        return True

    async def last(self, tenant: str, run_id: str) -> LastEvent | None:
        subject = self._subjects.run_events(tenant, run_id)
        with _unavailable("the run's events"):
            try:
                msg = await self._js.get_last_msg(
                    self._streams.run_events, subject, direct=self._direct
                )
            except js_errors.NotFoundError:
                return None  # a subject with no message (a missing stream has no responder)
            return LastEvent(run_event_decoder.decode(msg.data or b""), msg.seq or 0)

    async def replay(self, tenant: str, run_id: str, upto: int) -> list[RunEvent]:
        events: list[RunEvent] = []
        seq = 0
        with _unavailable("the run's events"):
            sub = await self._js.subscribe(
                self._subjects.run_events(tenant, run_id),
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
                with suppress(nats.errors.Error):
                    await sub.unsubscribe()
        return events

    async def history(self, tenant: str, run_id: str) -> tuple[list[RunEvent], int]:
        last = await self.last(tenant, run_id)
        if last is None:
            return [], 0
        if isinstance(last.event, RunQueued | RunScheduled):
            return [last.event], last.seq
        return await self.replay(tenant, run_id, last.seq), last.seq

    async def await_end(
        self,
        tenant: str,
        run_id: str,
        seconds: float | None,
        *,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> LastEvent | None:
        loop = asyncio.get_running_loop()
        with _unavailable("the run's events"):
            sub = await self._nc.subscribe(self._subjects.run_events(tenant, run_id))
        try:
            if before is not None:
                await before()
            deadline = None if seconds is None else loop.time() + seconds
            last = await self.last(tenant, run_id)
            while last is None or last.final_status is None:
                remaining = None if deadline is None else deadline - loop.time()
                if remaining is not None and remaining <= 0:
                    return None
                try:
                    msg = await sub.next_msg(timeout=remaining)
                except nats.errors.TimeoutError:
                    return await self._ended(tenant, run_id)  # a message missed is not a run
                except nats.errors.Error as exc:
                    raise RunStoreUnavailable(f"the run's events: {exc!r}") from exc
                if _kind(msg.data) in TERMINAL_RUN_KINDS:
                    last = await self._settled(tenant, run_id, deadline)
            return last
        finally:
            with suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _ended(self, tenant: str, run_id: str) -> LastEvent | None:
        last = await self.last(tenant, run_id)
        return last if last is not None and last.final_status is not None else None

    async def _settled(self, tenant: str, run_id: str, deadline: float | None) -> LastEvent | None:
        """The stream's last event once it holds the terminal one seen live: asked again for
        a moment, then left to the next live event."""
        loop = asyncio.get_running_loop()
        last: LastEvent | None = None
        for pause in SETTLE_PAUSES:
            last = await self.last(tenant, run_id)
            if last is not None and last.final_status is not None:
                return last
            if deadline is not None and loop.time() + pause > deadline:
                break
            await asyncio.sleep(pause)
        return last

    async def _open(self, first: RunQueued | RunScheduled) -> tuple[Opening, LastEvent | None]:
        """Publish the opening fenced on an empty subject; when the subject is taken, the
        run's last event if it is still only that opening (its request is to be sent again)."""
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: opening_msg_id(first)}
        subject = self._subjects.run_events(first.tenant, first.run_id)
        with _unavailable("the run's opening event"):
            try:
                await self._js.publish(
                    subject, self._payload(first), stream=self._streams.run_events, headers=headers
                )
            except js_errors.BadRequestError as exc:
                if exc.err_code != WRONG_LAST_SEQUENCE:
                    raise
                last = await self.last(first.tenant, first.run_id)
                if last is not None and isinstance(last.event, RunQueued | RunScheduled):
                    return Opening.RESENT, last
                return Opening.TAKEN, None
        return Opening.OPENED, None

    async def _again(self, last: LastEvent, idempotency_key: str | None, trace: Trace) -> None:
        """Send the request (or timer) of a run found only opened, built from its opening."""
        opened = last.event
        if not isinstance(opened, RunQueued | RunScheduled):
            return
        again = request_of(opened, idempotency_key)
        if isinstance(opened, RunScheduled):
            await self._set_timer(delayed_run_timer(again, opened.run_at), trace)
        else:
            await self._send(
                again.tenant, self._payload(again), request_msg_id(again.run_id), trace
            )

    async def _opening(self, tenant: str, run_id: str) -> RunQueued | RunScheduled | None:
        subject = self._subjects.run_events(tenant, run_id)
        with _unavailable("the run's opening event"):
            try:
                first = await self._js.get_msg(
                    self._streams.run_events,
                    seq=1,
                    subject=subject,
                    next=True,
                    direct=self._direct,
                )
            except js_errors.NotFoundError:
                return None
            opened = run_event_decoder.decode(first.data or b"")
        return opened if isinstance(opened, RunQueued | RunScheduled) else None

    async def _send(self, tenant: str, payload: bytes, msg_id: str, trace: Trace) -> None:
        headers = _headers(msg_id, trace)
        with _unavailable("the run request"):
            await self._js.publish(
                self._subjects.run_requests(tenant),
                payload,
                stream=self._streams.run_requests,
                headers=headers,
            )
            # The doorbell: executors take this tenant's requests in its turn (intake).
            await self._nc.publish(self._subjects.intake(tenant), b"")

    async def _set_timer(self, timer: Timer, trace: Trace) -> None:
        """Publish a durable timer (``Nats-Msg-Id``: set twice, stored once)."""
        payload = self._payload(timer)
        with _unavailable("the run's timer"):
            await self._js.publish(
                self._subjects.timers(timer.tenant, timer.purpose),
                payload,
                stream=self._streams.timers,
                headers=_headers(timer_msg_id(timer.id), trace),
            )

    def _payload(self, message: msgspec.Struct) -> bytes:
        payload = _encoder.encode(message)
        if len(payload) > self._max_message_bytes:
            raise RunTooLarge(len(payload), self._max_message_bytes)
        return payload


def reads_direct(limits: StreamLimits) -> bool:
    """Whether a run's events may be read with direct gets: only with one replica."""
    return limits.replicas == 1


def message_limit(nc: Client, limits: StreamLimits) -> int:
    """The largest message NATS takes: the server's ``max_payload``, or the streams' own
    ``max_msg_size`` when it is set and smaller."""
    limit = limits.max_msg_size
    return min(nc.max_payload, limit) if limit > 0 else nc.max_payload


def _headers(msg_id: str, trace: Trace) -> dict[str, str]:
    if trace is None:
        return telemetry.inject({h.MSG_ID: msg_id})
    return {**trace, h.MSG_ID: msg_id}


class _Kind(msgspec.Struct):
    kind: str = ""


_kind_decoder = msgspec.json.Decoder(_Kind)


def _kind(data: bytes) -> str:
    try:
        return _kind_decoder.decode(data).kind
    except (msgspec.DecodeError, msgspec.ValidationError):
        return ""


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """NATS and JetStream failures (and unreadable run events) as
    :class:`RunStoreUnavailable` naming ``what`` was being read or sent."""
    try:
        yield
    except RunLifeError:
        raise
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise RunStoreUnavailable(f"{what}: a message on the run's subject cannot be read") from exc
    except js_errors.APIError as exc:
        raise RunStoreUnavailable(f"JetStream cannot serve {what} now: {exc.description}") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        raise RunStoreUnavailable(f"NATS JetStream did not answer in time ({what})") from exc
