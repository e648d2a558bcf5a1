"""The registry's health, readiness and metrics endpoints, over real HTTP."""

from __future__ import annotations

import aiohttp
import pytest

from flowmesh_proto import registry as r

from .conftest import Api, Registry, unique

pytestmark = pytest.mark.integration


async def test_health_ready_and_metrics(registry: Registry, api: Api) -> None:
    await api.create(unique("metered"))
    await api("workflow_list", r.WorkflowList())
    base = f"http://127.0.0.1:{registry.app.health_port}"
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"{base}/readyz") as resp:
            assert resp.status == 200
            body = await resp.json()
            assert body["checks"] == {"nats": "ok", "postgres": "ok", "projection": "ok"}
        async with session.get(f"{base}/metrics") as resp:
            text = await resp.text()
    assert (
        'flowmesh_rpc_requests_total{operation="workflow_create",outcome="ok",service="registry"}'
        in text
    )
    assert "process_cpu_seconds_total" in text
