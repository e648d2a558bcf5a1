"""Stopping an executor (SIGTERM's path): held runs finish within the bound, or are handed
back at once to another executor, which resumes them; none is lost."""

from __future__ import annotations

import asyncio
from contextlib import AsyncExitStack
from typing import Any

import msgspec

from flowmesh_executor.main import ExecutorApp, start_executor
from flowmesh_executor.settings import ExecutorSettings
from tests.integration.executor.runs import Runs


def sleeper(duration: str) -> dict[str, Any]:
    return {
        "name": "sleeper",
        "nodes": [{"id": "nap", "type": "delay", "parameters": {"duration": duration}}],
        "edges": [],
    }


async def _runs_on(second: ExecutorApp, runs: Runs, workflow: Any) -> list[str]:
    """Start runs until the second executor holds one (the feed shares them out)."""
    started: list[str] = []
    for _ in range(30):
        started.append(await runs.start(workflow))
        await runs.step_running(started[-1], "nap")
        if second.consumer.held:
            return started
    raise AssertionError("the second executor never got a run")


async def test_a_stopping_executor_finishes_what_it_holds(
    runs: Runs, executor_settings: ExecutorSettings
) -> None:
    workflow = await runs.workflow(sleeper("PT0.5S"))
    settings = msgspec.structs.replace(executor_settings, shutdown_timeout=5.0)
    async with AsyncExitStack() as stack:
        second = await start_executor(settings, stack)
        started = await _runs_on(second, runs, workflow)
    # the stack closed: the second executor drained (its runs had 5 s, needing 0.5)
    states = [await runs.finished(run_id) for run_id in started]
    assert all(state.status == "succeeded" for state in states)
    for state in states:
        starts = [n for n in state.nodes.values() if n.attempt > 1]
        assert not starts  # nothing was run twice


async def test_runs_left_at_the_bound_are_handed_back_and_resumed(
    runs: Runs, executor_settings: ExecutorSettings
) -> None:
    workflow = await runs.workflow(sleeper("PT2S"))
    settings = msgspec.structs.replace(executor_settings, shutdown_timeout=0.1)
    loop = asyncio.get_running_loop()
    async with AsyncExitStack() as stack:
        second = await start_executor(settings, stack)
        started = await _runs_on(second, runs, workflow)
        handed_back = second.consumer.held
        stopped_at = loop.time()
    assert handed_back >= 1
    states = [await runs.finished(run_id, timeout=10) for run_id in started]
    assert all(state.status == "succeeded" for state in states), [s.error for s in states]
    # resumed at once by the other executor, not after the 5 s lease ran out; and the
    # resumed delay slept only for what was left of its 2 s
    assert loop.time() - stopped_at < executor_settings.lease_seconds
