"""Runs as NATS holds them: the gateway's side, over the run lifecycle.

Starting, scheduling, waking, cancelling, reading and awaiting a run are the run
lifecycle's (:mod:`flowmesh_shared.runlife`, DESIGN sections 3 and 5); this module adds
what only the gateway does, and translates the lifecycle's errors (503, 413):

- **Idempotency keys**: the bucket maps ``<tenant>.<workflow_id>.<sha256 of the key>`` to a
  run id (24 h); ``claim`` decides who owns a key. A later request with the key finishes a
  start that failed halfway (:meth:`Runs.resume_start`: the lifecycle's start, which sends
  the request again while the run is only opened), so a 503 followed by a retry with the
  same key never leaves a run id that does not run.
- **Cancel** of a run that is only scheduled: ``run.cancelled`` is published fenced on its
  ``run.scheduled``, and when its timer fires the executor finds it finished.
- **Counting** a tenant's queued runs (the queue quota), and reading its intake: the runs
  its run-request consumer holds for the executors, queued and running (DESIGN section 13).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_gateway.settings import GatewaySettings
from flowmesh_gateway.waiting import waiting_reason
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.http import TenantRuns
from flowmesh_proto.msgids import idempotency_key, wake_msg_id
from flowmesh_proto.runs import (
    CancelRequest,
    RunEvent,
    RunQueued,
    RunRequest,
    RunScheduled,
    Waiting,
)
from flowmesh_proto.subjects import StreamNames, Subjects, run_request_consumer, stream_names
from flowmesh_shared.errors import FlowmeshError, Unavailable
from flowmesh_shared.jetstream import (
    CONSUMER_NOT_FOUND,
    CONTROL_TTL,
    IDEMPOTENCY_TTL,
    ensure_bucket,
)
from flowmesh_shared.runlife import (
    LastEvent,
    Opening,
    RunLifecycle,
    RunStoreUnavailable,
    RunTooLarge,
)
from flowmesh_shared.runlife_nats import NatsRunLifecycle, message_limit, reads_direct

__all__ = ["Claim", "LastEvent", "Runs"]

#: Seconds a tenant's count of queued runs is used again (see ``Runs.queued``).
QUEUED_FRESH = 0.1
#: Tenants whose counts are kept at once (all are forgotten past it).
QUEUED_TENANTS = 10_000

log = structlog.get_logger("flowmesh.gateway.runs")


_encoder = msgspec.json.Encoder()


class Claim(msgspec.Struct, frozen=True):
    """Whose run an idempotency key names: ``new`` when this request took the key."""

    run_id: str
    new: bool
    #: The key's revision in the bucket when this request took it (0 otherwise).
    revision: int = 0


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
        direct: bool = True,
        life: RunLifecycle | None = None,
        intake_cache: float = 1.0,
    ) -> None:
        self._js = js
        self._subjects, self._streams = subjects, streams
        self._keys = keys
        self._max_message_bytes = max_message_bytes
        self._life: RunLifecycle = life or NatsRunLifecycle(
            nc,
            js,
            subjects,
            streams,
            control,
            read_timeout=read_timeout,
            max_message_bytes=max_message_bytes,
            direct=direct,
        )
        self._queued: dict[str, tuple[float, int]] = {}  # tenant: (when counted, count)
        #: Seconds a tenant's intake is used again when a queued run says why it waits.
        self._intake_cache = intake_cache
        #: tenant: (when asked, the answer, or the question under way)
        self._intake: dict[str, tuple[float, asyncio.Future[TenantRuns]]] = {}

    @classmethod
    async def open(cls, nc: Client, settings: GatewaySettings) -> Runs:
        """Runs over ``nc``, with the run-control and idempotency buckets made if missing."""
        js: JetStreamContext = nc.jetstream(timeout=settings.rpc_timeout)
        streams = stream_names(settings.stream_prefix)
        control = await ensure_bucket(js, streams.run_control, CONTROL_TTL, settings.streams)
        keys = await ensure_bucket(js, streams.idempotency, IDEMPOTENCY_TTL, settings.streams)
        return cls(
            nc,
            js,
            Subjects(settings.subject_prefix),
            streams,
            control,
            keys,
            read_timeout=settings.rpc_timeout,
            max_message_bytes=message_limit(nc, settings.streams),
            direct=reads_direct(settings.streams),
            intake_cache=settings.intake_cache_seconds,
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
        """Open the run with ``queued`` and send ``request`` (see the lifecycle's start)."""
        with _unavailable("the run's start"):
            opening = await self._life.start(request, queued.at)
        _log_opening(opening, request, "run.queued")

    async def schedule(self, request: RunRequest, scheduled: RunScheduled) -> None:
        """Open the run with ``scheduled``, then the timer that sends ``request`` at
        ``run_at`` (see the lifecycle's schedule)."""
        with _unavailable("the run's start"):
            opening = await self._life.schedule(request, scheduled.at)
        _log_opening(opening, request, "run.scheduled")

    async def resume_start(self, request: RunRequest, first: RunQueued | RunScheduled) -> None:
        """Make sure the run ``request`` names was started: start it if it has no event, and
        send its request (or timer) again, deduplicated by its id, while it is only queued
        (or scheduled): the lifecycle's start does both."""
        if isinstance(first, RunScheduled):
            await self.schedule(request, first)
        else:
            await self.start(request, first)

    async def cancel_scheduled(self, last: LastEvent, request: CancelRequest) -> bool:
        """End a run that is only scheduled (``run.cancelled`` fenced on its
        ``run.scheduled``); False when it moved on meanwhile (cancel it the usual way)."""
        with _unavailable("the run's cancelled event"):
            ended = await self._life.cancel_scheduled(last, request)
        if ended:
            log.info("run.cancelled_before_start", run_id=request.run_id, by=request.by)
        return ended

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

    async def tenant_runs(self, tenant: str, *, fresh: float = 0.0) -> TenantRuns:
        """The tenant's runs in the executors' intake: its run-request consumer's
        ``num_pending`` (queued) and ``num_ack_pending`` (running); zeros while it has no
        consumer (no run yet, or none for a long time). An answer at most ``fresh`` seconds
        old is used again, and callers that ask while JetStream is being asked share its
        answer."""
        now = time.monotonic()
        known = self._intake.get(tenant)
        if known is not None:
            asked, answer = known
            if not answer.done() or (now - asked < fresh and _answered(answer)):
                return await asyncio.shield(answer)
        answer = asyncio.ensure_future(self._read_intake(tenant))
        answer.add_done_callback(_answered)
        if len(self._intake) >= QUEUED_TENANTS:
            self._intake.clear()
        self._intake[tenant] = (now, answer)
        return await asyncio.shield(answer)

    async def waiting(self, tenant: str, since: datetime) -> Waiting:
        """Why a queued run of ``tenant`` that no executor has taken waits (queued at
        ``since``), from its intake as read at most ``intake_cache_seconds`` ago: the limit
        is the one its consumer holds it to, whoever set it (the platform admin, or the
        executors' default)."""
        intake = await self.tenant_runs(tenant, fresh=self._intake_cache)
        return waiting_reason(intake.running, intake.max_running, since)

    async def _read_intake(self, tenant: str) -> TenantRuns:
        with _unavailable("the tenant's queued and running runs"):
            try:
                info = await self._js.consumer_info(
                    self._streams.run_requests, run_request_consumer(tenant)
                )
            except js_errors.NotFoundError as exc:
                if exc.err_code != CONSUMER_NOT_FOUND:
                    raise
                return TenantRuns(queued=0, running=0)
        limit = info.config.max_ack_pending
        return TenantRuns(
            queued=info.num_pending or 0,
            running=info.num_ack_pending or 0,
            max_running=limit if limit is not None and limit > 0 else None,
        )

    # --- reading ---

    async def last(self, tenant: str, run_id: str) -> LastEvent | None:
        """The run's latest event, None for a run that has none (an unknown run)."""
        with _unavailable("the run's events"):
            return await self._life.last(tenant, run_id)

    async def replay(self, tenant: str, run_id: str, upto: int) -> list[RunEvent]:
        """The run's events in order, up to the stream sequence ``upto``."""
        with _unavailable("the run's events"):
            return await self._life.replay(tenant, run_id, upto)

    async def finished(self, tenant: str, run_id: str) -> list[RunEvent] | None:
        """The events of a finished run, None while it has not finished."""
        last = await self.last(tenant, run_id)
        if last is None or last.final_status is None:
            return None
        return await self.replay(tenant, run_id, last.seq)

    async def wait(
        self, tenant: str, run_id: str, seconds: float, start: Callable[[], Awaitable[None]]
    ) -> list[RunEvent] | None:
        """Watch the run's subject, call ``start``, then wait up to ``seconds`` for the run to
        finish: its events, or None if it has not (the lifecycle's ``await_end``)."""
        with _unavailable("the run's events"):
            last = await self._life.await_end(tenant, run_id, seconds, before=start)
            if last is None:
                return None
            return await self._life.replay(tenant, run_id, last.seq)

    # --- cancelling ---

    async def cancel(self, request: CancelRequest) -> None:
        """Record the cancel for whoever picks the run up next, then tell whoever holds it."""
        with _unavailable("the cancel request"):
            await self._life.cancel(request)
        log.info("run.cancel_requested", run_id=request.run_id, by=request.by)

    async def wake(self, last: LastEvent) -> None:
        """Ask for a run that has started again (``Nats-Msg-Id: wake:<run_id>:<last seq>``):
        a parked run (no executor holds it while it waits on a timer) is picked up now and
        sees its cancel; a run an executor holds keeps it, and the extra request is acked
        once the run has ended."""
        event = last.event
        with _unavailable("the run request"):
            await self._life.wake(event.tenant, event.run_id, wake_msg_id(event.run_id, last.seq))


def _answered(answer: asyncio.Future[TenantRuns]) -> bool:
    """Whether ``answer`` holds a count (not a failure, which is retrieved so)."""
    return not answer.cancelled() and answer.exception() is None


def _log_opening(opening: Opening, request: RunRequest, what: str) -> None:
    if opening is Opening.OPENED:
        log.info(what, run_id=request.run_id, workflow=request.workflow_id)
    else:
        log.info("run.already_started", run_id=request.run_id, resent=opening is Opening.RESENT)


@contextmanager
def _unavailable(what: str) -> Iterator[None]:
    """NATS and JetStream failures as 503 problems naming ``what`` was being read or sent."""
    try:
        yield
    except FlowmeshError:
        raise
    except RunTooLarge as exc:
        raise FlowmeshError(ErrorCode.PAYLOAD_TOO_LARGE, exc.detail) from exc
    except RunStoreUnavailable as exc:
        log.warning("run.store_unavailable", what=what, error=exc.detail)
        raise Unavailable(exc.detail) from exc
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        log.warning("run.event_undecodable", what=what, error=str(exc))
        raise Unavailable(f"{what}: a message on the run's subject cannot be read") from exc
    except js_errors.APIError as exc:
        log.warning("jetstream.refused", what=what, error=repr(exc))
        raise Unavailable(f"JetStream cannot serve {what} now: {exc.description}") from exc
    except (TimeoutError, nats.errors.Error) as exc:
        log.warning("nats.unavailable", what=what, error=repr(exc))
        raise Unavailable(f"NATS JetStream did not answer in time ({what})") from exc
