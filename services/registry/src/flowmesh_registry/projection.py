"""The projection of run events into run history and workflow statistics (DESIGN §1, §6).

A durable pull consumer on the run-events stream (explicit acks) feeds a buffer through
:class:`flowmesh_shared.pull.PullFeed`, which keeps pull requests open so that an event
is handed over as soon as it arrives (nats-py's ``fetch`` would hold it until its batch
fills or times out). One worker takes up to ``batch_size`` buffered messages at a time:
while it writes one batch the next one gathers, so batches grow with the load and a lone
event is written at once.

A batch is one transaction. For each tenant in it (``app.tenant_id`` switched with
``set_config(..., true)``): the stored runs of the batch are locked and read, each run's
new events (stream sequence above the stored ``last_seq``) are folded onto its stored view
(:mod:`.batchfold`), runs and changed steps are upserted from arrays in one statement,
and runs that ended are counted into their workflows' statistics once. The messages are
acked after the commit; a crash before it redelivers them, and the redelivery changes
nothing that was committed.

Failures never stall it: a message that is not a run event is terminated and logged; a
batch that PostgreSQL refuses for its data is split in halves until the one message at
fault is found and terminated; a lost connection (PostgreSQL or NATS) retries the same
batch with backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import OrderedDict, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from flowmesh_proto.runs import TERMINAL_RUN_STATUSES
from flowmesh_proto.subjects import Subjects
from flowmesh_registry import run_sql as sql
from flowmesh_registry.batchfold import (
    Delivery,
    Gap,
    Projected,
    Stored,
    find_gap,
    fold_run,
    in_order,
)
from flowmesh_registry.db import Database, switch_tenant
from flowmesh_registry.deliveries import Refused, decode_delivery
from flowmesh_registry.run_rows import run_of, upsert_arguments
from flowmesh_shared.jetstream import ensure_consumer
from flowmesh_shared.pull import PullFeed

log = structlog.get_logger("flowmesh.registry.projection")

#: Seconds: lag is milliseconds when all is well, minutes after an outage.
LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)
#: SQLSTATE classes of errors caused by the data written: data exception, integrity
#: constraint violation, program limit exceeded (a value too large).
_DATA_CLASSES = frozenset({"22", "23", "54"})
_RETENTION_CACHE_SECONDS = 60.0


class ProjectionMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            "flowmesh_registry_projection_lag_seconds",
            "Now minus the publish time of the oldest event of the last batch written",
            registry=registry,
        )
        self.event_lag = Histogram(
            "flowmesh_registry_projection_event_lag_seconds",
            "From an event's publish to the commit that projected it",
            buckets=LAG_BUCKETS,
            registry=registry,
        )
        self.events = Counter(
            "flowmesh_registry_projection_events",
            "Run-event messages taken by the projection, by outcome (projected; duplicate: "
            "already projected; expired: older than the tenant's retention; refused)",
            ["outcome"],
            registry=registry,
        )
        self.batches = Counter(
            "flowmesh_registry_projection_batches", "Batches committed", registry=registry
        )
        self.phase = Histogram(
            "flowmesh_registry_projection_batch_phase_seconds",
            "Time a batch spends in each phase (load, fold, write, commit, ack)",
            ["phase"],
            registry=registry,
        )
        self.pending = Gauge(
            "flowmesh_registry_projection_pending",
            "Run events in the stream not yet delivered to the projection",
            registry=registry,
        )


@dataclass(slots=True)
class _Item:
    msg: Msg
    tenant: str
    delivery: Delivery
    published: float  # epoch seconds


@dataclass(slots=True)
class _Outcome:
    projected: int = 0
    duplicate: int = 0
    expired: int = 0
    phases: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    written: list[tuple[str, Projected]] = field(default_factory=list)


class Projection:
    def __init__(
        self,
        db: Database,
        nc: Client,
        subjects: Subjects,
        stream: str,
        *,
        consumer: str = "registry-projection",
        batch_size: int = 500,
        max_buffered: int = 2000,
        ack_wait: float = 60.0,
        default_retention_days: int = 30,
        held_runs: int = 10_000,
        metrics: ProjectionMetrics | None = None,
    ) -> None:
        self.db, self.nc, self.subjects = db, nc, subjects
        self.js: JetStreamContext = nc.jetstream()
        self.stream, self.consumer = stream, consumer
        self.batch_size, self.max_buffered, self.ack_wait = batch_size, max_buffered, ack_wait
        self.default_retention_days = default_retention_days
        self.metrics = metrics or ProjectionMetrics(CollectorRegistry())
        self._buffer: list[Msg] = []
        self._ready = asyncio.Event()
        self._in_flight = 0
        self._stop = asyncio.Event()
        self._feed: PullFeed | None = None
        self._worker: asyncio.Task[None] | None = None
        self._retention: dict[str, tuple[int, float]] = {}
        self._refused: set[int] = set()
        #: The views last written of runs still going, most recent last (at most held_runs).
        self._views: OrderedDict[tuple[str, str], Stored] = OrderedDict()
        self.held_runs = held_runs
        #: The highest stream sequence acked so far (tests and benchmarks wait on it).
        self.acked_seq = 0

    @property
    def running(self) -> bool:
        return self._worker is not None and not self._worker.done()

    async def start(self) -> None:
        config = ConsumerConfig(
            durable_name=self.consumer,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.ack_wait,
            max_deliver=-1,
            max_ack_pending=-1,
            filter_subject=self.subjects.all_run_events,
        )
        await ensure_consumer(self.js, self.stream, config)
        self._feed = PullFeed(
            self.nc,
            self.stream,
            self.consumer,
            self._accept,
            lambda: self.max_buffered - len(self._buffer) - self._in_flight,
            batch=self.max_buffered,
        )
        self._worker = asyncio.create_task(self._work(), name="registry.projection")
        await self._feed.start()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the drain bound
        """Take no more; let the batch being written finish within ``timeout``; hand the
        buffered messages back (nak) for another replica or the next start."""
        self._stop.set()
        if self._feed is not None:
            await self._feed.stop()
        self._ready.set()
        if self._worker is not None:
            done, _ = await asyncio.wait({self._worker}, timeout=timeout)
            if not done:
                self._worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._worker
        handed_back = len(self._buffer)
        for msg in self._buffer:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
        self._buffer.clear()
        if self._feed is not None:
            await self._feed.close()
        log.info("projection.stopped", handed_back=handed_back, acked_seq=self.acked_seq)

    async def _accept(self, msg: Msg) -> None:
        self._buffer.append(msg)
        self._ready.set()

    async def _work(self) -> None:
        while not self._stop.is_set():
            await self._ready.wait()
            if self._stop.is_set():
                return
            batch = self._buffer[: self.batch_size]
            del self._buffer[: self.batch_size]
            if not self._buffer:
                self._ready.clear()
            if not batch:
                continue
            self._in_flight = len(batch)
            try:
                await self._handle(batch)
            finally:
                self._in_flight = 0
            if self._feed is not None:
                await self._feed.refill()

    # --- one batch -----------------------------------------------------------------------

    async def _handle(self, batch: list[Msg]) -> None:
        items: list[_Item] = []
        for msg in batch:
            try:
                meta = msg.metadata
                tenant, delivery = decode_delivery(
                    self.subjects.prefix, msg.subject, msg.data, msg.headers, meta.sequence.stream
                )
            except (Refused, nats.errors.Error) as exc:
                await self._refuse(msg, str(exc))
                continue
            items.append(_Item(msg, tenant, delivery, meta.timestamp.timestamp()))
        if items:
            await self._project_or_isolate(items)
            self.metrics.pending.set(items[-1].msg.metadata.num_pending)

    async def _refuse(self, msg: Msg, reason: str) -> None:
        seq = _sequence(msg)
        log.error("projection.refused", subject=msg.subject, seq=seq, reason=reason)
        if seq:
            self._refused.add(seq)
        self.metrics.events.labels("refused").inc()
        with contextlib.suppress(nats.errors.Error):
            await msg.term()
        self.acked_seq = max(self.acked_seq, seq)

    async def _project_or_isolate(self, items: list[_Item]) -> None:
        """Project ``items``; when what they hold is refused (by PostgreSQL or on the way to
        it), find the message at fault by halves and refuse it alone. Anything else (a lost
        connection, a deadlock) retries the same batch until it passes or the stop."""
        delay = 0.05
        while True:
            try:
                outcome = await self._project(items)
                break
            except Exception as exc:
                if _content_at_fault(exc):
                    if len(items) == 1:
                        await self._refuse(items[0].msg, f"{type(exc).__name__}: {exc}")
                        return
                    half = len(items) // 2
                    await self._project_or_isolate(items[:half])
                    await self._project_or_isolate(items[half:])
                    return
                log.warning(
                    "projection.retry",
                    error=str(exc),
                    error_type=type(exc).__name__,
                    messages=len(items),
                    delay_s=delay,
                )
                if self._stop.is_set():
                    return  # not acked: redelivered to whoever projects next
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
        began = time.perf_counter()
        for item in items:
            with contextlib.suppress(nats.errors.Error):
                await item.msg.ack()
        outcome.phases["ack"] += time.perf_counter() - began
        self._observe(items, outcome)

    def _observe(self, items: list[_Item], outcome: _Outcome) -> None:
        now = time.time()
        oldest = min(item.published for item in items)
        self.metrics.lag.set(max(0.0, now - oldest))
        for item in items:
            self.metrics.event_lag.observe(max(0.0, now - item.published))
        for outcome_name, count in (
            ("projected", outcome.projected),
            ("duplicate", outcome.duplicate),
            ("expired", outcome.expired),
        ):
            if count:
                self.metrics.events.labels(outcome_name).inc(count)
        for phase, seconds in outcome.phases.items():
            self.metrics.phase.labels(phase).observe(seconds)
        self.metrics.batches.inc()
        self.acked_seq = max(self.acked_seq, max(item.delivery.seq for item in items))

    async def _project(self, items: list[_Item]) -> _Outcome:
        by_tenant: dict[str, dict[str, list[Delivery]]] = defaultdict(lambda: defaultdict(list))
        for item in items:
            by_tenant[item.tenant][item.delivery.event.run_id].append(item.delivery)
        outcome = _Outcome()
        async with self.db.transaction() as conn:
            for tenant, runs in by_tenant.items():
                await self._project_tenant(conn, tenant, runs, outcome)
            began = time.perf_counter()
        outcome.phases["commit"] += time.perf_counter() - began
        self._hold(outcome.written)
        return outcome

    async def _project_tenant(
        self,
        conn: asyncpg.Connection,
        tenant: str,
        runs: dict[str, list[Delivery]],
        outcome: _Outcome,
    ) -> None:
        began = time.perf_counter()
        await switch_tenant(conn, tenant)
        keep_after = await self._keep_after(conn, tenant)
        stored = await self._load(conn, tenant, list(runs))
        loaded = time.perf_counter()
        outcome.phases["load"] += loaded - began
        projected: list[Projected] = []
        ended: list[str] = []
        for run_id, delivered in runs.items():
            before = stored.get(run_id)
            last = before.last_seq if before is not None else 0
            deliveries = in_order(delivered)
            gap = find_gap(last, deliveries)
            if gap is not None:
                deliveries = in_order([*deliveries, *await self._missing(tenant, run_id, gap)])
            fresh = sum(1 for delivery in delivered if delivery.seq > last)
            result = fold_run(before, deliveries, keep_after=keep_after)
            if result is None:
                outcome.duplicate += len(delivered) - fresh
                outcome.expired += fresh
                continue
            outcome.projected += fresh
            outcome.duplicate += len(delivered) - fresh
            projected.append(result)
            outcome.written.append((tenant, result))
            ended_now = result.view.status in TERMINAL_RUN_STATUSES
            if ended_now and not (before is not None and before.counted):
                ended.append(run_id)
        folded = time.perf_counter()
        outcome.phases["fold"] += folded - loaded
        if projected:
            await conn.fetchrow(sql.UPSERT_RUNS, tenant, *upsert_arguments(projected))
        if ended:
            await conn.execute(sql.COUNT_ENDED, tenant, ended)
        outcome.phases["write"] += time.perf_counter() - folded

    async def _load(
        self, conn: asyncpg.Connection, tenant: str, run_ids: list[str]
    ) -> dict[str, Stored]:
        """The batch's stored runs, locked; read in full only when not held here as stored."""
        stored: dict[str, Stored] = {}
        unknown = []
        for row in await conn.fetch(sql.LOCK_RUNS, tenant, run_ids):
            run_id = str(row["id"])
            held = self._views.get((tenant, run_id))
            if held is not None and held.last_seq == row["last_seq"]:
                stored[run_id] = msgspec.structs.replace(held, counted=row["counted"])
            else:
                unknown.append(row["id"])
        if not unknown:
            return stored
        steps: dict[Any, list[asyncpg.Record]] = defaultdict(list)
        for step in await conn.fetch(sql.STEPS_OF_RUNS, tenant, unknown):
            steps[step["run_id"]].append(step)
        for row in await conn.fetch(sql.RUNS_BY_ID, tenant, unknown):
            stored[str(row["id"])] = Stored(
                view=run_of(row, steps.get(row["id"], ())),
                last_seq=row["last_seq"],
                counted=row["counted"],
            )
        return stored

    def _hold(self, written: list[tuple[str, Projected]]) -> None:
        """Keep the views just committed (runs still going: an ended run gets no events)."""
        for tenant, result in written:
            key = (tenant, result.view.id)
            if result.view.status in TERMINAL_RUN_STATUSES:
                self._views.pop(key, None)
                continue
            self._views[key] = Stored(view=result.view, last_seq=result.last_seq)
            self._views.move_to_end(key)
        while len(self._views) > self.held_runs:
            self._views.popitem(last=False)

    async def _keep_after(self, conn: asyncpg.Connection, tenant: str) -> datetime:
        """Runs created before this are past the tenant's retention."""
        now = time.monotonic()
        cached = self._retention.get(tenant)
        if cached is None or now - cached[1] > _RETENTION_CACHE_SECONDS:
            days = await conn.fetchval(sql.TENANT_RETENTION, tenant)
            cached = (days or self.default_retention_days, now)
            self._retention[tenant] = cached
        return datetime.now(UTC) - timedelta(days=cached[0])

    async def _missing(self, tenant: str, run_id: str, gap: Gap) -> list[Delivery]:
        """The run's events between ``gap.after`` and ``gap.before``, read from the stream
        (a run's events held by another replica, or not redelivered yet after a restart)."""
        subject = self.subjects.run_events(tenant, run_id)
        found: list[Delivery] = []
        seq = gap.after + 1
        while seq < gap.before:
            try:
                raw = await self.js.get_msg(
                    self.stream, seq=seq, subject=subject, next=True, direct=True
                )
            except js_errors.NotFoundError:
                break
            if raw.seq is None or raw.seq >= gap.before:
                break
            if raw.seq not in self._refused:
                with contextlib.suppress(Refused):
                    _, delivery = decode_delivery(
                        self.subjects.prefix, subject, raw.data or b"", raw.headers, raw.seq
                    )
                    found.append(delivery)
            seq = raw.seq + 1
        log.info("projection.gap_filled", run_id=run_id, after=gap.after, found=len(found))
        return found


def _sequence(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except nats.errors.Error:
        return 0


def _content_at_fault(exc: BaseException) -> bool:
    """Whether the messages themselves make the batch fail: PostgreSQL refuses the data
    (data exception, integrity, a limit), or it cannot be encoded for it. Retrying cannot
    help; a lost connection, a deadlock or a bug is retried instead (never dropped)."""
    if isinstance(exc, asyncpg.PostgresError):
        return str(getattr(exc, "sqlstate", "") or "")[:2] in _DATA_CLASSES
    return isinstance(exc, (ValueError, OverflowError, RecursionError, msgspec.MsgspecError))
