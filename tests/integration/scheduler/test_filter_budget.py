"""A tenant's costly event filters hold no scheduler (DESIGN section 12): a filter over its
budget is no match, counted, while another tenant's event starts its run in its normal
time and /healthz keeps answering."""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any

import aiohttp
import pytest

from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.gateway.conftest import Client

from .conftest import Schedulers
from .test_triggers import ORDER, Seen, publish, workflow

pytestmark = pytest.mark.integration

#: Two levels pass validation; over 3,000 items one evaluation would run for minutes.
COSTLY = "event.data.l.map(a, event.data.l.map(b, a + b)).size() > 0"
OVER_BUDGET = re.compile(
    r'^flowmesh_scheduler_expressions_over_budget_total\{where="filter"\} (\S+)$', re.MULTILINE
)


async def over_budget(session: aiohttp.ClientSession, port: int) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        found = OVER_BUDGET.search(await response.text())
    return float(found.group(1)) if found else 0.0


async def test_costly_filters_are_no_match_and_hold_no_other_tenants_event(
    client: Client,
    other_client: Client,
    schedulers: Schedulers,
    nc: Any,
    subjects: Subjects,
    streams: StreamNames,
) -> None:
    replica = await schedulers.start()
    port = replica.app.health_port
    for i in range(5):
        await workflow(client, f"costly-{i}", {**ORDER, "filter": COSTLY})
    theirs = await workflow(other_client, "theirs", ORDER)
    victim = Seen(nc, subjects, streams, other_client.tenant.id)
    await asyncio.sleep(0.3)  # the catalogue hears of the new workflows

    slowest = 0.0
    async with aiohttp.ClientSession() as session:

        async def probe() -> None:
            nonlocal slowest
            while True:
                started = time.perf_counter()
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    assert response.status == 200
                slowest = max(slowest, time.perf_counter() - started)
                await asyncio.sleep(0.01)

        probing = asyncio.create_task(probe())
        try:
            started = time.perf_counter()
            for _ in range(4):
                await publish(
                    nc, subjects, client.tenant.id, "order.created", {"l": list(range(3000))}
                )
            await publish(nc, subjects, other_client.tenant.id, "order.created", {"total": 101})
            (queued,) = await until(lambda: victim.queued(theirs), timeout=10)
            victim_took = time.perf_counter() - started
            counted = await until(
                lambda: _at_least(session, port, 20), message="every costly filter is counted"
            )
        finally:
            probing.cancel()
    assert queued.trigger.data == {"total": 101}
    assert victim_took < 3.0  # one costly filter evaluated would take minutes
    assert counted >= 20  # 5 filters x 4 events, each no match
    assert slowest < 0.25, f"/healthz took {slowest * 1000:.0f} ms"


async def _at_least(session: aiohttp.ClientSession, port: int, count: float) -> float | None:
    value = await over_budget(session, port)
    return value if value >= count else None
