"""Stopping the cron loop (``flowmesh_scheduler.crons``): a fire under way finishes, its
mark included, so the next scheduler knows what it has to catch up."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.js import errors as js_errors
from prometheus_client import CollectorRegistry

from flowmesh_scheduler.catalogue import ArmedCron
from flowmesh_scheduler.cron import CronSpec
from flowmesh_scheduler.crons import CronLoop
from flowmesh_scheduler.firing import Fire
from flowmesh_scheduler.metrics import SchedulerMetrics
from tests.helpers import until

CRON = ArmedCron(
    tenant="t",
    workflow_id="w",
    version=1,
    trigger_id="tick",
    spec=CronSpec("* * * * * *"),
    catch_up="all",
)


class Entry:
    def __init__(self, value: bytes, revision: int) -> None:
        self.value, self.revision = value, revision


class Bucket:
    """The few KeyValue calls the loop makes, over a dict."""

    def __init__(self) -> None:
        self.entries: dict[str, Entry] = {}

    async def get(self, key: str) -> Entry:
        if key not in self.entries:
            raise js_errors.KeyNotFoundError
        return self.entries[key]

    async def create(self, key: str, value: bytes) -> int:
        if key in self.entries:
            raise js_errors.KeyWrongLastSequenceError
        self.entries[key] = Entry(value, 1)
        return 1

    async def update(self, key: str, value: bytes, last: int) -> int:
        if self.entries[key].revision != last:
            raise js_errors.KeyWrongLastSequenceError
        self.entries[key] = Entry(value, last + 1)
        return last + 1


class SlowStarter:
    """Starts a run only once released, as JetStream might under load."""

    def __init__(self) -> None:
        self.asked: list[Fire] = []
        self.released = asyncio.Event()

    async def start(self, fire: Fire, *_: Any, **__: Any) -> str:
        self.asked.append(fire)
        await self.released.wait()
        return "run-1"


class Catalogue:
    generation = 1

    def crons(self) -> list[ArmedCron]:
        return [CRON]


async def test_a_stop_lets_the_fire_under_way_move_its_mark() -> None:
    starter, bucket = SlowStarter(), Bucket()
    now = datetime(2026, 12, 6, tzinfo=UTC)
    clock = iter([now] + [now + timedelta(seconds=1)] * 1000)
    loop = CronLoop(
        Catalogue(),  # type: ignore[arg-type]
        starter,  # type: ignore[arg-type]
        bucket,  # type: ignore[arg-type]
        SchedulerMetrics(CollectorRegistry()),
        clock=lambda: next(clock),
    )
    await loop.start()
    await until(lambda: starter.asked, timeout=2)
    stopping = asyncio.create_task(loop.stop(timeout=5))
    await asyncio.sleep(0.05)
    assert not stopping.done()  # it waits for the fire under way
    starter.released.set()
    await asyncio.wait_for(stopping, timeout=2)
    assert bucket.entries[CRON.key].value == b"2026-12-06T00:00:01Z"
    assert len(starter.asked) == 1  # and fires nothing new


async def test_a_stop_cancels_a_fire_that_outlasts_its_bound() -> None:
    starter = SlowStarter()
    now = datetime(2026, 12, 6, tzinfo=UTC)
    clock = iter([now] + [now + timedelta(seconds=1)] * 1000)
    loop = CronLoop(
        Catalogue(),  # type: ignore[arg-type]
        starter,  # type: ignore[arg-type]
        Bucket(),  # type: ignore[arg-type]
        SchedulerMetrics(CollectorRegistry()),
        clock=lambda: next(clock),
    )
    await loop.start()
    await until(lambda: starter.asked, timeout=2)
    await asyncio.wait_for(loop.stop(timeout=0.1), timeout=2)
