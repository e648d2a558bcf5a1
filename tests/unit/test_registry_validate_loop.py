"""POST /workflows/validate is a viewer's, as often as its rate allows: the check of a large
definition (a quarter of a second) must not hold the registry's event loop meanwhile."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest

from flowmesh_registry import preparation, secrets, workflows
from flowmesh_registry.validate import DEFAULT_LIMITS, validate_definition
from flowmesh_registry.workflows import WorkflowOperations
from flowmesh_shared.errors import FlowmeshError


class _Db:
    @asynccontextmanager
    async def tenant_tx(self, tenant: str) -> AsyncIterator[object]:
        yield object()


def _heavy(salt: int) -> dict[str, Any]:
    """1,000 nodes, each summing its three predecessors' outputs (about 170 KB); ``salt``
    makes every expression new (compiled expressions are cached: a caller varies them)."""

    def value(i: int) -> str:
        earlier = range(max(0, i - 3), i)
        added = " + ".join(f"nodes.n{j}.output.v" for j in earlier)
        return "{{ " + added + f" + {salt}" + " }}" if i else "1"

    return {
        "name": "heavy",
        "nodes": [
            {"id": f"n{i}", "type": "transform", "parameters": {"output": {"v": value(i)}}}
            for i in range(1000)
        ],
        "edges": [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(999)],
    }


async def test_validate_checks_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_secrets(*_: Any, **__: Any) -> frozenset[str]:
        return frozenset()

    monkeypatch.setattr(secrets, "known_names", no_secrets)
    monkeypatch.setattr(workflows, "known_connectors", no_secrets)
    ops = WorkflowOperations(_Db(), DEFAULT_LIMITS, webhooks=None)  # type: ignore[arg-type]
    began = time.perf_counter()
    validate_definition(_heavy(1))
    alone = time.perf_counter() - began  # a check of expressions never seen
    document = _heavy(2)

    lags: list[float] = []

    async def tick() -> None:
        while True:
            at = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - at)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    report = await ops.validate("acme", document)
    await asyncio.sleep(0.01)  # the ticker tells how long its last sleep took
    ticker.cancel()
    assert report.problems == validate_definition(document).problems
    assert max(lags) < alone / 2, (max(lags), alone)  # the whole check when on the loop


async def test_a_write_checks_in_a_worker_thread_too(monkeypatch: pytest.MonkeyPatch) -> None:
    async def nothing(*_: Any, **__: Any) -> frozenset[str]:
        return frozenset()

    monkeypatch.setattr(preparation.secrets, "known_names", nothing)
    monkeypatch.setattr(preparation, "known_connectors", nothing)
    began = time.perf_counter()
    validate_definition(_heavy(3))
    alone = time.perf_counter() - began
    lags: list[float] = []

    async def tick() -> None:
        while True:
            at = time.perf_counter()
            await asyncio.sleep(0.001)
            lags.append(time.perf_counter() - at)

    ticker = asyncio.create_task(tick())
    await asyncio.sleep(0.01)
    with pytest.raises(FlowmeshError):  # 1,000 nodes: past the limit, refused after the check
        await preparation.prepare(object(), "acme", _heavy(4), DEFAULT_LIMITS)  # type: ignore[arg-type]
    await asyncio.sleep(0.01)
    ticker.cancel()
    assert max(lags) < alone / 2, (max(lags), alone)
