"""Fair share (issue 15, DESIGN section 13), on real NATS with executor processes.

Executors take run requests from tenants in weighted turns: a tenant's backlog delays
another tenant's next run by one slot's turnover, weights share a saturated executor in
proportion, ``max_running`` holds across executors, and an executor killed mid-turn loses
and duplicates nothing.

The bound for the first test: an executor with ``SLOTS`` slots, all held by tenant A's runs
of one ``STEP``-second delay. Tenant B's run waits for the first slot to free (at most
``STEP``, as A's runs started together), then takes it: B's turn comes before A's next,
because A has had every slot so far and B joins at the virtual time. So B waits at most
``STEP`` plus the time to take a request (a fetch: milliseconds); ``SLACK`` covers a slow
machine. First come first served, B would wait for A's whole backlog: ``RUNS_A / SLOTS``
turnovers, 6 s here.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from nats.js import errors as js_errors

from flowmesh_proto import registry as r
from flowmesh_proto.runs import TERMINAL_RUN_EVENTS, RunStarted, RunSucceeded
from flowmesh_proto.subjects import run_request_consumer
from tests.fault.deployment import Deployment
from tests.helpers import until
from tests.integration.executor.runs import Runs
from tests.integration.harness import PLATFORM

pytestmark = pytest.mark.integration

LEASE = 5.0
SLOTS = 4
STEP = 1.0
RUNS_A = 24
SLACK = 0.5


def sleeper(seconds: float) -> dict[str, Any]:
    return {
        "name": "sleeper",
        "nodes": [{"id": "wait", "type": "delay", "parameters": {"duration": f"PT{seconds}S"}}],
        "edges": [],
    }


QUICK: dict[str, Any] = {"name": "quick", "nodes": [{"id": "n", "type": "noop"}], "edges": []}


async def _started(runs: Runs, run_ids: list[str]) -> list[str]:
    found = []
    for run_id in run_ids:
        if any(isinstance(event, RunStarted) for event in await runs.events(run_id)):
            found.append(run_id)
    return found


async def _set(deployed: Deployment, tenant: str, **shares: int) -> None:
    await deployed.registry.call(
        "tenant_update", r.TenantUpdate(id=tenant, **shares), principal=PLATFORM
    )


async def test_a_backlog_delays_another_tenant_by_one_slot_turnover(
    shared_nats: Deployment,
) -> None:
    a, b = shared_nats.runs, await shared_nats.another_tenant()
    slow, quick = await a.workflow(sleeper(STEP)), await b.workflow(QUICK)
    async with shared_nats.executors(1, LEASE, {"MAX_RUNS": str(SLOTS)}):
        backlog = [await a.start(slow) for _ in range(RUNS_A)]

        async def full() -> bool:
            return len(await _started(a, backlog)) >= SLOTS

        await until(full, 10, interval=0.05)
        mine = [await b.start(quick) for _ in range(3)]
        states = [await b.finished(run_id, timeout=10) for run_id in mine]
        waits = [
            (state.started_at - state.created_at).total_seconds()
            for state in states
            if state.started_at is not None and state.created_at is not None
        ]
        still_queued = RUNS_A - len(await _started(a, backlog))
        assert [state.status for state in states] == ["succeeded"] * 3
        assert len(waits) == 3 and max(waits) <= STEP + SLACK, waits
        assert still_queued >= RUNS_A - 3 * SLOTS  # A's backlog was far from drained
        for run_id in backlog:
            assert (await a.finished(run_id, timeout=20)).status == "succeeded"


async def test_weights_share_a_saturated_executor_in_proportion(
    shared_nats: Deployment,
) -> None:
    a, b = shared_nats.runs, await shared_nats.another_tenant()
    await _set(shared_nats, a.tenant, weight=3)
    runs_each = 48
    first = [await a.start(await a.workflow(sleeper(0.2))) for _ in range(runs_each)]
    second = [await b.start(await b.workflow(sleeper(0.2))) for _ in range(runs_each)]
    async with shared_nats.executors(1, LEASE, {"MAX_RUNS": str(SLOTS)}):
        for runs, run_ids in ((a, first), (b, second)):
            for run_id in run_ids:
                assert (await runs.finished(run_id, timeout=30)).status == "succeeded"
    starts: list[tuple[Any, str]] = []
    for runs, run_ids in ((a, first), (b, second)):
        for run_id in run_ids:
            state = await runs.finished(run_id)
            starts.append((state.started_at, runs.tenant))
    starts.sort()
    window = Counter(tenant for _, tenant in starts[:48])  # while both had a backlog
    share = window[a.tenant] / 48
    assert abs(share - 0.75) <= 0.075, window


async def test_max_running_holds_across_executors(shared_nats: Deployment) -> None:
    a = shared_nats.runs
    await _set(shared_nats, a.tenant, max_running=2)
    workflow = await a.workflow(sleeper(0.3))
    async with shared_nats.executors(2, LEASE, {"MAX_RUNS": "8"}):
        run_ids = [await a.start(workflow) for _ in range(10)]
        states = [await a.finished(run_id, timeout=30) for run_id in run_ids]
    assert [state.status for state in states] == ["succeeded"] * 10
    edges = []
    for state in states:
        assert state.started_at is not None and state.finished_at is not None
        edges += [(state.started_at, 1), (state.finished_at, -1)]
    running = most = 0
    for _, change in sorted(edges, key=lambda edge: (edge[0], edge[1])):
        running += change
        most = max(most, running)
    assert most == 2


async def test_an_executor_killed_mid_turn_loses_and_duplicates_nothing(
    shared_nats: Deployment,
) -> None:
    a, b = shared_nats.runs, await shared_nats.another_tenant()
    lease = 2.0
    mine = [(a, await a.workflow(sleeper(0.4))), (b, await b.workflow(sleeper(0.4)))]
    async with shared_nats.executors(2, lease, {"MAX_RUNS": "3"}) as (doomed, survivor):
        started = [(runs, await runs.start(workflow)) for runs, workflow in mine * 12]

        async def some_started() -> bool:
            return len(await _started(a, [run_id for runs, run_id in started if runs is a])) >= 3

        await until(some_started, 10, interval=0.05)
        await doomed.kill()
        for runs, run_id in started:
            assert (await runs.finished(run_id, timeout=10 * lease)).status == "succeeded"
        assert survivor.alive
    for runs, run_id in started:
        events = await runs.events(run_id)
        ends = [event for event in events if type(event) in TERMINAL_RUN_EVENTS]
        assert len(ends) == 1 and isinstance(ends[0], RunSucceeded), events


async def test_a_consumer_deleted_for_idling_is_made_again(shared_nats: Deployment) -> None:
    """JetStream deletes a tenant's consumer after ``tenant_consumer_idle`` seconds without
    a fetch (or loses it in a restart); the executor that made it must make it again, not
    keep fetching from a consumer that no longer exists (no responders, ``503``)."""
    a = shared_nats.runs
    workflow = await a.workflow(QUICK)
    name = run_request_consumer(a.tenant)
    async with shared_nats.executors(1, LEASE, {"TENANT_CONSUMER_IDLE": "1"}):
        assert (await a.finished(await a.start(workflow), timeout=10)).status == "succeeded"

        async def gone() -> bool:
            try:
                await a.js.consumer_info(a.streams.run_requests, name)
            except js_errors.NotFoundError:
                return True
            return False

        await until(gone, 15, interval=0.2)
        assert (await a.finished(await a.start(workflow), timeout=10)).status == "succeeded"


async def test_max_running_lowered_while_runs_are_held_holds_for_the_next_ones(
    shared_nats: Deployment,
) -> None:
    a = shared_nats.runs
    await _set(shared_nats, a.tenant, max_running=3)
    slow, quick = await a.workflow(sleeper(2.5)), await a.workflow(sleeper(0.3))
    settings = {"MAX_RUNS": "8", "TENANT_REFRESH": "0.2", "INTAKE_SWEEP": "0.3"}
    async with shared_nats.executors(2, LEASE, settings):
        first = [await a.start(slow) for _ in range(3)]
        await until(lambda: _all_started(a, first), 10, interval=0.05)
        await _set(shared_nats, a.tenant, max_running=1)
        then = [await a.start(quick) for _ in range(4)]
        states = [await a.finished(run_id, timeout=30) for run_id in first + then]
    assert [state.status for state in states] == ["succeeded"] * 7
    t0 = min(state.started_at for state in states if state.started_at)
    spans = [
        ((s.started_at - t0).total_seconds(), (s.finished_at - t0).total_seconds())
        for s in states
        if s.started_at and s.finished_at
    ]
    for i, (start, _) in enumerate(spans[3:], 3):  # the later runs: each alone
        overlapping = [j for j, (b, e) in enumerate(spans) if j != i and b <= start < e]
        assert overlapping == [], (i, spans)


async def _all_started(runs: Runs, run_ids: list[str]) -> bool:
    return len(await _started(runs, run_ids)) == len(run_ids)


async def test_a_tenant_at_its_max_running_keeps_no_slots_from_others(
    shared_nats: Deployment,
) -> None:
    """A tenant held to ``max_running`` 1 with a backlog: JetStream keeps a fetch from its
    consumer waiting while it is at its limit (a ``no_wait`` fetch too, until it expires).
    The slots that fetch asked for must not stay out of other tenants' reach meanwhile:
    B's runs start at once on an executor with free slots."""
    a, b = shared_nats.runs, await shared_nats.another_tenant()
    await _set(shared_nats, a.tenant, max_running=1)
    slow, quick = await a.workflow(sleeper(6)), await b.workflow(QUICK)
    async with shared_nats.executors(1, LEASE, {"MAX_RUNS": str(SLOTS)}):
        backlog = [await a.start(slow) for _ in range(4)]
        await until(lambda: _all_started(a, backlog[:1]), 10, interval=0.05)
        states = []
        for _ in range(3):
            states.append(await b.finished(await b.start(quick), timeout=10))
        waits = [
            (state.started_at - state.created_at).total_seconds()
            for state in states
            if state.started_at is not None and state.created_at is not None
        ]
        assert len(waits) == 3 and max(waits) <= SLACK, waits
