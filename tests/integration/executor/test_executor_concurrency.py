"""Concurrency keys: limits per key value, the three on_limit strategies, no leaked slot."""

from __future__ import annotations

from typing import Any

from flowmesh_proto.runs import RunQueued, RunWaiting
from tests.integration.executor.runs import Runs


def limited(on_limit: str, duration: str = "PT0.3S") -> dict[str, Any]:
    return {
        "name": f"limited-{on_limit}",
        "concurrency": {"key": "trigger.data.customer", "limit": 1, "on_limit": on_limit},
        "nodes": [
            {"id": "work", "type": "delay", "parameters": {"duration": "{{ trigger.data.d }}"}}
        ],
        "edges": [],
    }


async def test_queue_runs_one_at_a_time_per_key(runs: Runs) -> None:
    workflow = await runs.workflow(limited("queue"))
    first = await runs.start(workflow, {"customer": "c1", "d": "PT0.3S"})
    await runs.step_running(first, "work")
    second = await runs.start(workflow, {"customer": "c1", "d": "PT0.01S"})
    other = await runs.start(workflow, {"customer": "c2", "d": "PT0.01S"})
    other_state = await runs.finished(other)
    assert other_state.status == "succeeded"  # another key value is not held up
    a, b = await runs.finished(first), await runs.finished(second)
    assert a.status == b.status == "succeeded"
    assert b.started_at is not None and a.finished_at is not None
    assert b.started_at >= a.finished_at  # the second waited for the first's slot


async def test_cancel_newest_cancels_the_run_that_asks(runs: Runs) -> None:
    workflow = await runs.workflow(limited("cancel_newest"))
    first = await runs.start(workflow, {"customer": "c1", "d": "PT0.5S"})
    await runs.step_running(first, "work")
    second = await runs.finished(await runs.start(workflow, {"customer": "c1", "d": "PT0S"}))
    assert second.status == "cancelled"
    assert (await runs.finished(first)).status == "succeeded"


async def test_cancel_in_progress_cancels_the_holder(runs: Runs) -> None:
    workflow = await runs.workflow(limited("cancel_in_progress"))
    first = await runs.start(workflow, {"customer": "c1", "d": "PT10S"})
    await runs.step_running(first, "work")
    second = await runs.start(workflow, {"customer": "c1", "d": "PT0S"})
    assert (await runs.finished(first)).status == "cancelled"
    assert (await runs.finished(second)).status == "succeeded"


async def test_a_failed_or_cancelled_run_gives_its_slot_back(runs: Runs) -> None:
    workflow = await runs.workflow(limited("cancel_newest"))
    failed = await runs.finished(await runs.start(workflow, {"customer": "c1", "d": "bad"}))
    assert failed.status == "failed"
    cancelled = await runs.start(workflow, {"customer": "c1", "d": "PT10S"})
    await runs.step_running(cancelled, "work")
    await runs.cancel(cancelled)
    assert (await runs.finished(cancelled)).status == "cancelled"
    after = await runs.finished(await runs.start(workflow, {"customer": "c1", "d": "PT0S"}))
    assert after.status == "succeeded"  # neither left its slot behind


async def test_a_key_that_cannot_be_evaluated_fails_the_run(runs: Runs) -> None:
    workflow = await runs.workflow(limited("queue"))
    state = await runs.finished(await runs.start(workflow, {"d": "PT0S"}))
    assert state.status == "failed"
    assert state.error is not None and "concurrency key" in state.error.message


async def test_a_slot_left_by_a_finished_run_is_reclaimed(runs: Runs) -> None:
    """An executor that died between a run's terminal event and giving its slot back: the
    next run asking finds the holder finished and takes the slot."""
    import msgspec

    from flowmesh_executor.concurrency import SlotEntry, slot_key
    from flowmesh_proto.runs import control_key

    workflow = await runs.workflow(limited("cancel_newest"))
    finished = await runs.finished(await runs.start(workflow, {"customer": "c9", "d": "PT0S"}))
    assert finished.status == "succeeded"
    kv = await runs.js.key_value(runs.streams.concurrency)
    leaked = SlotEntry(holders=[control_key(runs.tenant, finished.ref.run_id)])  # type: ignore[union-attr]
    await kv.put(slot_key(runs.tenant, workflow.id, "c9"), msgspec.json.encode(leaked))
    after = await runs.finished(await runs.start(workflow, {"customer": "c9", "d": "PT0S"}))
    assert after.status == "succeeded"


async def test_a_run_waiting_for_a_slot_says_why_once(runs: Runs) -> None:
    workflow = await runs.workflow(limited("queue"))
    first = await runs.start(workflow, {"customer": "c1", "d": "PT0.5S"})
    await runs.step_running(first, "work")
    second = await runs.start(workflow, {"customer": "c1", "d": "PT0S"})
    assert (await runs.finished(second)).status == "succeeded"
    events = await runs.events(second)
    kinds = [type(event).__name__ for event in events]
    assert kinds.count("RunWaiting") == 1, kinds
    assert kinds.index("RunWaiting") < kinds.index("RunStarted")
    (waiting,) = [event for event in events if isinstance(event, RunWaiting)]
    assert waiting.reason == "concurrency_key"
    (queued,) = [event for event in events if isinstance(event, RunQueued)]
    assert waiting.since >= queued.at
    alone = await runs.start(workflow, {"customer": "c2", "d": "PT0S"})
    assert (await runs.finished(alone)).status == "succeeded"
    assert not any(isinstance(event, RunWaiting) for event in await runs.events(alone))
