"""Run history: the projection of run events (real NATS and PostgreSQL), the runs API and
workflow statistics, retention, and what happens to bad messages."""

from __future__ import annotations

import asyncio
import math
import re
import secrets
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import asyncpg
import msgspec
import pytest
import pytest_asyncio

from flowmesh_proto import registry as r
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import (
    Run,
    RunError,
    RunFailed,
    RunQueued,
    RunStarted,
    StepLog,
    TriggerInfo,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_registry.projection import Projection
from flowmesh_registry.retention import RunRetention
from flowmesh_shared.errors import RemoteError
from flowmesh_shared.runview import run_view
from tests.helpers import until

from .conftest import PLATFORM, Api, Registry, TenantHandle, unique
from .run_events import RunLog, projected, run_events, session_projection, snapshot

pytestmark = pytest.mark.integration

STATS_FIELDS = (
    "execution_count",
    "success_count",
    "failure_count",
    "last_executed_at",
    "last_execution_status",
    "average_execution_ms",
    "p95_execution_ms",
)


@pytest_asyncio.fixture(loop_scope="session")
async def owner(postgres_url: str) -> AsyncIterator[asyncpg.Connection]:
    """A connection as the schema owner (a superuser in tests): sees every tenant's rows."""
    conn = await asyncpg.connect(postgres_url)
    try:
        yield conn
    finally:
        await conn.close()


@pytest.fixture
def log(nc: Any, subjects: Subjects, streams: StreamNames, tenant: TenantHandle) -> RunLog:
    return RunLog(nc, subjects, streams, tenant.id)


async def settle(registry: Registry, log: RunLog) -> None:
    await projected(session_projection(registry), log.last_seq)


def same_run(got: Run, want: Run) -> None:
    assert msgspec.to_builtins(got) == msgspec.to_builtins(want)


async def replay_everything(registry: Registry, nc: Any, streams: StreamNames) -> None:
    """Project the whole stream again from its first event, with a new durable consumer."""
    js = nc.jetstream()
    last = (await js.stream_info(streams.run_events)).state.last_seq
    name = f"replay-{secrets.token_hex(3)}"
    replay = Projection(
        registry.app.db, nc, Subjects(registry.settings.subject_prefix), streams.run_events,
        consumer=name, batch_size=97,
    )  # fmt: skip
    await replay.start()
    try:
        await projected(replay, last, timeout=30)
    finally:
        await replay.stop(5.0)
        await js.delete_consumer(streams.run_events, name)


async def metric(registry: Registry, name: str, labels: str = "") -> float:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{registry.app.health_port}/metrics") as resp,
    ):
        text = await resp.text()
    pattern = rf"^{re.escape(name)}{re.escape(labels)} (\S+)$"
    found = re.search(pattern, text, re.MULTILINE)
    return float(found.group(1)) if found else 0.0


# --- projection ------------------------------------------------------------------------


async def test_a_run_reads_back_as_the_fold_of_its_events(
    registry: Registry, api: Api, log: RunLog
) -> None:
    wf = await api.create(unique("history"))
    run_id = await log.run(wf.id, status="failed", steps=3)
    await settle(registry, log)
    run = await api("run_get", r.RunGet(id=run_id))
    same_run(run, run_view(log.events[run_id]))
    assert run.status == "failed" and run.error is not None and run.error.node_id == "boom"
    assert [step.node_id for step in run.steps] == ["s0", "s1", "s2", "boom"]
    assert run.metrics.nodes_failed == 1 and run.metrics.nodes_succeeded == 3


async def test_replaying_the_whole_stream_twice_leaves_the_same_rows(
    registry: Registry, api: Api, log: RunLog, owner: asyncpg.Connection, nc: Any,
    streams: StreamNames,
) -> None:  # fmt: skip
    wf = await api.create(unique("replayed"))
    statuses = ["succeeded", "failed", "timed_out", "cancelled", "running"]
    for i, status in enumerate(statuses * 2):
        await log.run(wf.id, status=status, duration_ms=5 + i, steps=i % 3)
    await settle(registry, log)
    before = await snapshot(owner, log.tenant)
    assert len(before["runs"]) == 10 and before["stats"][0]["execution_count"] == 8
    for _ in range(2):
        await replay_everything(registry, nc, streams)
        assert await snapshot(owner, log.tenant) == before


