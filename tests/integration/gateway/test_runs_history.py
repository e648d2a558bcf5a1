"""Run history over HTTP: ``GET /runs``, ``GET /runs/{id}``, ``GET /workflows/{id}/stats``.

The module's own stack (registry with its projection, gateway) and no executor: runs move on
because the tests publish their events as an executor would (fenced), and the registry
projects them.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from flowmesh_proto.runs import RunStarted, RunSucceeded, StepSucceeded
from flowmesh_shared.runview import run_view
from tests.helpers import until

from .conftest import Client
from .test_runs_control import (
    Bus,
    a_failed_run,
    a_run,
    base_of,
    bus,
    client,
    execute,
    other_client,
)

pytestmark = pytest.mark.integration

__all__ = ["bus", "client", "other_client"]


async def succeed(bus: Bus, tenant: str, run_id: str) -> None:
    (queued,) = await bus.events(tenant, run_id)
    await bus.publish(RunStarted(**base_of(queued)))
    await bus.publish(StepSucceeded(**base_of(queued), node_id="prepare", output={"ok": 1}))
    await bus.publish(RunSucceeded(**base_of(queued), output={"ok": 1}))


async def run_when(client: Client, run_id: str, status: str) -> dict[str, Any]:
    """The run as ``GET /runs/{id}`` shows it, once it shows ``status``."""

    async def shown() -> dict[str, Any] | None:
        code, body, _ = await client("GET", f"/runs/{run_id}")
        assert code == 200, body
        return body if body["status"] == status else None

    found: dict[str, Any] = await until(shown)
    return found


async def listed(client: Client, query: str) -> list[dict[str, Any]]:
    """Every run ``GET /runs?<query>`` lists, following the cursors."""
    items: list[dict[str, Any]] = []
    cursor = ""
    while True:
        code, body, _ = await client("GET", f"/runs?{query}{cursor}")
        assert code == 200, body
        items += body["items"]
        if not body["has_more"]:
            assert body["next_cursor"] is None
            return items
        cursor = f"&cursor={body['next_cursor']}"


async def test_a_run_is_readable_as_soon_as_execute_answers(client: Client) -> None:
    workflow = await client.create("history-now")
    code, body, headers = await execute(client, workflow["id"], {"input": {"total": 1}})
    assert code == 202, body
    code, run, _ = await client("GET", headers["Location"].removeprefix(client.prefix))
    assert code == 200, run
    assert (run["id"], run["workflow_id"], run["status"]) == (
        body["run_id"],
        workflow["id"],
        "queued",
    )
    assert run["trigger"]["kind"] == "api" and run["input"] == {"total": 1}


async def test_a_finished_run_reads_back_with_its_steps(client: Client, bus: Bus) -> None:
    _, run_id = await a_failed_run(client, bus)
    run = await run_when(client, run_id, "failed")
    events = await bus.events(client.tenant.id, run_id)
    assert run == msgspec.to_builtins(run_view(events))
    steps = {step["node_id"]: step for step in run["steps"]}
    assert steps["prepare"]["status"] == "succeeded"
    assert steps["prepare"]["output"] == {"total": 5}
    assert steps["big"]["status"] == "failed" and steps["big"]["attempts"] == 1
    assert run["error"] == {"code": "STEP_FAILED", "message": "big failed", "node_id": "big"}
    assert run["duration_ms"] is not None and run["finished_at"] is not None


async def test_runs_are_listed_newest_first_with_filters_and_cursors(
    client: Client, bus: Bus
) -> None:
    workflow, first = await a_run(client, bus)
    wid = workflow["id"]
    others = []
    for _ in range(4):
        code, body, _ = await execute(client, wid, {"input": {"total": 2}})
        assert code == 202, body
        others.append(body["run_id"])
    await succeed(bus, client.tenant.id, first)
    await run_when(client, first, "succeeded")
    for run_id in others:
        await run_when(client, run_id, "queued")

    every = await listed(client, f"workflow_id={wid}&limit=2")
    assert [item["id"] for item in every] == [*reversed(others), first]
    assert all(item["steps"] == [] for item in every)  # steps are in GET /runs/{id}
    assert [i["id"] for i in await listed(client, f"workflow_id={wid}&status=succeeded")] == [first]
    queued = await listed(client, f"workflow_id={wid}&status=queued,failed&limit=3")
    assert [item["id"] for item in queued] == list(reversed(others))
    assert len(await listed(client, f"workflow_id={wid}&trigger_kind=api")) == 5
    assert await listed(client, f"workflow_id={wid}&trigger_kind=cron") == []

    created = {item["id"]: item["created_at"] for item in every}
    since = created[others[1]].replace("+00:00", "Z")
    newer = await listed(client, f"workflow_id={wid}&created_after={since}")
    assert [item["id"] for item in newer] == list(reversed(others[1:]))
    older = await listed(client, f"workflow_id={wid}&created_before={since}")
    assert [item["id"] for item in older] == [others[0], first]
    later = (datetime.now(UTC) + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert await listed(client, f"workflow_id={wid}&created_after={later}") == []


@pytest.mark.parametrize(
    ("query", "path"),
    [
        ("status=bogus", "status"),
        ("trigger_kind=carrier-pigeon", "trigger_kind"),
        ("workflow_id=not-a-uuid", "workflow_id"),
        ("created_after=2026-01-01T00:00:00", "created_after"),
        ("created_before=yesterday", "created_before"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=ten", "limit"),
        ("cursor=garbage", "cursor"),
    ],
)
async def test_bad_listing_queries_name_the_field(client: Client, query: str, path: str) -> None:
    code, body, headers = await client("GET", f"/runs?{query}")
    assert code == 422, body
    assert headers["Content-Type"].startswith("application/problem+json")
    assert body["errors"][0]["path"] == path, body


async def test_a_workflow_cursor_is_not_a_run_cursor(client: Client) -> None:
    for name in ("cursor-a", "cursor-b"):
        await client.create(name)
    code, body, _ = await client("GET", "/workflows?limit=1")
    assert code == 200 and body["next_cursor"], body
    code, body, _ = await client("GET", f"/runs?cursor={body['next_cursor']}")
    assert code == 422 and body["errors"][0]["path"] == "cursor", body


async def test_unknown_and_malformed_ids_are_not_found(client: Client) -> None:
    for path, code_name in (
        (f"/runs/{uuid.uuid4()}", "NOT_FOUND"),
        ("/runs/not-a-run", "NOT_FOUND"),
        (f"/workflows/{uuid.uuid4()}/stats", "WORKFLOW_NOT_FOUND"),
        ("/workflows/not-a-workflow/stats", "WORKFLOW_NOT_FOUND"),
    ):
        code, body, _ = await client("GET", path)
        assert (code, body["code"]) == (404, code_name), (path, body)


async def test_statistics_follow_the_runs(client: Client, bus: Bus) -> None:
    workflow = await client.create("history-stats")
    stats_path = f"/workflows/{workflow['id']}/stats"
    code, stats, _ = await client("GET", stats_path)
    assert code == 200, stats
    assert stats == {
        "execution_count": 0,
        "success_count": 0,
        "failure_count": 0,
        "last_executed_at": None,
        "last_execution_status": None,
        "average_execution_ms": None,
        "p95_execution_ms": None,
    }
    durations = []
    for _ in range(3):
        code, body, _ = await execute(client, workflow["id"], {"input": {"total": 1}})
        assert code == 202, body
        await until(lambda run_id=body["run_id"]: bus.events(client.tenant.id, run_id))
        await succeed(bus, client.tenant.id, body["run_id"])
        run = await run_when(client, body["run_id"], "succeeded")
        durations.append(run["duration_ms"])

    async def counted() -> dict[str, Any] | None:
        code, stats, _ = await client("GET", stats_path)
        assert code == 200, stats
        return stats if stats["execution_count"] == 3 else None

    stats = await until(counted)
    assert (stats["success_count"], stats["failure_count"]) == (3, 0)
    assert stats["last_execution_status"] == "succeeded"
    assert stats["average_execution_ms"] == pytest.approx(sum(durations) / 3, abs=1e-3)
    assert stats["p95_execution_ms"] == max(durations)
    code, page, _ = await client("GET", f"/workflows/{workflow['id']}")
    assert page["execution_count"] == 3 and page["last_execution_status"] == "succeeded"


async def test_history_is_tenant_scoped(client: Client, other_client: Client, bus: Bus) -> None:
    workflow, run_id = await a_run(client, bus)
    await run_when(client, run_id, "queued")
    for path in (f"/runs/{run_id}", f"/workflows/{workflow['id']}/stats"):
        code, body, _ = await other_client("GET", path)
        assert code == 404, body
    code, body, _ = await other_client("GET", f"/runs?workflow_id={workflow['id']}")
    assert code == 200 and body["items"] == [], body
    # The other tenant's credential on this tenant's path: refused before anything is read.
    code, body, _ = await client("GET", f"/runs/{run_id}", token=other_client.tenant.admin_key)
    assert (code, body["code"]) == (403, "TENANT_MISMATCH"), body


async def test_a_viewer_reads_history_and_nobody_else_does(client: Client, bus: Bus) -> None:
    workflow, run_id = await a_run(client, bus)
    viewer = await client.key("viewer")
    for path in ("/runs", f"/runs/{run_id}", f"/workflows/{workflow['id']}/stats"):
        code, body, _ = await client("GET", path, token=viewer)
        assert code == 200, (path, body)
        code, body, _ = await client("GET", path, token="fm_nobody_" + "x" * 43)
        assert code == 401, (path, body)
