"""Holds and shared rate limits across replicas, over the in-memory store (no server)."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack

import pytest
from prometheus_client import CollectorRegistry

from flowmesh_gateway import holds as h
from flowmesh_gateway.counters import MemoryCounters
from flowmesh_gateway.quotas import QuotaExceeded, Quotas
from flowmesh_gateway.ratelimit import RateLimiter
from flowmesh_gateway.settings import GatewaySettings

LIMITS = h.HoldLimits(per_credential=2, per_tenant=3)


def replica(counters: MemoryCounters, name: str, **settings: float) -> Quotas:
    return Quotas(counters, GatewaySettings(**settings), CollectorRegistry(), replica=name)


def test_judge_counts_every_live_replica_but_its_own_stored_part() -> None:
    holds = h.TenantHolds(
        {"b": h.ReplicaHolds(10.0, {"k1": 1, "k2": 1}), "a": h.ReplicaHolds(10.0, {"k1": 5})}
    )
    assert h.judge(holds, "a", {"k1": 0}, "k1", LIMITS) == h.Verdict(True)
    assert h.judge(holds, "a", {"k1": 1}, "k1", LIMITS) == h.Verdict(False, "credential")
    assert h.judge(holds, "a", {"k3": 1}, "k3", LIMITS) == h.Verdict(False, "tenant")


def test_a_replica_that_stopped_renewing_counts_for_nothing_after_the_lease() -> None:
    holds = h.TenantHolds(
        {"dead": h.ReplicaHolds(0.0, {"k": 9}), "up": h.ReplicaHolds(25.0, {"k": 1})}
    )
    assert h.total(h.live(holds, 29.9, lease=30.0)) == 10
    assert h.live(holds, 30.0, lease=30.0).replicas.keys() == {"up"}


def test_unreadable_values_are_no_holds() -> None:
    assert h.decode(b"{not json") == h.TenantHolds()
    assert h.decode(None) == h.TenantHolds()
    empty = h.with_mine(h.TenantHolds({"a": h.ReplicaHolds(1.0, {"k": 1})}), "a", {"k": 0}, 2.0)
    assert empty == h.TenantHolds()


async def test_two_replicas_share_the_holds_of_a_credential_and_a_tenant() -> None:
    counters = MemoryCounters()
    a, b = replica(counters, "a"), replica(counters, "b")
    async with AsyncExitStack() as held:
        await held.enter_async_context(a.hold("t", "key:1", LIMITS))
        await held.enter_async_context(b.hold("t", "key:1", LIMITS))
        with pytest.raises(QuotaExceeded) as refused:
            await held.enter_async_context(a.hold("t", "key:1", LIMITS))
        assert refused.value.headers["Retry-After"] == "5"
        await held.enter_async_context(b.hold("t", "key:2", LIMITS))
        with pytest.raises(QuotaExceeded, match="tenant"):
            await held.enter_async_context(a.hold("t", "key:3", LIMITS))
        await held.enter_async_context(a.hold("other", "key:9", LIMITS))  # its own count
        assert (a.holding("t"), b.holding("t")) == (1, 2)
    assert (a.holding("t"), b.holding("t"), a.holding("other")) == (0, 0, 0)
    await asyncio.gather(a.close(), b.close())
    raw, _ = await counters.read("holds.t")
    assert h.total(h.decode(raw)) == 0


async def test_a_hold_is_released_when_its_block_fails() -> None:
    quotas = replica(MemoryCounters(), "a")
    with pytest.raises(RuntimeError):
        async with quotas.hold("t", "key:1", LIMITS):
            raise RuntimeError("the stream broke")
    assert quotas.holding("t") == 0


async def test_a_dead_replicas_holds_are_freed_one_lease_later() -> None:
    counters = MemoryCounters()
    dead, alive = (
        replica(counters, "dead", hold_lease_seconds=0.3),
        replica(counters, "alive", hold_lease_seconds=0.3),
    )
    limits = h.HoldLimits(per_credential=1, per_tenant=1)
    await dead._acquire("t", "k", limits)  # never released: the process "dies" holding it
    with pytest.raises(QuotaExceeded):
        await alive._acquire("t", "k", limits)
    await asyncio.sleep(0.35)
    await alive._acquire("t", "k", limits)


async def test_an_unreachable_store_falls_back_to_this_replicas_own_counts() -> None:
    counters = MemoryCounters()
    a, b = replica(counters, "a"), replica(counters, "b")
    await b._acquire("t", "k", LIMITS)
    counters.unreachable = True
    async with AsyncExitStack() as held:
        for _ in range(2):
            await held.enter_async_context(a.hold("t", "k", LIMITS))  # b's is not seen
        with pytest.raises(QuotaExceeded):
            await held.enter_async_context(a.hold("t", "k", LIMITS))  # never unlimited
    local = RateLimiter(rate=1.0, burst=2)
    decisions = [(await a.take("rate.tenant.t", 1.0, 2, local)).allowed for _ in range(3)]
    assert decisions == [True, True, False]
    assert a.metrics.store_unavailable._value.get() >= 4
    counters.unreachable = False
    await a.close()  # what was unsaid is said once the store answers
    raw, _ = await counters.read("holds.t")
    assert h.decode(raw).replicas.keys() == {"b"}


async def test_replicas_draw_from_one_rate_bucket() -> None:
    counters = MemoryCounters()
    a, b = replica(counters, "a"), replica(counters, "b")
    local = RateLimiter(rate=1000.0, burst=1000)  # never used while the store answers
    allowed = 0
    for i in range(40):
        quotas = a if i % 2 else b
        allowed += (await quotas.take("rate.tenant.t", 0.01, 10, local)).allowed
    assert allowed == 10
    refused = await a.take("rate.tenant.t", 0.01, 10, local)
    assert not refused.allowed and refused.retry_after_seconds > 1


async def test_a_replica_spends_drawn_tokens_without_asking_again() -> None:
    counters = MemoryCounters()
    quotas = replica(counters, "a", shared_rate_chunk=10)
    local = RateLimiter(rate=1.0, burst=1)
    for _ in range(10):
        assert (await quotas.take("rate.tenant.t", 200.0, 400, local)).allowed
    raw, revision = await counters.read("rate.tenant.t")
    assert raw is not None and revision == 1  # one write for ten requests