async def test_two_projections_sharing_the_consumer_agree_with_the_fold(
    registry: Registry, api: Api, log: RunLog, nc: Any, streams: StreamNames
) -> None:
    """Events of one run split between two registries (and gaps filled from the stream)."""
    wf = await api.create(unique("shared"))
    second = Projection(
        registry.app.db, nc, Subjects(registry.settings.subject_prefix), streams.run_events,
        consumer=registry.settings.projection_consumer, batch_size=3,
    )  # fmt: skip
    await second.start()
    try:
        start = datetime.now(UTC)
        ids = [str(new_run_id()) for _ in range(30)]
        plans = [
            run_events(log.tenant, run_id, wf.id, start=start, steps=2, duration_ms=i + 1)
            for i, run_id in enumerate(ids)
        ]
        for round_ in range(max(len(plan) for plan in plans)):  # interleave the runs
            await asyncio.gather(*(log.publish(p[round_]) for p in plans if round_ < len(p)))
        js = nc.jetstream()

        async def drained() -> bool:
            info = await js.consumer_info(streams.run_events, registry.settings.projection_consumer)
            return bool(
                info.num_pending == 0
                and info.num_ack_pending == 0
                and info.delivered.stream_seq >= log.last_seq
            )

        await until(drained, 15, message="the shared consumer drained")
    finally:
        await second.stop(5.0)
    assert second.acked_seq > 0  # both took part
    for run_id in ids:
        same_run(await api("run_get", r.RunGet(id=run_id)), run_view(log.events[run_id]))
    stats = await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))
    assert stats.execution_count == 30 and stats.success_count == 30


async def test_a_gap_is_filled_from_the_stream(
    registry: Registry, api: Api, log: RunLog, owner: asyncpg.Connection
) -> None:
    """A run whose earlier events were not projected (a restart held them) is completed
    from the stream when a later event arrives."""
    run_id = await log.run(str(new_run_id()), steps=2)  # a workflow the registry does not know
    await settle(registry, log)
    await owner.execute("DELETE FROM step_runs WHERE run_id = $1", run_id)
    await owner.execute("DELETE FROM runs WHERE id = $1", run_id)
    first = log.events[run_id][0]
    await log.publish(
        StepLog(**_ref(first, datetime.now(UTC)), node_id="s0", message="after the end")
    )
    await settle(registry, log)
    run = await api("run_get", r.RunGet(id=run_id))
    same_run(run, run_view(log.events[run_id]))
    assert run.status == "succeeded" and len(run.steps) == 2


def _ref(event: Any, at: datetime) -> dict[str, Any]:
    return {
        "tenant": event.tenant,
        "run_id": event.run_id,
        "workflow_id": event.workflow_id,
        "version": event.version,
        "at": at,
    }


# --- statistics ------------------------------------------------------------------------


def expected_stats(runs: list[tuple[str, float | None, datetime]]) -> dict[str, Any]:
    """(status, duration or None, start) of ended runs -> the statistics they should give."""
    durations = sorted(d for _, d, _ in runs if d is not None)
    last = max(runs, key=lambda run: run[2])
    return {
        "execution_count": len(runs),
        "success_count": sum(1 for s, _, _ in runs if s == "succeeded"),
        "failure_count": sum(1 for s, _, _ in runs if s in ("failed", "timed_out")),
        "last_executed_at": last[2],
        "last_execution_status": last[0],
        "average_execution_ms": round(sum(durations) / len(durations), 3),
        "p95_execution_ms": durations[math.ceil(0.95 * len(durations)) - 1],
    }


async def test_statistics_count_each_run_once(
    registry: Registry, api: Api, log: RunLog, nc: Any, streams: StreamNames
) -> None:
    wf = await api.create(unique("stats"))
    base = datetime.now(UTC) - timedelta(hours=1)
    plan: list[tuple[str, float | None, datetime]] = []
    statuses = ["succeeded"] * 14 + ["failed"] * 3 + ["timed_out", "cancelled"]
    for i, status in enumerate(statuses):
        duration = float(10 * (i * 7 % 19 + 1))  # a shuffled 10..190
        plan.append((status, duration, base + timedelta(seconds=i)))
    plan.append(("cancelled", None, base + timedelta(seconds=30)))  # cancelled while queued
    plan.insert(5, ("failed", 250.0, base + timedelta(seconds=40)))  # the latest start
    run_ids = []
    for status, duration, start in plan:
        run_ids.append(
            await log.run(
                wf.id,
                status=status,
                start=start,
                duration_ms=duration or 1.0,
                started=duration is not None,
            )
        )
    await log.run(wf.id, status="running", start=base + timedelta(seconds=50))  # not ended
    await settle(registry, log)
    want = expected_stats(plan)
    assert want["last_executed_at"] == plan[5][2]
    got = await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))
    assert {f: getattr(got, f) for f in STATS_FIELDS} == want
    workflow = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert workflow.execution_count == want["execution_count"]
    assert workflow.average_execution_ms == want["average_execution_ms"]
    assert workflow.last_execution_status == "failed"

    # A second terminal event, then the whole stream replayed: still counted once.
    first = log.events[run_ids[0]][0]
    late = RunFailed(**_ref(first, datetime.now(UTC)), error=RunError(code="X", message="late"))
    await log.publish(late)
    await settle(registry, log)
    await replay_everything(registry, nc, streams)
    again = await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))
    assert again == got


