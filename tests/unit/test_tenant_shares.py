"""Tenants' weights and ``max_running`` as the executor's intake keeps them
(:class:`~flowmesh_executor.intake.TenantShares`), against a registry that answers, is
slow, or cannot answer."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from flowmesh_executor.definitions import EXECUTOR_PRINCIPAL
from flowmesh_executor.intake import TenantShare, TenantShares
from flowmesh_proto import registry as r
from flowmesh_proto.errors import ErrorCode
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.rpc import RpcClient


class Registry:
    """Answers ``tenant_get`` with ``weight`` 2, or fails with ``failing``."""

    def __init__(self) -> None:
        self.calls = 0
        self.failing: ErrorCode | None = None

    async def call(self, request: r.TenantGet, **_: Any) -> r.Tenant:
        self.calls += 1
        if self.failing is not None:
            raise FlowmeshError(self.failing, "no")
        return r.Tenant(id=request.id, name="t", created_at=datetime.now(UTC), weight=2)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _shares(registry: Registry, refresh: float, clock: Clock | None = None) -> TenantShares:
    return TenantShares(
        cast(RpcClient, registry), refresh, EXECUTOR_PRINCIPAL, clock=clock or Clock()
    )


async def test_a_share_is_read_once_per_refresh() -> None:
    registry = Registry()
    shares = _shares(registry, refresh=60)
    assert await shares.get("acme") == TenantShare(weight=2)
    assert await shares.get("acme") == TenantShare(weight=2)
    assert registry.calls == 1


async def test_a_registry_that_cannot_answer_is_asked_once_per_refresh_not_every_turn() -> None:
    """Each failed call costs the intake its timeout (1 s), in the turn of every tenant:
    while the registry is down, the last known share is used for another refresh."""
    registry, clock = Registry(), Clock()
    shares = _shares(registry, refresh=10, clock=clock)
    assert await shares.get("acme") == TenantShare(weight=2)
    registry.failing = ErrorCode.UNAVAILABLE
    clock.now += 11
    for _ in range(5):
        assert await shares.get("acme") == TenantShare(weight=2)
    assert registry.calls == 2
    assert await shares.get("other") is None
    assert await shares.get("other") is None
    assert registry.calls == 3
    registry.failing = None
    clock.now += 11
    assert await shares.get("acme") == TenantShare(weight=2)
    assert await shares.get("other") == TenantShare(weight=2)
    assert registry.calls == 5
