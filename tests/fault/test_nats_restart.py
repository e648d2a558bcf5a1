"""NATS stops while runs are in flight and starts again on the same port and store.

- A short outage: the executor rides through (its publishes wait and retry, its connection
  reconnects); every step runs once, and new runs are taken in afterwards.
- An outage longer than the executor's patience (its lease): the runs are interrupted and
  handed back (or let go, their lease found lapsed), and resumed from their events once
  NATS is back; only the step in flight may run twice.

Either way the runs finish, with the events stored before the stop intact.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from flowmesh_devtools.localstack import LOOPBACK, NatsHandle, ensure_nats, free_port
from tests.fault.deployment import Deployment, deployment
from tests.fault.executors import ExecutorProcess
from tests.fault.history import Entry, assert_coherent
from tests.fault.origin import Origin
from tests.helpers import until

pytestmark = pytest.mark.integration

NODES = ("before", "across", "after")
RUNS = 3


class RestartableNats:
    """A nats-server on a fixed port with a store that outlives it."""

    def __init__(self, home: Path) -> None:
        self.home, self.port = home, free_port()
        self.handle: NatsHandle | None = None

    @property
    def url(self) -> str:
        return f"nats://{LOOPBACK}:{self.port}"

    async def start(self) -> None:
        self.handle = await ensure_nats(self.home, port=self.port, persistent=True)

    async def stop(self) -> None:
        """SIGTERM: the server shuts down in order (JetStream flushes its store)."""
        if self.handle is not None:
            await self.handle.stop()
            self.handle = None


@pytest_asyncio.fixture(loop_scope="session")
async def nats(tmp_path: Path) -> AsyncIterator[RestartableNats]:
    server = RestartableNats(tmp_path / "nats")
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def own_nats(
    nats: RestartableNats, postgres_url: str, tmp_path: Path
) -> AsyncIterator[Deployment]:
    async with deployment(nats.url, postgres_url, tmp_path) as deployed:
        yield deployed


class Outage:
    """Runs held at their ``across`` step; NATS stopped; the step answered while it is down."""

    def __init__(self, nats: RestartableNats, deployed: Deployment, origin: Origin) -> None:
        self.nats, self.deployed, self.origin = nats, deployed, origin
        self.across = origin.hold("across")
        self.run_ids: list[str] = []
        self.before: dict[str, list[Entry]] = {}

    async def begin(self) -> None:
        runs, origin = self.deployed.runs, self.origin
        workflow = await runs.workflow(origin.chain(*NODES))
        self.run_ids = [await runs.start(workflow, {"n": n}) for n in range(RUNS)]
        await until(lambda: all(origin.counts(r, "across")["across"] for r in self.run_ids), 10)
        self.before = {r: await self.deployed.history(r) for r in self.run_ids}
        await self.nats.stop()
        await until(lambda: not self.deployed.nc.is_connected, 5)
        self.across.set()  # the steps finish while NATS is down: their events must wait
        await until(lambda: all(origin.answered[f"{r}:across"] for r in self.run_ids), 5)

    async def end(self) -> None:
        await self.nats.start()
        await until(lambda: self.deployed.nc.is_connected, 10)

    async def assert_finished(self, executor: ExecutorProcess, timeout: float) -> None:  # noqa: ASYNC109
        states = [await self.deployed.runs.finished(r, timeout) for r in self.run_ids]
        assert all(state.status == "succeeded" for state in states), states
        assert executor.logged("nats.reconnected")
        for run_id in self.run_ids:
            history = await self.deployed.history(run_id)
            assert_coherent(history)
            assert history[: len(self.before[run_id])] == self.before[run_id]
            assert history[-1].kind == "run.succeeded"


async def test_an_executor_rides_through_a_short_nats_restart(
    nats: RestartableNats, own_nats: Deployment, origin: Origin
) -> None:
    lease, outage = 5.0, Outage(nats, own_nats, origin)
    async with own_nats.executors(1, lease) as (executor,):
        await outage.begin()
        await until(lambda: len(executor.logged("runlog.publish_retry")) >= RUNS, 5)
        await outage.end()
        await outage.assert_finished(executor, 3 * lease)

        workflow = await own_nats.runs.workflow(origin.chain(*NODES))
        late = await own_nats.runs.start(workflow, {})  # intake works after the restart
        late_state = await own_nats.runs.finished(late, timeout=lease)
        assert late_state.status == "succeeded", late_state.error

        assert not executor.logged("run.interrupted")
        assert not executor.logged("run.lease_lost")
        assert await executor.stop() == 0

    for run_id in [*outage.run_ids, late]:
        assert origin.counts(run_id, *NODES) == dict.fromkeys(NODES, 1)


async def test_runs_outliving_their_lease_in_an_outage_resume_after_it(
    nats: RestartableNats, own_nats: Deployment, origin: Origin
) -> None:
    lease, outage = 2.0, Outage(nats, own_nats, origin)
    async with own_nats.executors(1, lease) as (executor,):
        await outage.begin()
        # Interrupted (the publish ran out of patience) or let go (the lease lapsed first).
        await until(lambda: len(_let_go(executor)) == RUNS, 3 * lease)
        await outage.end()
        await outage.assert_finished(executor, 5 * lease)
        assert await executor.stop() == 0

    # The step in flight may run again (its result may not have been recorded); the one
    # before it had been, and the one after it was started by one driver only.
    for run_id in outage.run_ids:
        counts = origin.counts(run_id, *NODES)
        assert counts["before"] == 1, counts
        assert 1 <= counts["across"] <= 2, counts
        assert counts["after"] == 1, counts


def _let_go(executor: ExecutorProcess) -> list[str]:
    """The runs the executor stopped driving: interrupted, or lost with their lease."""
    lines = executor.logged("run.interrupted") + executor.logged("run.lease_lost")
    return [line["run_id"] for line in lines]
