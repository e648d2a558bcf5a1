"""The JetStream side of the executor: lease run requests, drive them, keep the leases.

Every replica takes run requests from the tenants' durable consumers on FM_RUN_REQUESTS in
weighted turns (:mod:`flowmesh_executor.intake`), so each request goes to one executor at
a time and no tenant waits behind another's backlog. A request
stays unacked (leased) while its run is driven; the lease is kept alive with
``in_progress`` every third of ``lease_seconds``, and acked once the run has ended. If the
executor dies, the lease lapses and another replica gets the request and resumes the run
from its events. Fencing, not the ack, decides who owns a run (DESIGN section 11): a
fenced driver stops and leaves the message alone.

A heartbeat counts once the server confirmed it (one PING/PONG after the round's
``in_progress`` messages); a lease without a confirmed heartbeat for its term
(:mod:`flowmesh_executor.lease`) is lost for good: its driver stops and the message is
left alone, for the executor it was redelivered to. A driver that gives its run back
after a pause (:class:`~flowmesh_executor.pauses.Paused`) while its lease still holds
naks the message, so the run is taken up again at once.

Cancels arrive on ``<prefix>.*.control.*`` (core NATS) for runs held here, and through the
watched run-control bucket (:class:`.control.CancelBook`) for runs picked up later.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import msgspec
import nats.errors
import structlog
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription

from flowmesh_executor.definitions import EXECUTOR_PRINCIPAL
from flowmesh_executor.driver import RunDriver
from flowmesh_executor.intake import FairIntake, TenantShares
from flowmesh_executor.lease import LeaseLost, RunLease, lease_term
from flowmesh_executor.parts import ExecutorParts
from flowmesh_executor.pauses import Paused
from flowmesh_executor.writer import Fenced
from flowmesh_proto.runs import cancel_request_decoder, control_key, run_request_decoder
from flowmesh_proto.subjects import tenant_of

log = structlog.get_logger("flowmesh.executor.consumer")

#: Seconds before a second request for a run driven here is looked at again.
SECOND_REQUEST_DELAY = 1.0


def _delivery(msg: Msg) -> int:
    try:
        return int(msg.metadata.num_delivered)
    except Exception:  # not a JetStream message (tests)
        return 1


def _stream_seq(msg: Msg) -> int:
    try:
        return int(msg.metadata.sequence.stream)
    except Exception:  # not a JetStream message (tests): treat as the same one
        return 0


@dataclass(slots=True)
class _Lease:
    msg: Msg
    driver: RunDriver
    task: asyncio.Task[None]


class RunConsumer:
    def __init__(self, parts: ExecutorParts) -> None:
        self.parts = parts
        self.settings = parts.services.settings
        self._held: dict[str, _Lease] = {}
        self._stopping = False
        self._feed: FairIntake | None = None
        self._control: Subscription | None = None
        self._tasks: list[asyncio.Task[None]] = []

    @property
    def held(self) -> int:
        return len(self._held)

    async def start(self) -> None:
        services = self.parts.services
        shares = TenantShares(self.parts.rpc, self.settings.tenant_refresh, EXECUTOR_PRINCIPAL)
        self._feed = FairIntake(
            services.nc,
            services.js,
            services.streams.run_requests,
            services.subjects,
            self.settings,
            shares,
            self.parts.metrics,
            self._accept,
            lambda: self.settings.max_runs - len(self._held),
        )
        self._control = await services.nc.subscribe(
            f"{services.subjects.prefix}.*.control.*", cb=self._on_control
        )
        await self._feed.start()
        await self._feed.sweep()
        self._tasks = [
            asyncio.create_task(self._heartbeats(), name="executor.heartbeats"),
            asyncio.create_task(self.parts.pauses.run(), name="executor.pauses"),
        ]

    def pause(self) -> None:
        """Take no new runs until :meth:`resume` (held runs go on; arrivals are handed back)."""
        if self._feed is not None:
            self._feed.pause()

    async def resume(self) -> None:
        if self._feed is not None and not self._stopping:
            await self._feed.resume()

    async def stop(self, timeout: float) -> None:  # noqa: ASYNC109 - the drain bound
        """Stop taking runs; let the held ones finish within ``timeout``; hand the rest back."""
        self._stopping = True
        if self._feed is not None:
            await self._feed.stop()
        running = [lease.task for lease in self._held.values()]
        finished = 0
        if running:
            done, _ = await asyncio.wait(running, timeout=timeout)
            finished = len(done)
        handed_back = 0
        for lease in list(self._held.values()):
            lease.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await lease.task
            if not lease.driver.lease.held(time.monotonic()):
                continue  # a nak now could land on another executor's delivery
            with contextlib.suppress(nats.errors.Error):
                await lease.msg.nak()
            handed_back += 1
        if self._feed is not None:
            await self._feed.close()
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._control is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._control.unsubscribe()
        log.info("executor.drained", finished=finished, handed_back=handed_back)

    # --- intake ------------------------------------------------------------------------

    async def _accept(self, msg: Msg) -> None:
        try:
            request = run_request_decoder.decode(msg.data)
            if tenant_of(msg.subject) != request.tenant:
                raise ValueError("the request's tenant is not its subject's")
        except (msgspec.DecodeError, ValueError) as exc:
            log.error("executor.bad_request", subject=msg.subject, error=str(exc))
            await msg.term()
            return
        key = control_key(request.tenant, request.run_id)
        lease = self._held.get(key)
        if lease is not None:
            if _stream_seq(msg) != _stream_seq(lease.msg):
                # Another request for a run driven here (a wake sent while it was parking,
                # a cancel's wake): look again shortly, when this driving may have ended.
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak(delay=SECOND_REQUEST_DELAY)
            return  # the lease's own message redelivered: keep the first lease
        self._observe_lag(request.tenant, msg)
        driver = RunDriver(
            self.parts,
            request,
            headers=dict(msg.headers or {}),
            lease=RunLease(lease_term(self.settings.lease_seconds), time.monotonic()),
            delivery=_delivery(msg),
        )
        task = asyncio.create_task(self._drive(key, msg, driver), name=f"run:{request.run_id}")
        self._held[key] = _Lease(msg=msg, driver=driver, task=task)
        self._count(request.tenant, 1)

    def _count(self, tenant: str, change: int) -> None:
        metrics = self.parts.metrics
        metrics.active.set(len(self._held))
        metrics.tenant_running.labels(tenant).inc(change)

    def _observe_lag(self, tenant: str, msg: Msg) -> None:
        with contextlib.suppress(Exception):
            published = msg.metadata.timestamp
            lag = max(0.0, (datetime.now(UTC) - published).total_seconds())
            self.parts.metrics.queue_lag.observe(lag)
            self.parts.metrics.tenant_queue_wait.labels(tenant).observe(lag)

    async def _drive(self, key: str, msg: Msg, driver: RunDriver) -> None:
        request = driver.request
        bound = structlog.contextvars.bound_contextvars(
            tenant=request.tenant, run_id=request.run_id
        )
        try:
            with bound:
                await driver.drive()
            await msg.ack()
        except Fenced as exc:
            log.warning("run.fenced", tenant=request.tenant, run_id=request.run_id, detail=str(exc))
            self.parts.metrics.runs.labels("fenced").inc()
        except LeaseLost as exc:
            log.warning(
                "run.lease_lost", tenant=request.tenant, run_id=request.run_id, detail=str(exc)
            )
            self.parts.metrics.runs.labels("lease_lost").inc()
        except Paused as exc:
            held = driver.lease.held(time.monotonic())
            log.warning(
                "run.handed_back",
                tenant=request.tenant,
                run_id=request.run_id,
                detail=str(exc),
                lease_held=held,
            )
            self.parts.metrics.runs.labels("handed_back").inc()
            if held:  # still ours: let another driver take it up at once
                self._release(key, msg)
                with contextlib.suppress(nats.errors.Error):
                    await msg.nak()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run.interrupted", tenant=request.tenant, run_id=request.run_id)
            self.parts.metrics.runs.labels("interrupted").inc()
            with contextlib.suppress(nats.errors.Error):
                await msg.nak(delay=1.0)
        finally:
            self._release(key, msg)

    def _release(self, key: str, msg: Msg) -> None:
        """Forget the lease of ``msg`` (not a later one of the same run, taken meanwhile)."""
        lease = self._held.get(key)
        if lease is None or lease.msg is not msg:
            return
        del self._held[key]
        tenant = lease.driver.request.tenant
        self._count(tenant, -1)
        if self._feed is not None:
            self._feed.ring(tenant)
            if not self._stopping:
                self._feed.refill()

    # --- leases and control ------------------------------------------------------------

    async def _heartbeats(self) -> None:
        interval = max(0.1, self.settings.lease_seconds / 3)
        while True:
            await asyncio.sleep(interval)
            await self._heartbeat(interval)

    async def _heartbeat(self, patience: float) -> None:
        """One round: ``in_progress`` for every lease still held, then a PING/PONG that
        confirms the server has them all; only then are the leases renewed, from the time
        the round began. A lease found lapsed is not renewed: its driver is told to stop."""
        sent_at = time.monotonic()
        sent: list[_Lease] = []
        for lease in list(self._held.values()):
            if not lease.driver.lease.held(sent_at):
                lease.driver.lease_lost()
                continue
            try:
                await lease.msg.in_progress()
            except nats.errors.Error as exc:
                log.warning("executor.heartbeat_failed", error=type(exc).__name__)
                continue
            sent.append(lease)
        if not sent:
            return
        try:
            await asyncio.wait_for(self.parts.services.nc.flush(), patience)
        except (nats.errors.Error, TimeoutError) as exc:
            log.warning("executor.heartbeat_unconfirmed", error=type(exc).__name__)
            return
        for lease in sent:
            if not lease.driver.lease.renewed(sent_at):
                lease.driver.lease_lost()

    async def _on_control(self, msg: Msg) -> None:
        try:
            cancel = cancel_request_decoder.decode(msg.data)
        except msgspec.DecodeError:
            log.warning("executor.bad_control", subject=msg.subject)
            return
        if tenant_of(msg.subject) != cancel.tenant:
            return
        self.cancel(control_key(cancel.tenant, cancel.run_id), cancel.reason)

    def cancel(self, key: str, reason: str) -> None:
        """Cancel the run ``<tenant>.<run_id>`` if this executor holds it."""
        lease = self._held.get(key)
        if lease is not None:
            lease.driver.cancel(reason)
