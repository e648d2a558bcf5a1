"""The worker's intake survives every way a fetch can time out."""

from __future__ import annotations

import asyncio
from typing import Any

import nats.errors
import pytest

from flowmesh_worker.worker import Worker, _Queue


class _Subscription:
    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def fetch(self, batch: int, timeout: float) -> list[Any]:  # noqa: ASYNC109
        raise self.error


async def _nothing(payload: Any, task: Any) -> Any:
    return None


@pytest.mark.parametrize(
    "error",
    [nats.errors.TimeoutError(), TimeoutError()],
    ids=["nats", "bare"],
)
async def test_a_fetch_that_times_out_returns_nothing(error: BaseException) -> None:
    worker = Worker(object(), tenant="acme")  # type: ignore[arg-type]
    queue = _Queue(name="q", subject="fm.acme.tasks.q", handler=_nothing, limit=1)
    queue.sub = _Subscription(error)  # type: ignore[assignment]
    stopping = asyncio.create_task(asyncio.Event().wait())
    try:
        assert await worker._fetch(queue, 4, stopping) == []
    finally:
        stopping.cancel()
