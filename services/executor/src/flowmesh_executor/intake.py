"""Fair intake: run requests taken from tenants in weighted turns (DESIGN section 13).

Each tenant's run requests are read through a durable consumer of its own on the
FM_RUN_REQUESTS work queue (``runs-<tenant>``, :func:`run_request_consumer`), shared by
every executor replica. An executor never keeps pull requests open: when it has room, it
asks :class:`~flowmesh_executor.fairshare.FairShare` which waiting tenants get the free
slots, and sends each of them one ``no_wait`` fetch for exactly its share. So nothing is
taken beyond the room, and a tenant with a backlog of 100,000 delays another tenant's next
run by one slot's turnover, not by its backlog.

Who is waiting is learnt from the doorbell (``<prefix>.sys.intake.<tenant>``, core NATS,
rung by the run lifecycle after every run request it stores, and by an executor when a run
of a tenant with ``max_running`` ends) and, in case a bell was lost or this executor has
just started, from a sweep of the stream's per-subject counts every ``intake_sweep``
seconds. A fetch that comes back short (``404``), or expires held at the tenant's
``max_running`` (``408``: JetStream keeps a fetch while the consumer is at its
``max_ack_pending``, for at most :data:`FETCH_WAIT`), makes the tenant idle until the next
bell or sweep; a bell heard while its fetch was out keeps it waiting. A tenant with a
``max_running`` is never asked for more than that in one fetch. A fetch
nobody answers (``503``: the consumer was deleted for idling, or lost in a restart) makes
the consumer again at the tenant's next turn.

A tenant's ``weight`` and ``max_running`` come from the registry (:class:`TenantShares`,
cached for ``tenant_refresh`` seconds); ``max_running`` is written into the tenant's
consumer, so JetStream holds it across all executors. Cost for NATS: one consumer per
tenant that has had a run in the last ``tenant_consumer_idle`` seconds, one fetch per
turn, one doorbell message per run request, and one stream-info call per sweep.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import msgspec
import nats.errors
import structlog
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js import errors as js_errors
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from flowmesh_executor.fairshare import FairShare
from flowmesh_executor.metrics import ExecutorMetrics
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.ids import tenant_id_problem
from flowmesh_proto.principal import Principal
from flowmesh_proto.registry import TenantGet
from flowmesh_proto.subjects import Subjects, run_request_consumer, tenant_of
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.jetstream import ensure_consumer
from flowmesh_shared.rpc import RpcClient

log = structlog.get_logger("flowmesh.executor.intake")

_STATUS = "Status"
#: The status of a request nobody answered: the consumer fetched from does not exist.
_NO_RESPONDERS = "503"
#: The consumer every executor shared before fair intake (deleted at start: a work queue
#: takes no consumer whose filter overlaps another's).
LEGACY_CONSUMER = "executors"
#: Seconds the server may hold a fetch (its ``expires``). A ``no_wait`` fetch is answered
#: at once, except when the tenant is at its ``max_running`` (the consumer's
#: ``max_ack_pending``): JetStream then keeps it until a run ends or this passes (``408``),
#: and the slots it asked for are out of every other tenant's reach meanwhile.
FETCH_WAIT = 0.1
#: Seconds a fetch may stay unanswered before it is given up as lost (a server restarted
#: meanwhile).
FETCH_PATIENCE = 5.0


@dataclass(frozen=True, slots=True)
class TenantShare:
    """What the platform admin set for a tenant (None: the default)."""

    weight: int = 1
    max_running: int | None = None


class TenantShares:
    """Tenants' weights and ``max_running``, from the registry, kept ``refresh`` seconds.

    A share past its refresh is still used while it is read again in the background: only
    a tenant seen for the first time waits for the registry (at most ``timeout``), so a
    slow registry never holds the intake's turns. When the registry cannot answer, the
    last known value stays (None if there is none: the caller then leaves the tenant's
    consumer as it is) and is asked for again after another ``refresh``."""

    def __init__(
        self,
        rpc: RpcClient,
        refresh: float,
        principal: Principal,
        timeout: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rpc, self._refresh, self._principal = rpc, refresh, principal
        self._timeout, self._clock = timeout, clock
        self._known: dict[str, tuple[float, TenantShare | None]] = {}
        self._reading: dict[str, asyncio.Task[TenantShare | None]] = {}

    async def stop(self) -> None:
        """Stop the reads in the background (the values known stay)."""
        reading = list(self._reading.values())
        for task in reading:
            task.cancel()
        await asyncio.gather(*reading, return_exceptions=True)

    def cached(self, tenant: str) -> TenantShare | None:
        known = self._known.get(tenant)
        return None if known is None else known[1]

    async def get(self, tenant: str) -> TenantShare | None:
        known = self._known.get(tenant)
        if known is None:
            return await self._read(tenant)
        if self._clock() - known[0] >= self._refresh and tenant not in self._reading:
            reading = asyncio.create_task(self._read(tenant), name=f"intake.share:{tenant}")
            self._reading[tenant] = reading
            reading.add_done_callback(lambda _: self._reading.pop(tenant, None))
        return known[1]

    async def _read(self, tenant: str) -> TenantShare | None:
        now = self._clock()
        try:
            found = await self._rpc.call(
                TenantGet(id=tenant),
                tenant=tenant,
                principal=self._principal,
                timeout=self._timeout,
            )
        except FlowmeshError as exc:
            if exc.code != ErrorCode.NOT_FOUND:
                log.warning("intake.tenant_unknown", tenant=tenant, error=str(exc))
                last = self.cached(tenant)
                self._known[tenant] = (now, last)  # asked again after another refresh
                return last
            share = TenantShare()  # no such tenant (any more): defaults
        else:
            share = TenantShare(weight=found.weight or 1, max_running=found.max_running)
        self._known[tenant] = (now, share)
        return share


@dataclass(slots=True)
class _Fetch:
    asked: int
    sent_at: float
    delivered: int = 0


class FairIntake:
    """Take run requests from tenants in weighted turns, never more than there is room for."""

    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        stream: str,
        subjects: Subjects,
        settings: ExecutorSettings,
        shares: TenantShares,
        metrics: ExecutorMetrics,
        on_message: Callable[[Msg], Awaitable[None]],
        room: Callable[[], int],
    ) -> None:
        self.nc, self.js, self.stream, self.subjects = nc, js, stream, subjects
        self.settings, self.shares, self.metrics = settings, shares, metrics
        self.on_message, self.room = on_message, room
        self.turns = FairShare()
        self.stopping = False
        self._inbox = ""
        self._subs: list[Subscription] = []
        self._fetches: dict[str, _Fetch] = {}
        self._rung: set[str] = set()  # bells heard while the tenant's fetch was out
        self._consumers: dict[str, int] = {}  # tenant -> max_ack_pending its consumer has
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self._rings: set[asyncio.Task[None]] = set()  # kept until done (not collected)

    async def start(self) -> None:
        await self._drop_legacy()
        self._inbox = self.nc.new_inbox()
        self._subs = [
            await self.nc.subscribe(f"{self._inbox}.*", cb=self._on_reply),
            await self.nc.subscribe(self.subjects.all_intake, cb=self._on_bell),
        ]
        self._tasks = [
            asyncio.create_task(self._turns(), name="intake.turns"),
            asyncio.create_task(self._sweeps(), name="intake.sweeps"),
        ]

    def pause(self) -> None:
        """Ask for nothing more for now; requests already on their way are handed back."""
        self.stopping = True

    async def resume(self) -> None:
        self.stopping = False
        self.refill()

    async def stop(self) -> None:
        self.stopping = True
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        await self.shares.stop()

    async def close(self) -> None:
        for sub in self._subs:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
        self._subs = []

    def refill(self) -> None:
        """Look for work: room may have freed, or a tenant may be waiting."""
        self._wake.set()

    def ring(self, tenant: str) -> None:
        """A run of ``tenant`` ended here: if it has a ``max_running``, every executor may
        take its next request now."""
        if self._limit(self.shares.cached(tenant)) < 0:
            return
        task = asyncio.create_task(self._ring(tenant))
        self._rings.add(task)
        task.add_done_callback(self._rings.discard)

    async def _ring(self, tenant: str) -> None:
        with contextlib.suppress(nats.errors.Error):
            await self.nc.publish(self.subjects.intake(tenant), b"")

    # --- turns -------------------------------------------------------------------------

    async def _turns(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            try:
                await self._turn()
            except asyncio.CancelledError:
                raise
            except Exception:  # one bad turn must not stop the intake
                log.exception("intake.turn_failed")

    async def _turn(self) -> None:
        if self.stopping:
            return
        self._forget_lost_fetches()
        out = sum(fetch.asked - fetch.delivered for fetch in self._fetches.values())
        room = self.room() - out
        if room <= 0:
            return
        given = self.turns.share(room, busy=self._fetches, most=self.settings.fetch_batch)
        for tenant, count in given.items():
            if not await self._fetch(tenant, count):
                self.turns.refund(tenant, count)
                self.turns.idle(tenant)

    async def _fetch(self, tenant: str, count: int) -> bool:
        consumer = await self._consumer(tenant)
        if consumer is None:
            return False
        most = self._consumers.get(tenant, -1)
        if 0 < most < count:  # it cannot hold more: the rest of its share goes to others
            self.turns.refund(tenant, count - most)
            count = most
            self.refill()
        request = {"batch": count, "no_wait": True, "expires": int(FETCH_WAIT * 1e9)}
        subject = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{consumer}"
        self._fetches[tenant] = _Fetch(asked=count, sent_at=time.monotonic())
        self._rung.discard(tenant)
        try:
            await self.nc.publish(
                subject, msgspec.json.encode(request), reply=f"{self._inbox}.{tenant}"
            )
        except nats.errors.Error as exc:
            log.warning("intake.fetch_failed", tenant=tenant, error=type(exc).__name__)
            del self._fetches[tenant]
            return False
        return True

    def _forget_lost_fetches(self) -> None:
        """A fetch unanswered this long was lost (a server restarted meanwhile). Its tenant
        rejoins the turns at the virtual time, with no refund: while its fetch was out the
        other tenants had every slot, and a refund now would take the virtual time back
        to before them all (the tenant, and any newcomer, would then have a turn for every
        slot they had before the next of the tenants that kept waiting)."""
        now = time.monotonic()
        for tenant, fetch in list(self._fetches.items()):
            if now - fetch.sent_at > 2 * FETCH_PATIENCE:
                log.info("intake.fetch_lost", tenant=tenant)
                del self._fetches[tenant]
                self.turns.idle(tenant)
                self._end_fetch(tenant, waiting=True)

    def _end_fetch(self, tenant: str, *, waiting: bool) -> None:
        fetch = self._fetches.pop(tenant, None)
        if fetch is not None:
            self.turns.refund(tenant, fetch.asked - fetch.delivered)
        if waiting or tenant in self._rung:
            self.turns.ready(tenant)
        else:
            self.turns.idle(tenant)
        self._rung.discard(tenant)
        self.refill()

    async def _on_reply(self, msg: Msg) -> None:
        status = (msg.headers or {}).get(_STATUS)
        if status is not None and not msg.data:  # to the inbox of the tenant's fetch
            tenant = msg.subject.rsplit(".", 1)[-1]
            if status == "100":
                return
            if status == _NO_RESPONDERS:  # no such consumer (idle too long, a restart):
                self._consumers.pop(tenant, None)  # made again at the tenant's next turn
                self._end_fetch(tenant, waiting=True)
                return
            description = str((msg.headers or {}).get("Description", ""))
            if status == "409" and "Consumer Deleted" in description:
                self._consumers.pop(tenant, None)
            self._end_fetch(tenant, waiting=False)  # 404: nothing more; 408: at its limit
            return
        tenant = tenant_of(msg.subject)  # a request keeps the subject it was stored under
        with contextlib.suppress(Exception):  # not a JetStream message (tests)
            self.metrics.tenant_queued.labels(tenant).set(msg.metadata.num_pending)
        if self.stopping:
            with contextlib.suppress(nats.errors.Error):
                await msg.nak()
        else:
            await self.on_message(msg)  # held before the fetch ends: the room is right
        fetch = self._fetches.get(tenant)
        if fetch is not None:
            fetch.delivered += 1
            if fetch.delivered >= fetch.asked:
                self._end_fetch(tenant, waiting=True)  # all it asked for: maybe more

    # --- who is waiting ------------------------------------------------------------------

    async def _on_bell(self, msg: Msg) -> None:
        tenant = msg.subject.rsplit(".", 1)[-1]
        if tenant_id_problem(tenant) is not None:
            return
        if tenant in self._fetches:
            self._rung.add(tenant)
            return
        self.turns.ready(tenant)
        self.refill()

    async def _sweeps(self) -> None:
        while True:
            with contextlib.suppress(nats.errors.Error, js_errors.Error):
                await self.sweep()
            await asyncio.sleep(self.settings.intake_sweep)

    async def sweep(self) -> None:
        """Every tenant with a run request in the stream is looked at (a lost bell, or
        requests stored before this executor started)."""
        info = await self.js.stream_info(
            self.stream, subjects_filter=self.subjects.all_run_requests
        )
        for subject, count in (info.state.subjects or {}).items():
            if count <= 0:
                continue
            tenant = tenant_of(subject)
            if tenant not in self._fetches:  # (a count includes requests held by runs:
                self.turns.ready(tenant)  # it says nothing new about one being fetched)
        self.refill()

    # --- consumers -----------------------------------------------------------------------

    async def _consumer(self, tenant: str) -> str | None:
        """The tenant's consumer, made (or set to its ``max_running``) when needed."""
        name = run_request_consumer(tenant)
        share = await self.shares.get(tenant)
        if share is not None:
            self.turns.weigh(tenant, share.weight)
        limit = self._limit(share)
        have = self._consumers.get(tenant)
        if have is not None and (share is None or have == limit):
            return name
        config = ConsumerConfig(
            durable_name=name,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.settings.lease_seconds,
            max_deliver=-1,
            max_ack_pending=limit,
            filter_subject=self.subjects.run_requests(tenant),
            inactive_threshold=self.settings.tenant_consumer_idle,
        )
        try:
            if share is None:  # unknown settings: make the consumer, never change one
                with contextlib.suppress(js_errors.NotFoundError):
                    info = await self.js.consumer_info(self.stream, name)
                    self._consumers[tenant] = info.config.max_ack_pending or -1
                    return name
            info = await ensure_consumer(self.js, self.stream, config)
        except (FlowmeshError, nats.errors.Error, js_errors.Error) as exc:
            log.warning("intake.consumer_failed", tenant=tenant, error=str(exc))
            return None
        self._consumers[tenant] = info.config.max_ack_pending or -1
        return name

    def _limit(self, share: TenantShare | None) -> int:
        """The ``max_ack_pending`` of a tenant's consumer: its ``max_running`` (-1: none)."""
        most = None if share is None else share.max_running
        if most is None:
            most = self.settings.tenant_max_running or None
        return -1 if most is None else most

    async def _drop_legacy(self) -> None:
        with contextlib.suppress(js_errors.NotFoundError):
            info = await self.js.consumer_info(self.stream, LEGACY_CONSUMER)
            if info.config.filter_subject == self.subjects.all_run_requests:
                await self.js.delete_consumer(self.stream, LEGACY_CONSUMER)
                log.warning("intake.legacy_consumer_deleted", consumer=LEGACY_CONSUMER)
