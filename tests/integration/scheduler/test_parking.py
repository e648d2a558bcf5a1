"""Parked runs: a run whose steps all wait long gives its lease back and a durable timer
(served by the scheduler) asks for it again when due. A module of its own stack (registry,
gateway, executor with a short ``park_after``, scheduler), so no other executor takes the
runs."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from datetime import datetime, timedelta
from typing import Any

import msgspec
import pytest
import pytest_asyncio

from flowmesh_executor.main import start_executor
from flowmesh_executor.settings import ExecutorSettings
from flowmesh_proto import headers as h
from flowmesh_proto.events import EventEnvelope
from flowmesh_scheduler.main import start_scheduler
from flowmesh_scheduler.settings import SchedulerSettings
from tests.helpers import until
from tests.integration.gateway.conftest import Client, Isolated, isolated
from tests.integration.harness import new_tenant, stream_prefix_of

from .runs_seen import kinds, tenant_runs

pytestmark = pytest.mark.integration

__all__ = ["isolated"]


class Parts:
    def __init__(self, isolated: Isolated, client: Client) -> None:
        self.isolated, self.client = isolated, client
        self.executor_started = asyncio.Event()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def parts(isolated: Isolated) -> AsyncIterator[Parts]:
    settings = isolated.registry.settings
    common = {
        "nats_url": settings.nats_url,
        "subject_prefix": isolated.subjects.prefix,
        "stream_prefix": stream_prefix_of(isolated.streams),
        "http_port": 0,
        "shutdown_timeout": 2.0,
        "log_level": "warning",
    }
    async with AsyncExitStack() as stack:
        await start_executor(ExecutorSettings(**common, lease_seconds=5.0, park_after=0.5), stack)
        scheduler = await start_scheduler(SchedulerSettings(**common, ack_wait=5.0), stack)
        await until(lambda: scheduler.sync.loaded)
        client = Client(isolated.http, await new_tenant(isolated.registry, "park"))
        yield Parts(isolated, client)


async def run_of(client: Client, definition: dict[str, Any]) -> dict[str, Any]:
    code, body, _ = await client("POST", "/workflows", json=definition)
    assert code == 201, body
    code, body, _ = await client("POST", f"/workflows/{body['id']}/execute", json={})
    assert code == 202, body
    run_id = body["run_id"]

    async def done() -> dict[str, Any] | None:
        code, run, _ = await client("GET", f"/runs/{run_id}")
        assert code == 200, run
        return run if run["status"] in ("succeeded", "failed") else None

    found: dict[str, Any] = await until(done, timeout=15)
    return found


async def test_a_long_delay_parks_the_run_and_the_timer_resumes_it(parts: Parts, nc: Any) -> None:
    definition = {
        "name": "parked",
        "nodes": [
            {"id": "before", "type": "noop"},
            {"id": "nap", "type": "delay", "parameters": {"duration": "PT1.5S"}},
            {"id": "after", "type": "noop"},
        ],
        "edges": [{"from": "before", "to": "nap"}, {"from": "nap", "to": "after"}],
    }
    js = nc.jetstream()
    timers_before = (await js.stream_info(parts.isolated.streams.timers)).state.last_seq
    run = await run_of(parts.client, definition)
    assert run["status"] == "succeeded", run
    timers_after = (await js.stream_info(parts.isolated.streams.timers)).state.last_seq
    assert timers_after == timers_before + 1  # parked once, on a durable timer
    steps = {step["node_id"]: step for step in run["steps"]}
    nap = steps["nap"]
    waited = datetime.fromisoformat(nap["finished_at"]) - datetime.fromisoformat(nap["started_at"])
    assert timedelta(seconds=1.5) <= waited < timedelta(seconds=3), waited
    events = (
        await tenant_runs(
            nc, parts.isolated.subjects, parts.isolated.streams, parts.client.tenant.id
        )
    )[run["id"]]
    # Two executions of the run: started, parked (nothing published), resumed when due,
    # the resumption claiming the run before anything else.
    assert kinds(events).count("run.started") == 1
    assert kinds(events).count("run.claimed") == 1
    assert kinds(events)[-1] == "run.succeeded"
    claimed = kinds(events).index("run.claimed")
    assert kinds(events)[claimed + 1 :] == ["steps", "run.succeeded"], kinds(events)


async def test_a_short_delay_is_not_parked(parts: Parts, nc: Any) -> None:
    definition = {
        "name": "short",
        "nodes": [{"id": "nap", "type": "delay", "parameters": {"duration": "PT0.2S"}}],
    }
    js = nc.jetstream()
    timers_before = (await js.stream_info(parts.isolated.streams.timers)).state.last_seq
    run = await run_of(parts.client, definition)
    assert run["status"] == "succeeded", run
    assert (await js.stream_info(parts.isolated.streams.timers)).state.last_seq == timers_before


async def test_a_parked_run_is_cancelled_at_once(parts: Parts, nc: Any) -> None:
    client = parts.client
    definition = {
        "name": "parked-cancel",
        "nodes": [{"id": "nap", "type": "delay", "parameters": {"duration": "PT30S"}}],
    }
    code, body, _ = await client("POST", "/workflows", json=definition)
    assert code == 201, body
    code, body, _ = await client("POST", f"/workflows/{body['id']}/execute", json={})
    assert code == 202, body
    run_id = body["run_id"]
    js = nc.jetstream()

    async def parked() -> bool:
        info = await js.stream_info(parts.isolated.streams.timers)
        return info.state.messages > 0

    await until(parked, message="the run parks on a timer")
    code, body, _ = await client("POST", f"/runs/{run_id}/cancel", json={"reason": "enough"})
    assert code == 202, body

    async def cancelled() -> dict[str, Any] | None:
        _code, run, _ = await client("GET", f"/runs/{run_id}")
        return run if run["status"] == "cancelled" else None

    run = await until(cancelled, timeout=5)
    assert run["error"]["code"] == "CANCELLED"


async def test_a_parked_wait_for_event_is_woken_by_its_event(parts: Parts, nc: Any) -> None:
    client, isolated = parts.client, parts.isolated
    definition = {
        "name": "approval",
        "nodes": [
            {
                "id": "approved",
                "type": "wait_for_event",
                "parameters": {
                    "event": "approval.given",
                    "match": "event.data.order == trigger.data.order",
                    "timeout": "PT60S",
                },
            }
        ],
    }
    code, body, _ = await client("POST", "/workflows", json=definition)
    assert code == 201, body
    code, body, _ = await client(
        "POST", f"/workflows/{body['id']}/execute", json={"input": {"order": "o-7"}}
    )
    assert code == 202, body
    run_id = body["run_id"]
    kv = await nc.jetstream().key_value(isolated.streams.event_waits)

    async def parked() -> bool:
        return any(run_id in key for key in await _keys(kv))

    await until(parked, message="the wait is parked in the bucket")
    subject = isolated.subjects.events(client.tenant.id, "approval.given")
    for order, event_id in (("o-8", "not-this-one"), ("o-7", "this-one")):
        envelope = EventEnvelope(
            id=event_id, type="approval.given", tenant=client.tenant.id, data={"order": order}
        )
        await nc.jetstream().publish(
            subject, msgspec.json.encode(envelope), headers={h.MSG_ID: event_id}
        )

    async def done() -> dict[str, Any] | None:
        _code, run, _ = await client("GET", f"/runs/{run_id}")
        return run if run["status"] == "succeeded" else None

    run = await until(done, timeout=5)
    assert run["output"]["approved"]["id"] == "this-one"
    assert not await parked()  # the wait is gone


async def _keys(kv: Any) -> list[str]:
    try:
        return list(await kv.keys())
    except Exception:  # no keys at all
        return []


async def test_runs_queued_for_a_slot_are_parked_and_woken_in_turn(parts: Parts, nc: Any) -> None:
    client = parts.client
    definition = {
        "name": "one-at-a-time",
        "concurrency": {"key": "'all'", "limit": 1, "on_limit": "queue"},
        "nodes": [{"id": "work", "type": "delay", "parameters": {"duration": "PT0.3S"}}],
    }
    code, body, _ = await client("POST", "/workflows", json=definition)
    assert code == 201, body
    wid = body["id"]
    js = nc.jetstream()
    timers_before = (await js.stream_info(parts.isolated.streams.timers)).state.last_seq
    run_ids = []
    for _ in range(3):
        code, body, _ = await client("POST", f"/workflows/{wid}/execute", json={})
        assert code == 202, body
        run_ids.append(body["run_id"])

    async def all_done() -> list[dict[str, Any]] | None:
        runs = []
        for run_id in run_ids:
            _code, run, _ = await client("GET", f"/runs/{run_id}")
            if run["status"] != "succeeded":
                return None
            runs.append(run)
        return runs

    runs = await until(all_done, timeout=10)
    spans = sorted(
        (datetime.fromisoformat(r["started_at"]), datetime.fromisoformat(r["finished_at"]))
        for r in runs
    )
    for (_, ended), (began, _) in itertools.pairwise(spans):
        assert began >= ended - timedelta(milliseconds=50), spans  # one at a time
    timers_after = (await js.stream_info(parts.isolated.streams.timers)).state.last_seq
    assert timers_after - timers_before >= 2  # the queued runs parked (a recheck timer each)
