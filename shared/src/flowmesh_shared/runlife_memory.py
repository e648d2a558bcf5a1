"""The in-memory twin of :class:`~flowmesh_shared.runlife_nats.NatsRunLifecycle` (STYLE habit 3).

It keeps what NATS would: each run's events with stream sequences (fenced the same way),
the requests and timers sent (a repeated ``Nats-Msg-Id`` dropped), the run-control bucket
and the cancels published. Tests write a run's later events with :meth:`append`, as an
executor would. ``tests/integration/test_runlife.py`` holds it to the same contract.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

import msgspec

from flowmesh_proto.msgids import request_msg_id, timer_msg_id
from flowmesh_proto.runs import (
    CancelRequest,
    RunEvent,
    RunQueued,
    RunRequest,
    RunScheduled,
    control_key,
    final_status,
    request_of,
    run_cancelled_before_start,
    run_queued,
    run_scheduled,
)
from flowmesh_proto.timers import Timer, delayed_run_timer, park_timer
from flowmesh_shared.runlife import (
    LastEvent,
    Opening,
    RunTooLarge,
    Trace,
)

_encoder = msgspec.json.Encoder()


class SentRequest(msgspec.Struct, frozen=True):
    """A request as the request stream stored it."""

    msg_id: str
    request: RunRequest
    trace: dict[str, str] | None = None


class MemoryRunLifecycle:
    """:class:`~flowmesh_shared.runlife.RunLifecycle` in memory."""

    def __init__(self, *, max_message_bytes: int = 1024 * 1024) -> None:
        self._max_message_bytes = max_message_bytes
        self._events: dict[tuple[str, str], list[tuple[int, RunEvent]]] = {}
        self._seq = 0
        self._ids: set[str] = set()
        self.requests: list[SentRequest] = []
        self.timers: list[Timer] = []
        #: The run-control bucket: ``<tenant>.<run_id>`` to its cancel.
        self.control: dict[str, CancelRequest] = {}
        #: The cancels published on control subjects, in order.
        self.cancels: list[CancelRequest] = []
        self._changed: asyncio.Condition | None = None

    # --- what an executor (or a test) writes ---

    async def append(self, event: RunEvent, *, expected_last: int | None = None) -> int | None:
        """Store ``event`` on its run's subject (fenced on ``expected_last`` when given);
        its sequence, or None when the fence refused it."""
        key = (event.tenant, event.run_id)
        stored = self._events.setdefault(key, [])
        if expected_last is not None and (stored[-1][0] if stored else 0) != expected_last:
            return None
        self._seq += 1
        stored.append((self._seq, event))
        async with self._condition():
            self._condition().notify_all()
        return self._seq

    # --- the lifecycle ---

    async def start(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        self._check(request)
        opening, last = await self._open(run_queued(request, at))
        if opening is Opening.OPENED:
            self._send(request, request_msg_id(request.run_id), trace)
        elif last is not None:
            self._again(last, request.idempotency_key, trace)
        return opening

    async def schedule(self, request: RunRequest, at: datetime, *, trace: Trace = None) -> Opening:
        scheduled = run_scheduled(request, at)
        self._check(delayed_run_timer(request, scheduled.run_at))
        opening, last = await self._open(scheduled)
        if opening is Opening.OPENED:
            self._set_timer(delayed_run_timer(request, scheduled.run_at))
        elif last is not None:
            self._again(last, request.idempotency_key, trace)
        return opening

    async def request(self, request: RunRequest, msg_id: str, *, trace: Trace = None) -> None:
        self._check(request)
        self._send(request, msg_id, trace)

    async def wake(self, tenant: str, run_id: str, msg_id: str, *, trace: Trace = None) -> bool:
        stored = self._events.get((tenant, run_id))
        opened = stored[0][1] if stored else None
        if not isinstance(opened, RunQueued | RunScheduled):
            return False
        self._send(request_of(opened), msg_id, trace)
        return True

    async def park(
        self, request: RunRequest, last_seq: int, due: datetime, *, trace: Trace = None
    ) -> None:
        self._set_timer(park_timer(request, last_seq, due))

    async def cancel(self, request: CancelRequest) -> None:
        self.control[control_key(request.tenant, request.run_id)] = request
        self.cancels.append(request)

    async def cancel_scheduled(self, last: LastEvent, request: CancelRequest) -> bool:
        if not isinstance(last.event, RunScheduled):
            return False
        at = request.at or datetime.now(UTC)
        cancelled = run_cancelled_before_start(last.event, request, at)
        self._check(cancelled)
        return await self.append(cancelled, expected_last=last.seq) is not None

    async def last(self, tenant: str, run_id: str) -> LastEvent | None:
        stored = self._events.get((tenant, run_id))
        if not stored:
            return None
        seq, event = stored[-1]
        return LastEvent(event, seq)

    async def replay(self, tenant: str, run_id: str, upto: int) -> list[RunEvent]:
        return [event for seq, event in self._events.get((tenant, run_id), []) if seq <= upto]

    async def history(self, tenant: str, run_id: str) -> tuple[list[RunEvent], int]:
        stored = self._events.get((tenant, run_id)) or []
        return [event for _, event in stored], (stored[-1][0] if stored else 0)

    async def await_end(
        self,
        tenant: str,
        run_id: str,
        seconds: float | None,
        *,
        before: Callable[[], Awaitable[object]] | None = None,
    ) -> LastEvent | None:
        if before is not None:
            await before()

        def ended() -> bool:
            stored = self._events.get((tenant, run_id))
            if not stored:
                return False
            return final_status(stored[-1][1]) is not None

        condition = self._condition()
        async with condition:
            try:
                await asyncio.wait_for(condition.wait_for(ended), seconds)
            except TimeoutError:
                return None
        return await self.last(tenant, run_id)

    # --- inside ---

    def _condition(self) -> asyncio.Condition:
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _open(self, first: RunQueued | RunScheduled) -> tuple[Opening, LastEvent | None]:
        self._check(first)
        if await self.append(first, expected_last=0) is not None:
            return Opening.OPENED, None
        last = await self.last(first.tenant, first.run_id)
        if last is not None and isinstance(last.event, RunQueued | RunScheduled):
            return Opening.RESENT, last
        return Opening.TAKEN, None

    def _again(self, last: LastEvent, idempotency_key: str | None, trace: Trace) -> None:
        opened = last.event
        if isinstance(opened, RunScheduled):
            self._set_timer(delayed_run_timer(request_of(opened, idempotency_key), opened.run_at))
        elif isinstance(opened, RunQueued):
            again = request_of(opened, idempotency_key)
            self._send(again, request_msg_id(again.run_id), trace)

    def _send(self, request: RunRequest, msg_id: str, trace: Trace) -> None:
        name = f"request\0{msg_id}"
        if name in self._ids:
            return  # a duplicate, as JetStream drops it
        self._ids.add(name)
        self.requests.append(SentRequest(msg_id, request, dict(trace) if trace else None))

    def _set_timer(self, timer: Timer) -> None:
        self._check(timer)
        name = f"timer\0{timer_msg_id(timer.id)}"
        if name not in self._ids:
            self._ids.add(name)
            self.timers.append(timer)

    def _check(self, message: msgspec.Struct) -> None:
        size = len(_encoder.encode(message))
        if size > self._max_message_bytes:
            raise RunTooLarge(size, self._max_message_bytes)
