"""Delayed runs: ``execute`` with ``delay`` or ``run_at`` becomes a durable timer that the
scheduler fires once when due, across scheduler restarts; bad inputs are 422s."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flowmesh_proto.subjects import StreamNames, Subjects
from tests.helpers import until
from tests.integration.gateway.conftest import Client

from .conftest import Schedulers
from .runs_seen import kinds, tenant_runs

pytestmark = pytest.mark.integration

HELLO = {
    "name": "later",
    "nodes": [{"id": "hello", "type": "transform", "parameters": {"output": "{{ trigger.data }}"}}],
}


async def workflow(client: Client, name: str = "later") -> str:
    code, body, _ = await client("POST", "/workflows", json={**HELLO, "name": name})
    assert code == 201, body
    return str(body["id"])


async def execute(client: Client, workflow_id: str, **body: Any) -> tuple[int, Any]:
    code, answer, _ = await client("POST", f"/workflows/{workflow_id}/execute", json=body)
    return code, answer


async def finished(client: Client, run_id: str, timeout: float = 10.0) -> dict[str, Any]:  # noqa: ASYNC109
    async def done() -> dict[str, Any] | None:
        code, run, _ = await client("GET", f"/runs/{run_id}")
        assert code == 200, run
        return run if run["status"] in ("succeeded", "failed", "cancelled") else None

    found: dict[str, Any] = await until(done, timeout=timeout)
    return found


async def test_a_delayed_run_waits_then_runs_once(client: Client, schedulers: Schedulers) -> None:
    await schedulers.start()
    wid = await workflow(client)
    asked = datetime.now(UTC)
    code, body = await execute(client, wid, input={"n": 1}, delay="PT1S")
    assert (code, body["status"]) == (202, "scheduled"), body
    code, run, _ = await client("GET", f"/runs/{body['run_id']}")
    assert (code, run["status"]) == (200, "scheduled"), run
    run = await finished(client, body["run_id"])
    assert run["status"] == "succeeded" and run["output"] == {"hello": {"n": 1}}
    started = datetime.fromisoformat(run["started_at"])
    assert started - asked >= timedelta(seconds=1)
    assert started - asked < timedelta(seconds=3)


async def test_a_timer_due_while_no_scheduler_runs_fires_once_after_restart(
    client: Client, schedulers: Schedulers, nc: Any, subjects: Subjects, streams: StreamNames
) -> None:
    first = await schedulers.start()
    wid = await workflow(client)
    code, body = await execute(client, wid, input={"n": 2}, delay="PT1S")
    assert code == 202, body
    await first.stop()
    await asyncio.sleep(1.5)  # due while nobody schedules
    code, run, _ = await client("GET", f"/runs/{body['run_id']}")
    assert run["status"] == "scheduled", run
    await schedulers.start()
    await schedulers.start()  # two replicas share the timer: still one fire
    run = await finished(client, body["run_id"])
    assert run["status"] == "succeeded"
    await asyncio.sleep(0.5)
    events = (await tenant_runs(nc, subjects, streams, client.tenant.id))[body["run_id"]]
    assert kinds(events).count("run.started") == 1, kinds(events)
    assert kinds(events)[0] == "run.scheduled"


async def test_run_at_in_the_future_and_in_the_past(client: Client, schedulers: Schedulers) -> None:
    await schedulers.start()
    wid = await workflow(client)
    soon = (datetime.now(UTC) + timedelta(milliseconds=800)).isoformat()
    code, body = await execute(client, wid, run_at=soon)
    assert (code, body["status"]) == (202, "scheduled"), body
    past = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    code, now_body = await execute(client, wid, run_at=past)
    assert (code, now_body["status"]) == (202, "queued"), now_body  # due already: runs now
    code, zero = await execute(client, wid, delay="PT0S")
    assert (code, zero["status"]) == (202, "queued"), zero
    for run_id in (body["run_id"], now_body["run_id"], zero["run_id"]):
        assert (await finished(client, run_id))["status"] == "succeeded"


async def test_a_scheduled_run_is_cancelled_before_it_starts(
    client: Client, schedulers: Schedulers, nc: Any, subjects: Subjects, streams: StreamNames
) -> None:
    await schedulers.start()
    wid = await workflow(client)
    code, body = await execute(client, wid, delay="PT1S")
    assert code == 202, body
    code, answer, _ = await client("POST", f"/runs/{body['run_id']}/cancel", json={"reason": "no"})
    assert code == 202, answer
    run = await finished(client, body["run_id"], timeout=1.0)  # at once, not when due
    assert run["status"] == "cancelled", run
    await asyncio.sleep(1.5)  # the timer fires: the executor finds the run finished
    events = (await tenant_runs(nc, subjects, streams, client.tenant.id))[body["run_id"]]
    assert kinds(events) == ["run.scheduled", "run.cancelled"]
    code, answer, _ = await client("POST", f"/runs/{body['run_id']}/cancel")
    assert (code, answer["code"]) == (409, "RUN_NOT_ACTIVE")


async def test_an_idempotent_delayed_execute_schedules_one_run(
    client: Client, schedulers: Schedulers
) -> None:
    await schedulers.start()
    wid = await workflow(client)
    answers = [await execute(client, wid, delay="PT0.5S", idempotency_key="k1") for _ in range(3)]
    assert {body["run_id"] for _, body in answers} == {answers[0][1]["run_id"]}
    assert (await finished(client, answers[0][1]["run_id"]))["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"delay": "PT1S", "run_at": "2030-01-01T00:00:00Z"}, "run_at"),
        ({"delay": "-PT1S"}, "delay"),
        ({"delay": "soon"}, "delay"),
        ({"delay": "P400D"}, "delay"),
        ({"run_at": "2030-01-01T00:00:00"}, "run_at"),
        ({"run_at": "2999-01-01T00:00:00Z"}, "run_at"),
        ({"run_at": "tomorrow"}, "run_at"),
    ],
)
async def test_bad_schedules_are_refused_naming_the_field(
    client: Client, body: dict[str, Any], path: str
) -> None:
    wid = await workflow(client)
    code, answer = await execute(client, wid, **body)
    assert code == 422, answer
    assert answer["errors"][0]["path"] == path, answer
