"""The trace of an HTTP request continues into the NATS request the gateway makes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from flowmesh_proto.subjects import Subjects
from tests.integration.harness import Registry

from .conftest import Client

pytestmark = pytest.mark.integration

TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


async def test_traceparent_and_request_id_reach_the_registry(
    client: Client, registry: Registry, nc: Any
) -> None:
    subject = Subjects(registry.settings.subject_prefix).rpc("registry", "workflow_list")
    seen: asyncio.Queue[Any] = asyncio.Queue()
    sub = await nc.subscribe(subject, cb=seen.put)  # a copy of each request, beside the queue group
    try:
        status, _, headers = await client(
            "GET",
            "/workflows",
            headers={
                "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01",
                "X-Request-Id": "trace-test-1",
            },
        )
        assert status == 200
        msg = await asyncio.wait_for(seen.get(), 5)
    finally:
        await sub.unsubscribe()
    assert msg.headers["traceparent"].split("-")[1] == TRACE_ID
    assert msg.headers["Fm-Request-Id"] == "trace-test-1"
    assert msg.headers["Fm-Tenant"] == client.tenant.id
    assert msg.headers["Fm-Principal"].startswith(f"key:{client.tenant.id}:")
    assert headers["X-Request-Id"] == "trace-test-1"
