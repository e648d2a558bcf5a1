"""Noticing that this process stood still (SIGSTOP, a frozen VM, a blocked event loop).

A step's own timers (the attempt's ``asyncio`` deadline, an ``http`` call's timeout) run
on the monotonic clock, which goes on counting while the process is stopped. After a
pause they fire at once, and the step "times out" though nothing was slow but this
process. Such a failure is not the step's: the run is handed back instead (the lease
holder runs the step again; steps are at-least-once), see :mod:`flowmesh_executor.driver`.

:class:`PauseWatch` ticks every ``tick`` seconds; a tick that comes more than ``threshold``
seconds after the one before is a pause. ``paused_since(t, now)`` also counts a pause that
is still being noticed (the watch has not ticked since the loop woke up), so a step whose
timer fired first in the wake-up is judged right.
"""

from __future__ import annotations

import asyncio
import math
import time

import structlog

__all__ = ["MIN_PAUSE", "PauseWatch", "Paused", "pause_threshold"]

log = structlog.get_logger("flowmesh.executor.pauses")

#: The shortest stall counted as a pause (seconds): under load an event loop lags by tens
#: or hundreds of milliseconds, which is slowness, not a pause.
MIN_PAUSE = 1.0
#: Of the lease, the stall counted as a pause when that is longer than MIN_PAUSE.
PAUSE_FRACTION = 1 / 10


class Paused(Exception):
    """A step failed after this process stood still: hand the run back, record nothing."""


def pause_threshold(lease_seconds: float) -> float:
    return max(MIN_PAUSE, lease_seconds * PAUSE_FRACTION)


class PauseWatch:
    def __init__(self, threshold: float, tick: float = 0.1, now: float | None = None) -> None:
        self.threshold = threshold
        self.tick = tick
        self.last_tick = time.monotonic() if now is None else now
        #: When the latest pause was noticed to have ended (monotonic), -inf: none yet.
        self.last_pause_end = -math.inf
        self.pauses = 0

    def ticked(self, now: float) -> float | None:
        """Record a tick at ``now``; the length of the pause it ends, if it ends one."""
        gap, self.last_tick = now - self.last_tick, now
        if gap <= self.threshold:
            return None
        self.pauses += 1
        self.last_pause_end = now
        return gap

    def paused_since(self, since: float, now: float) -> bool:
        """Whether the process stood still after ``since`` (both monotonic)."""
        return self.last_pause_end > since or now - self.last_tick > self.threshold

    async def run(self) -> None:
        """Tick until cancelled."""
        while True:
            await asyncio.sleep(self.tick)
            gap = self.ticked(time.monotonic())
            if gap is not None:
                log.warning("executor.paused", seconds=round(gap, 3))
