"""Turns at the event loop: evaluations spend at most one pass's share before the loop
polls its sockets again (DESIGN section 12)."""

from __future__ import annotations

import asyncio
from collections import Counter

from flowmesh_shared.turns import Turns


async def test_no_pass_of_the_loop_spends_more_than_its_share() -> None:
    turns = Turns(per_pass=10)
    passes = 0
    spent_in: Counter[int] = Counter()
    done = asyncio.Event()

    def tick() -> None:  # one call per pass of the loop
        nonlocal passes
        passes += 1
        if not done.is_set():
            asyncio.get_running_loop().call_soon(tick)

    async def evaluations(count: int) -> None:
        for _ in range(count):
            await turns.take()
            spent_in[passes] += 3  # an evaluation of 3 units
            turns.spend(3)

    asyncio.get_running_loop().call_soon(tick)
    await asyncio.gather(*(evaluations(20) for _ in range(50)))
    done.set()
    assert sum(spent_in.values()) == 50 * 20 * 3  # everything ran
    assert max(spent_in.values()) <= 10 + 3  # a share, and the one that crossed it
    assert len(spent_in) >= 50 * 20 * 3 // 13


async def test_under_its_share_take_does_not_wait() -> None:
    turns = Turns(per_pass=100)
    for _ in range(30):
        await turns.take()
        turns.spend(3)
    assert turns.spent == 90
