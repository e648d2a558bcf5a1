"""Long waits, in process: the executor holds the run's lease while it sleeps.

This is the interface the scheduler's durable timers will implement (DESIGN section 5):
record the wait, ack the run, and be asked again when it is due. Until then a delay keeps
its run on this executor (its lease heartbeats), and a run whose executor dies mid-delay
resumes elsewhere and sleeps only for what is left.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class InProcessWaits:
    async def sleep_until(self, at: datetime) -> None:
        remaining = (at - datetime.now(UTC)).total_seconds()
        if remaining > 0:
            await asyncio.sleep(remaining)
