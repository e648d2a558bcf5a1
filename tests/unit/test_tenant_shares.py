"""Tenants' weights and ``max_running`` as the executor's intake keeps them
(:class:`~flowmesh_executor.intake.TenantShares`), against a registry that answers, is
slow, or cannot answer."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any, cast

from flowmesh_executor.definitions import EXECUTOR_PRINCIPAL
from flowmesh_executor.intake import TenantShare, TenantShares
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import RpcClient
from tests.helpers import until


class Registry:
    """Answers ``tenant_get`` with ``weight``, once ``answering`` is set; or fails with
    ``failing``."""

    def __init__(self) -> None:
        self.calls = 0
        self.weight = 2
        self.failing: ErrorCode | None = None
        self.answering = asyncio.Event()
        self.answering.set()

    async def call(self, request: r.TenantGet, **_: Any) -> r.Tenant:
        self.calls += 1
        await self.answering.wait()
        if self.failing is not None:
            raise FlowmeshError(self.failing, "no")
        return r.Tenant(id=request.id, name="t", created_at=datetime.now(UTC), weight=self.weight)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _shares(registry: Registry, clock: Clock, refresh: float = 10) -> TenantShares:
    return TenantShares(cast(RpcClient, registry), refresh, EXECUTOR_PRINCIPAL, clock=clock)


async def test_a_share_is_read_once_per_refresh() -> None:
    registry, clock = Registry(), Clock()
    shares = _shares(registry, clock)
    assert await shares.get("acme") == TenantShare(weight=2)
    clock.now += 9
    assert await shares.get("acme") == TenantShare(weight=2)
    assert registry.calls == 1
    registry.weight = 3
    clock.now += 2
    await shares.get("acme")
    await until(lambda: shares.cached("acme") == TenantShare(weight=3), timeout=1)
    assert registry.calls == 2


async def test_a_slow_registry_never_holds_a_turn_of_a_tenant_already_known() -> None:
    """The intake asks for a share in every turn of the tenant: a registry that takes its
    whole timeout (1 s) to answer must not hold every turn for it."""
    registry, clock = Registry(), Clock()
    shares = _shares(registry, clock)
    assert await shares.get("acme") == TenantShare(weight=2)
    registry.answering.clear()
    registry.weight = 3
    clock.now += 11
    for _ in range(5):
        assert await asyncio.wait_for(shares.get("acme"), 0.1) == TenantShare(weight=2)
    assert registry.calls == 2  # one read in the background, not one per turn
    registry.answering.set()
    await until(lambda: shares.cached("acme") == TenantShare(weight=3), timeout=1)


async def test_a_registry_that_cannot_answer_is_asked_once_per_refresh_not_every_turn() -> None:
    registry, clock = Registry(), Clock()
    shares = _shares(registry, clock)
    assert await shares.get("acme") == TenantShare(weight=2)
    registry.failing = ErrorCode.UNAVAILABLE
    clock.now += 11
    for _ in range(5):
        assert await shares.get("acme") == TenantShare(weight=2)
        await asyncio.sleep(0)
    assert registry.calls == 2
    assert await shares.get("other") is None
    assert await shares.get("other") is None
    assert registry.calls == 3
    registry.failing = None
    clock.now += 11
    assert await shares.get("other") is None  # asked again, in the background
    await until(lambda: shares.cached("other") == TenantShare(weight=2), timeout=1)
    assert registry.calls == 4


async def test_stop_ends_the_reads_in_the_background() -> None:
    registry, clock = Registry(), Clock()
    shares = _shares(registry, clock)
    await shares.get("acme")
    registry.answering.clear()
    clock.now += 11
    await shares.get("acme")
    await until(lambda: registry.calls == 2, timeout=1)
    await asyncio.wait_for(shares.stop(), 1)
    assert shares.cached("acme") == TenantShare(weight=2)
    assert not shares._reading
