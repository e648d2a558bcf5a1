"""The lease holder is the only writer (issue 14).

Executor E1 is stopped (SIGSTOP) past its lease while every run is in an ``http`` step;
E2 takes the runs over; E1 is resumed (SIGCONT) once its http timers have run out and
while E2's calls are still in flight, so E2 has written nothing but its claim. Before the
claim, E1's ``step.failed`` and ``run.failed`` (``timed out``) landed first and fenced E2
out. Now E1 writes nothing more, every run succeeds, and only the call in flight repeats.
"""

from __future__ import annotations

import asyncio

import pytest

from flowmesh_proto.runs import RunStarted
from tests.fault.deployment import Deployment
from tests.fault.executors import ExecutorProcess
from tests.fault.history import Entry, assert_coherent
from tests.fault.origin import Origin
from tests.helpers import until

pytestmark = pytest.mark.integration

LEASE = 3.0
#: Seconds each call of the ``call`` step takes.
STEP = 1.5
#: E1's http timeout: longer than a call, shorter than its pause.
STALE_TIMEOUT = 2.0
RUNS = 5
NODES = ("call", "after")
GIVE_UP = ("run.lease_lost", "run.fenced", "run.handed_back")


async def test_a_stale_executor_writes_nothing_after_the_new_owner_claims(
    shared_nats: Deployment, origin: Origin
) -> None:
    runs, loop = shared_nats.runs, asyncio.get_running_loop()
    origin.delay("call", STEP)
    repeats = origin.hold("call", repeats_only=True)  # E2's calls wait until E1 has woken
    workflow = await runs.workflow(origin.chain(*NODES))

    def calls(count: int) -> bool:
        return all(origin.counts(run_id, "call")["call"] == count for run_id in run_ids)

    async with shared_nats.executors(1, LEASE, {"HTTP_DEFAULT_TIMEOUT": str(STALE_TIMEOUT)}) as (
        stale,
    ):
        run_ids = [await runs.start(workflow, {"n": n}) for n in range(RUNS)]
        await until(lambda: calls(1), 10)
        stale.pause()
        paused_at = loop.time()
        async with shared_nats.executors(1, LEASE) as (owner,):
            # E2 took every run over. It may take a few leases: a redelivery can go to a
            # pull request E1 made before its pause (alive for 10 s), and wait a lease more.
            await until(lambda: calls(2), 10 * LEASE)
            # E1's calls were answered during the pause, and its http timers ran out too.
            await until(lambda: loop.time() - paused_at > STALE_TIMEOUT + 0.5, 5)
            stale.resume()

            async def let_go() -> bool:
                return all([await _let_go(shared_nats, stale, run_id) for run_id in run_ids])

            await until(let_go, 5, interval=0.1, message="E1 lets every run go")
            repeats.set()
            states = [await runs.finished(run_id, timeout=5 * LEASE) for run_id in run_ids]

            assert stale.alive and owner.alive
            assert not stale.logged("run.interrupted")
            assert await owner.stop() == 0
        assert await stale.stop() == 0

    assert [state.status for state in states] == ["succeeded"] * RUNS, [
        state.error for state in states
    ]
    for run_id in run_ids:
        # The call in flight ran again on E2 (at-least-once), and only it.
        assert origin.counts(run_id, *NODES) == {"call": 2, "after": 1}
        history = await shared_nats.history(run_id)
        assert_coherent(history)
        _assert_claimed(history, stale, owner)


async def _let_go(deployed: Deployment, stale: ExecutorProcess, run_id: str) -> bool:
    """E1 logged that it let the run go, or the run has ended (before the claim: E1 ended it)."""
    if any(stale.logged(event, run_id=run_id) for event in GIVE_UP):
        return True
    history = await deployed.history(run_id)
    return (
        bool(history)
        and history[-1].kind.startswith("run.")
        and history[-1].kind
        not in (
            "run.queued",
            "run.started",
            "run.claimed",
        )
    )


def _assert_claimed(history: list[Entry], stale: ExecutorProcess, owner: ExecutorProcess) -> None:
    started = history[1]
    assert isinstance(started.event, RunStarted) and started.event.executor == stale.name
    claims = [i for i, entry in enumerate(history) if entry.kind == "run.claimed"]
    assert len(claims) == 1, [entry.kind for entry in history]
    claim = history[claims[0]]
    assert getattr(claim.event, "executor", None) == owner.name
    assert getattr(claim.event, "delivery", 0) >= 2
    assert claim.writer != started.writer
    # Nothing of E1 after the claim: every later event is the new owner's.
    assert {entry.writer for entry in history[claims[0] :]} == {claim.writer}
    assert {entry.writer for entry in history[1 : claims[0]]} == {started.writer}
    assert history[-1].kind == "run.succeeded"


SHORT_PAUSE = 2.5
#: A lease the short pause stays well within (its term is 5/6 of it).
LONG_LEASE = 10.0


async def test_a_step_timed_out_by_a_pause_within_the_lease_is_not_a_failure(
    shared_nats: Deployment, origin: Origin
) -> None:
    """E1 stopped for 2.5 s, within its lease, while its call is in flight: its http timer
    (1 s) runs out during the pause. That is no timeout of the step: E1 hands the run back
    (nak: its lease still holds), takes it up again at once with a claim, calls again."""
    runs, loop = shared_nats.runs, asyncio.get_running_loop()
    origin.hold("call", first_only=True)  # the call in flight when E1 stops never answers
    workflow = await runs.workflow(origin.chain(*NODES))
    settings = {"HTTP_DEFAULT_TIMEOUT": "1"}

    async with shared_nats.executors(1, LONG_LEASE, settings) as (executor,):
        run_id = await runs.start(workflow, {})
        await until(lambda: origin.counts(run_id, "call")["call"] == 1, 10)
        executor.pause()
        paused_at = loop.time()
        await until(lambda: loop.time() - paused_at > SHORT_PAUSE, 5)
        executor.resume()
        resumed_at = loop.time()
        state = await runs.finished(run_id, timeout=LONG_LEASE)
        taken_up_after = loop.time() - resumed_at
        assert state.status == "succeeded", state.error

        handed_back = executor.logged("run.handed_back", run_id=run_id)
        assert executor.logged("executor.paused")
        assert await executor.stop() == 0

    assert [line["lease_held"] for line in handed_back] == [True]
    assert taken_up_after < LONG_LEASE / 2  # nak'd, not left to the lease
    assert origin.counts(run_id, *NODES) == {"call": 2, "after": 1}
    history = await shared_nats.history(run_id)
    assert_coherent(history)
    claims = [entry for entry in history if entry.kind == "run.claimed"]
    assert [getattr(claim.event, "executor", None) for claim in claims] == [executor.name]
    assert not any(entry.kind == "run.failed" for entry in history)
