"""An executor paused (SIGSTOP) past its lease while a step is in flight: the other one
takes the run over (claiming it first); when the first wakes up (SIGCONT) and its step
answers, it finds its lease lapsed and lets the run go without writing (had it written,
the claim would have fenced it), so the run is advanced by one executor at a time and
completes once."""

from __future__ import annotations

import asyncio

import pytest

from flowmesh_proto.runs import RunStarted
from tests.fault.deployment import Deployment
from tests.fault.history import assert_coherent, writers
from tests.fault.origin import Origin
from tests.helpers import until

pytestmark = pytest.mark.integration

LEASE = 2.0
NODES = ("first", "slow", "third", "last")


async def test_a_paused_executor_is_fenced_when_it_wakes(
    shared_nats: Deployment, origin: Origin
) -> None:
    runs, loop = shared_nats.runs, asyncio.get_running_loop()
    stale_answer = origin.hold("slow", first_only=True)  # the paused executor's call
    last_step = origin.hold("last")  # keeps the new owner busy while the old one wakes
    workflow = await runs.workflow(origin.chain(*NODES))

    async with shared_nats.executors(2, LEASE) as executors:
        run_id = await runs.start(workflow, {})
        await until(lambda: origin.counts(run_id, "slow")["slow"] == 1, 10)
        history = await shared_nats.history(run_id)
        started = next(e.event for e in history if isinstance(e.event, RunStarted))
        (paused,) = [e for e in executors if e.name == started.executor]
        (other,) = [e for e in executors if e is not paused]

        paused.pause()
        stopped_at = loop.time()
        await until(lambda: origin.counts(run_id, "slow")["slow"] == 2, 5 * LEASE)
        taken_over_after = loop.time() - stopped_at
        await until(lambda: origin.counts(run_id, "last")["last"] == 1, 5)
        before_wake = await shared_nats.history(run_id)

        paused.resume()
        stale_answer.set()
        let_go = await until(lambda: paused.logged("run.lease_lost", run_id=run_id), 5)
        last_step.set()
        state = await runs.finished(run_id, timeout=5)

        assert paused.alive and other.alive
        assert await paused.stop() == 0
        assert await other.stop() == 0

    # The lease was honoured: the last heartbeat came at most a third of it before the pause.
    assert taken_over_after >= LEASE / 2, taken_over_after
    assert len(let_go) == 1
    assert not paused.logged("run.fenced", run_id=run_id)  # it did not even try to write
    assert state.status == "succeeded", state.error
    assert origin.counts(run_id, *NODES) == {"first": 1, "slow": 2, "third": 1, "last": 1}

    history = await shared_nats.history(run_id)
    assert_coherent(history)
    assert history[: len(before_wake)] == before_wake
    old, new = writers(history)
    assert history[1].writer == old
    assert history[1].event == started
    assert before_wake[-1].writer == new  # the new owner had written when the old one woke
    assert [e.writer for e in history[len(before_wake) :]] == [new] * (
        len(history) - len(before_wake)
    )
    assert history[-1].kind == "run.succeeded"
