"""An executor killed with SIGKILL while a step is in flight: its lease lapses, the other
executor resumes the run from its events, and nothing that had finished runs again."""

from __future__ import annotations

import pytest

from flowmesh_proto.runs import RunStarted
from tests.fault.deployment import Deployment
from tests.fault.history import assert_coherent, writers
from tests.fault.origin import Origin
from tests.helpers import until

pytestmark = pytest.mark.integration

LEASE = 2.0
NODES = ("first", "second", "in_flight", "fourth", "fifth")


async def test_a_run_survives_the_kill_of_its_executor(
    shared_nats: Deployment, origin: Origin
) -> None:
    runs = shared_nats.runs
    origin.hold("in_flight", first_only=True)  # the doomed executor's request never returns
    workflow = await runs.workflow(origin.chain(*NODES))

    async with shared_nats.executors(2, LEASE) as executors:
        run_id = await runs.start(workflow, {})
        await until(lambda: origin.counts(run_id, "in_flight")["in_flight"] == 1, 10)
        history = await shared_nats.history(run_id)
        started = next(e.event for e in history if isinstance(e.event, RunStarted))
        (holder,) = [e for e in executors if e.name == started.executor]
        (survivor,) = [e for e in executors if e is not holder]

        await holder.kill()
        state = await runs.finished(run_id, timeout=5 * LEASE)

        assert holder.process.returncode == -9
        assert survivor.alive

    assert state.status == "succeeded", state.error
    assert {node: state.node(node).status for node in NODES} == dict.fromkeys(NODES, "succeeded")
    # Finished before the kill: once. In flight: again on the survivor (at-least-once), and
    # only that once more. After it: once, by the survivor.
    counts = origin.counts(run_id, *NODES)
    assert counts == {"first": 1, "second": 1, "in_flight": 2, "fourth": 1, "fifth": 1}

    history = await shared_nats.history(run_id)
    assert_coherent(history)
    killed, resumed = writers(history)  # the dead executor's events, then the survivor's
    assert history[1].writer == killed
    assert history[1].event == started
    assert history[-1].writer == resumed
    assert history[-1].kind == "run.succeeded"
