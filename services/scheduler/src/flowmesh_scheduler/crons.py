"""Cron triggers firing: every replica runs every cron trigger; JetStream keeps one run.

Each fire is published as a run named ``cron:<workflow>:<trigger>:<fire time>`` (the run
request's ``Nats-Msg-Id``; the run id is derived from it), so any number of replicas firing
the same tick start one run. The last fire of each trigger is kept in the cron bucket
(``<tenant>.<workflow_id>.<trigger_id>`` -> RFC 3339 time, only ever moved forward), and
at start every trigger's missed fires (since that last fire) are fired by its ``catch_up``
policy (:func:`.cron.missed`) before its schedule goes on. A trigger met for the first
time starts with its next fire. A changed catalogue (a trigger added, changed, disabled)
reschedules: a trigger whose schedule did not change keeps its next fire.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
from collections.abc import Callable
from datetime import UTC, datetime

import structlog
from nats.js import errors as js_errors
from nats.js.kv import KeyValue

from flowmesh_proto.msgids import cron_fire_name, fire_stamp
from flowmesh_proto.runs import TriggerInfo
from flowmesh_scheduler.catalogue import ArmedCron, Catalogue
from flowmesh_scheduler.cron import missed
from flowmesh_scheduler.firing import Fire, Starter
from flowmesh_scheduler.metrics import SchedulerMetrics

log = structlog.get_logger("flowmesh.scheduler.cron")

Clock = Callable[[], datetime]


class CronLoop:
    def __init__(
        self,
        catalogue: Catalogue,
        starter: Starter,
        bucket: KeyValue,
        metrics: SchedulerMetrics,
        *,
        catch_up_max: int = 100,
        clock: Clock = lambda: datetime.now(UTC),
    ) -> None:
        self.catalogue, self.starter, self.bucket = catalogue, starter, bucket
        self.metrics, self.catch_up_max, self.clock = metrics, catch_up_max, clock
        #: key -> (the schedule it was computed for, the next fire)
        self._next: dict[str, tuple[tuple[str, str, int], datetime]] = {}
        self._armed: dict[str, ArmedCron] = {}
        self._seen_generation = -1
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._caught_up: set[str] = set()
        self._stopping = False

    def changed(self) -> None:
        """The catalogue changed: look again."""
        self._wake.set()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="scheduler.cron")

    async def stop(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Fire nothing new; let a fire under way (its run started, then its mark moved)
        finish for up to ``timeout`` seconds, then cancel. A fire cut between the two would
        leave its mark behind, and the next scheduler would not catch up what it missed."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        done, _ = await asyncio.wait({self._task}, timeout=timeout)
        if not done:
            self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._tick()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # NATS down: look again shortly; fires are idempotent
                log.warning("cron.tick_failed", error=str(exc), error_type=type(exc).__name__)
                await asyncio.sleep(0.5)

    async def _tick(self) -> None:
        if self._stopping:
            return
        if self._seen_generation != self.catalogue.generation:
            await self._reschedule()
        due = self._due()
        if due:
            await asyncio.gather(*(self._fire_due(key) for key in due))
            return
        wait = self._wait_seconds()
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout=wait)

    def _due(self) -> list[str]:
        now = self.clock()
        return [key for key, (_, at) in self._next.items() if at <= now]

    def _wait_seconds(self) -> float:
        if not self._next:
            return 60.0
        soonest = heapq.nsmallest(1, (at for _, at in self._next.values()))[0]
        return max(0.0, min(60.0, (soonest - self.clock()).total_seconds()))

    async def _reschedule(self) -> None:
        generation = self.catalogue.generation
        armed = {item.key: item for item in self.catalogue.crons()}
        now = self.clock()
        for key in list(self._next):
            if key not in armed:
                del self._next[key]
        for key, item in armed.items():
            schedule = (item.spec.expression, item.spec.zone.key, item.version)
            known = self._next.get(key)
            if known is not None and known[0][:2] == schedule[:2]:
                self._next[key] = (schedule, known[1])
                continue
            if key not in self._caught_up:
                self._caught_up.add(key)
                await self._catch_up(item, now)
            self._next[key] = (schedule, item.spec.next_fire(now))
        self._armed = armed
        self._seen_generation = generation
        self.metrics.cron_triggers.set(len(armed))

    async def _catch_up(self, armed: ArmedCron, now: datetime) -> None:
        last = await self._last_fire(armed.key)
        fires = missed(armed.spec, armed.catch_up, last, now, self.catch_up_max)
        if fires:
            log.info(
                "cron.catching_up",
                trigger=armed.key,
                policy=armed.catch_up,
                last_fire=last.isoformat() if last else None,
                fires=len(fires),
            )
        for at in fires:
            if self._stopping:  # the next scheduler catches up the rest
                return
            await self._fire(armed, at, caught_up=True)

    async def _fire_due(self, key: str) -> None:
        schedule, at = self._next[key]
        armed = self._armed.get(key)
        if armed is None:
            del self._next[key]
            return
        await self._fire(armed, at, caught_up=False)
        current = self._next.get(key)
        if current is not None and current[1] == at:
            self._next[key] = (schedule, armed.spec.next_fire(at))

    async def _fire(self, armed: ArmedCron, at: datetime, *, caught_up: bool) -> None:
        data: dict[str, object] = {"fire_time": fire_stamp(at)}
        if caught_up:
            data["caught_up"] = True
        fire = Fire(
            tenant=armed.tenant,
            workflow_id=armed.workflow_id,
            version=armed.version,
            name=cron_fire_name(armed.workflow_id, armed.trigger_id, at),
            at=at,
            trigger=TriggerInfo(kind="cron", trigger_id=armed.trigger_id, data=data),
            input=data,
        )
        run_id = await self.starter.start(fire)
        lateness = (self.clock() - at).total_seconds()
        self.metrics.fires.labels("cron").inc()
        self.metrics.fire_lateness.labels("cron").observe(max(0.0, lateness))
        log.info("cron.fired", trigger=armed.key, fire_time=fire_stamp(at), run_id=run_id)
        await self._remember(armed.key, at)

    async def _last_fire(self, key: str) -> datetime | None:
        try:
            entry = await self.bucket.get(key)
        except js_errors.KeyNotFoundError:
            return None
        return _parse(entry.value)

    async def _remember(self, key: str, at: datetime) -> None:
        """Move the trigger's last fire forward to ``at`` (never back), by compare-and-set."""
        value = fire_stamp(at).encode()
        for _ in range(5):
            try:
                entry = await self.bucket.get(key)
            except js_errors.KeyNotFoundError:
                with contextlib.suppress(js_errors.KeyWrongLastSequenceError):
                    await self.bucket.create(key, value)
                    return
                continue
            stored = _parse(entry.value)
            if stored is not None and stored >= at:
                return
            with contextlib.suppress(js_errors.KeyWrongLastSequenceError):
                await self.bucket.update(key, value, last=entry.revision)
                return


def _parse(raw: bytes | None) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw.decode())
    except ValueError:
        return None