async def test_statistics_of_a_workflow_without_runs(api: Api) -> None:
    wf = await api.create(unique("idle"))
    stats = await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))
    assert stats == r.WorkflowStats(
        execution_count=0,
        success_count=0,
        failure_count=0,
        last_executed_at=None,
        last_execution_status=None,
        average_execution_ms=None,
        p95_execution_ms=None,
    )


# --- the runs API ----------------------------------------------------------------------


async def test_run_list_filters_and_pages_newest_first(
    registry: Registry, api: Api, log: RunLog
) -> None:
    a = await api.create(unique("list-a"))
    b = await api.create(unique("list-b"))
    base = datetime.now(UTC) - timedelta(minutes=10)
    plan = [
        (a, "succeeded", "api"),
        (a, "failed", "cron"),
        (b, "succeeded", "webhook"),
        (a, "running", "api"),
        (b, "timed_out", "api"),
        (b, "cancelled", "event"),
    ]
    ids = [
        await log.run(wf.id, status=status, kind=kind, start=base + timedelta(seconds=i))
        for i, (wf, status, kind) in enumerate(plan)
    ]
    await settle(registry, log)
    newest_first = list(reversed(ids))

    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = await api("run_list", r.RunList(limit=4, cursor=cursor))
        seen += [run.id for run in page.items]
        assert all(run.steps == [] for run in page.items)
        pages += 1
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == newest_first and pages == 2

    async def listed(**filters: Any) -> list[str]:
        page = await api("run_list", r.RunList(limit=100, **filters))
        return [run.id for run in page.items]

    assert await listed(workflow_id=a.id) == [ids[3], ids[1], ids[0]]
    assert await listed(status=["failed", "timed_out"]) == [ids[4], ids[1]]
    assert await listed(trigger_kind="cron") == [ids[1]]
    assert await listed(workflow_id=b.id, status=["succeeded"]) == [ids[2]]
    created = [(await api("run_get", r.RunGet(id=i))).created_at for i in ids]
    assert await listed(created_after=created[2], created_before=created[5]) == [
        ids[4],
        ids[3],
        ids[2],
    ]
    assert await listed(workflow_id=str(new_run_id())) == []


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        (r.RunList(limit=0), "limit"),
        (r.RunList(limit=101), "limit"),
        (r.RunList(cursor="garbage!"), "cursor"),
        (r.RunList(cursor="W1siLWNyZWF0ZWRfYXQiLFtdXQ"), "cursor"),
        (r.RunList(workflow_id="not-a-uuid"), "workflow_id"),
        (r.RunList(created_after=datetime(2026, 1, 1)), "created_after"),
        (r.RunList(created_before=datetime(2026, 1, 1)), "created_before"),
    ],
)
async def test_run_list_refuses_bad_input_naming_the_field(
    api: Api, request_: r.RunList, path: str
) -> None:
    with pytest.raises(RemoteError) as caught:
        await api("run_list", request_)
    problem = caught.value.problem
    assert (problem.status, problem.code) == (422, "VALIDATION_FAILED")
    assert [item.path for item in problem.errors] == [path]


async def test_a_workflow_cursor_is_not_a_run_cursor(api: Api) -> None:
    for _ in range(2):
        await api.create(unique("cursor"))
    page = await api("workflow_list", r.WorkflowList(limit=1, sort="-created_at"))
    assert page.next_cursor
    with pytest.raises(RemoteError) as caught:
        await api("run_list", r.RunList(cursor=page.next_cursor))
    assert caught.value.problem.errors[0].path == "cursor"


async def test_unknown_status_and_trigger_kind_are_refused(
    registry: Registry, nc: Any, tenant: TenantHandle
) -> None:
    from .conftest import raw_call

    headers = {"Fm-Tenant": tenant.id, "Fm-Principal": tenant.principal}
    problem = await raw_call(registry, nc, "run_list", b'{"status": ["done"]}', headers)
    assert (problem.status, problem.errors[0].path) == (422, "status[0]")
    problem = await raw_call(registry, nc, "run_list", b'{"trigger_kind": "magic"}', headers)
    assert (problem.status, problem.errors[0].path) == (422, "trigger_kind")


async def test_runs_are_tenant_scoped(
    registry: Registry, api: Api, other_api: Api, log: RunLog
) -> None:
    wf = await api.create(unique("mine"))
    run_id = await log.run(wf.id)
    await settle(registry, log)
    assert (await api("run_get", r.RunGet(id=run_id))).id == run_id
    missing = str(new_run_id())
    for asked in (run_id, missing, "not-a-uuid"):
        with pytest.raises(RemoteError) as caught:
            await other_api("run_get", r.RunGet(id=asked))
        problem = caught.value.problem
        assert (problem.status, problem.code) == (404, "NOT_FOUND")
        assert problem.detail == f"run {asked} was not found"
    theirs = await other_api("run_list", r.RunList(limit=100))
    assert run_id not in {run.id for run in theirs.items}
    filtered = await other_api("run_list", r.RunList(workflow_id=wf.id))
    assert filtered.items == []
    for asked in (wf.id, missing, "nope"):
        with pytest.raises(RemoteError) as caught:
            await other_api("workflow_stats", r.WorkflowStatsGet(id=asked))
        assert (caught.value.problem.status, caught.value.problem.code) == (
            404,
            "WORKFLOW_NOT_FOUND",
        )


async def test_a_run_of_another_tenants_principal_is_refused(
    registry: Registry, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "run_list", r.RunList(), tenant=tenant.id, principal=other_tenant.principal
        )
    assert caught.value.problem.code == "CROSS_TENANT_ACCESS_DENIED"


# --- retention -------------------------------------------------------------------------


async def test_retention_deletes_old_runs_in_bounded_batches(
    registry: Registry, api: Api, log: RunLog, owner: asyncpg.Connection
) -> None:
    updated = await registry.call(
        "tenant_update",
        r.TenantUpdate(id=log.tenant, run_retention_days=10),
        principal=PLATFORM,
    )
    assert updated.run_retention_days == 10
    wf = await api.create(unique("retained"))
    old = [await log.run(wf.id, duration_ms=100.0) for _ in range(7)]
    recent = [await log.run(wf.id, duration_ms=float(d)) for d in (10, 20, 30)]
    await settle(registry, log)
    await owner.execute(
        "UPDATE runs SET created_at = now() - interval '20 days' WHERE id = ANY($1::uuid[])", old
    )
    assert (await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))).execution_count == 10

    retention = RunRetention(registry.app.db, batch_size=3, default_days=30)
    swept = {result.tenant: result for result in await retention.sweep()}
    assert swept[log.tenant].batches == [3, 3, 1]
    assert swept[log.tenant].steps == 7 * 2

    listed = await api("run_list", r.RunList(limit=100))
    assert {run.id for run in listed.items} == set(recent)
    steps_left = await owner.fetchval(
        "SELECT count(*) FROM step_runs WHERE run_id = ANY($1::uuid[])", old
    )
    assert steps_left == 0
    stats = await api("workflow_stats", r.WorkflowStatsGet(id=wf.id))
    assert (stats.execution_count, stats.success_count) == (3, 3)
    assert stats.average_execution_ms == 20.0 and stats.p95_execution_ms == 30.0
    assert (await retention.sweep_tenant(log.tenant, datetime.now(UTC))).batches == [3]

    reset = await registry.call(
        "tenant_update", r.TenantUpdate(id=log.tenant, run_retention_days=None), principal=PLATFORM
    )
    assert reset.run_retention_days is None


async def test_retention_setting_is_checked(registry: Registry, tenant: TenantHandle) -> None:
    for days in (0, 3651):
        with pytest.raises(RemoteError) as caught:
            await registry.call(
                "tenant_update",
                r.TenantUpdate(id=tenant.id, run_retention_days=days),
                principal=PLATFORM,
            )
        assert caught.value.problem.status == 422
        assert caught.value.problem.errors[0].path == "run_retention_days"
    kept = await registry.call("tenant_get", r.TenantGet(id=tenant.id), principal=PLATFORM)
    assert kept.run_retention_days is None


async def test_runs_older_than_the_retention_are_not_projected(
    registry: Registry, api: Api, log: RunLog
) -> None:
    wf = await api.create(unique("ancient"))
    expired_before = await metric(
        registry, "flowmesh_registry_projection_events_total", '{outcome="expired"}'
    )
    ancient = await log.run(wf.id, start=datetime.now(UTC) - timedelta(days=40))
    fresh = await log.run(wf.id)
    await settle(registry, log)
    with pytest.raises(RemoteError):
        await api("run_get", r.RunGet(id=ancient))
    assert (await api("run_get", r.RunGet(id=fresh))).status == "succeeded"
    expired = await metric(
        registry, "flowmesh_registry_projection_events_total", '{outcome="expired"}'
    )
    assert expired - expired_before == len(log.events[ancient])


# --- bad messages, metrics -------------------------------------------------------------


async def test_bad_messages_do_not_stop_the_projection(
    registry: Registry, api: Api, log: RunLog, nc: Any, streams: StreamNames
) -> None:
    wf = await api.create(unique("robust"))
    refused_before = await metric(
        registry, "flowmesh_registry_projection_events_total", '{outcome="refused"}'
    )
    victim = str(new_run_id())
    await log.publish_raw(victim, b"{not json")
    await log.publish_raw(victim, b'{"kind": "run.queued"}')
    now = datetime.now(UTC)
    foreign = RunQueued(
        tenant="someone-else", run_id=victim, workflow_id=wf.id, version=1, at=now,
        trigger=TriggerInfo(kind="api"),
    )  # fmt: skip
    await log.publish_raw(victim, msgspec.json.encode(foreign))
    # PostgreSQL refuses a NUL character in JSON: found by halving the batch, refused alone.
    poisoned = str(new_run_id())
    await log.publish(
        RunQueued(
            tenant=log.tenant, run_id=poisoned, workflow_id=wf.id, version=1, at=now,
            trigger=TriggerInfo(kind="api"), input={"text": "nul\x00here"},
        )
    )  # fmt: skip
    await log.publish(
        RunStarted(tenant=log.tenant, run_id=poisoned, workflow_id=wf.id, version=1, at=now)
    )
    healthy = await log.run(wf.id)
    await settle(registry, log)

    assert (await api("run_get", r.RunGet(id=healthy))).status == "succeeded"
    survivor = await api("run_get", r.RunGet(id=poisoned))  # its later event still counts
    assert survivor.status == "running" and survivor.input is None
    refused = await metric(
        registry, "flowmesh_registry_projection_events_total", '{outcome="refused"}'
    )
    assert refused - refused_before == 4
    info = await nc.jetstream().consumer_info(
        streams.run_events, registry.settings.projection_consumer
    )
    assert info.num_ack_pending == 0 and info.num_redelivered == 0


async def test_projection_lag_is_exported(registry: Registry, api: Api, log: RunLog) -> None:
    wf = await api.create(unique("lagged"))
    await log.run(wf.id)
    await settle(registry, log)
    assert await metric(
        registry, "flowmesh_registry_projection_events_total", '{outcome="projected"}'
    )
    assert await metric(registry, "flowmesh_registry_projection_event_lag_seconds_count") > 0
    lag = await metric(registry, "flowmesh_registry_projection_lag_seconds")
    assert 0 <= lag < 5
    assert await metric(registry, "flowmesh_registry_projection_batches_total") > 0


async def test_a_run_whose_trigger_names_no_kind_is_still_listed(
    registry: Registry, api: Api, log: RunLog, owner: asyncpg.Connection
) -> None:
    wf = await api.create(unique("kindless"))
    ids = [await log.run(wf.id, duration_ms=5.0) for _ in range(2)]
    await settle(registry, log)
    await owner.execute("UPDATE runs SET trigger = '{}' WHERE id = $1::uuid", ids[0])
    page = await api("run_list", r.RunList(limit=100, workflow_id=wf.id))
    assert [run.id for run in page.items] == [ids[1], ids[0]]
    everything = await api("run_list", r.RunList(limit=100))
    assert ids[0] in {run.id for run in everything.items}
    by_kind = await api("run_list", r.RunList(limit=100, workflow_id=wf.id, trigger_kind="api"))
    assert [run.id for run in by_kind.items] == [ids[1]]
