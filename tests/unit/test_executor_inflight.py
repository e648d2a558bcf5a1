"""A run's work in flight (:class:`~flowmesh_executor.inflight.InFlight`): which results
end which running steps, what wakes the loop, and when every running step waits long."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from flowmesh_executor.inflight import InFlight, StepResult
from flowmesh_executor.nodes.base import EventInterest

T0 = datetime(2026, 1, 1, tzinfo=UTC)


async def _forever() -> None:
    await asyncio.Event().wait()


async def test_a_result_ends_its_running_attempt_not_a_newer_one() -> None:
    inflight = InFlight()
    inflight.start("a", 1, T0, _forever())
    inflight.start("b", 2, T0, _forever())
    inflight.report(StepResult("a", 1, output={"ok": True}))
    inflight.report(StepResult("b", 1, error=("Boom", "an older attempt")))
    results = inflight.take_results()
    assert [(r.node_id, r.attempt, r.current) for r in results] == [
        ("a", 1, True),
        ("b", 1, False),
    ]
    assert list(inflight) == ["b"] and inflight.attempt("b") == 2 and inflight.attempt("a") is None
    assert inflight.take_results() == []
    await inflight.close()


async def test_what_wakes_the_loop() -> None:
    inflight = InFlight()
    waiting = asyncio.create_task(inflight.wait(None))
    await asyncio.sleep(0)
    assert not waiting.done()
    inflight.cancel("enough")
    await asyncio.wait_for(waiting, 1)
    inflight.cancel("a second reason")
    assert inflight.cancel_reason == "enough"  # the first stands

    inflight.take_results()  # forgets what woke the loop
    await inflight.wait(0.01)  # nothing new: the timeout ends it
    inflight.report(StepResult("a", 1))
    inflight.take_results()
    inflight.report(StepResult("a", 2))
    await asyncio.wait_for(inflight.wait(None), 1)  # a result waiting: at once
    inflight.take_results()
    inflight.wake()
    await asyncio.wait_for(inflight.wait(None), 1)


async def test_a_run_waits_long_only_when_every_running_step_does() -> None:
    inflight = InFlight()
    assert inflight.all_wait_until(None) is None  # nothing waits at all
    assert inflight.all_wait_until(T0) == T0  # only the engine (a retry's backoff)
    inflight.start("delay", 1, T0, _forever())
    inflight.start("event", 1, T0, _forever())
    interest = EventInterest("order.paid", None, {})
    inflight.waits_long("delay", 1, T0 + timedelta(hours=2), None)
    assert inflight.all_wait_until(None) is None  # "event" does not wait long yet
    inflight.waits_long("event", 2, T0 + timedelta(hours=1), interest)  # not its attempt
    assert inflight.all_wait_until(None) is None
    inflight.waits_long("event", 1, T0 + timedelta(hours=3), interest)
    assert inflight.all_wait_until(None) == T0 + timedelta(hours=2)
    assert inflight.all_wait_until(T0 + timedelta(hours=1)) == T0 + timedelta(hours=1)
    assert inflight.interests() == {"event": interest}
    dropped = inflight.drop("event")
    assert dropped is not None and dropped.interest == interest
    await asyncio.sleep(0)
    assert dropped.task.cancelled()
    assert inflight.interests() == {}
    await inflight.close()


async def test_close_cancels_the_steps_and_awaits_the_background() -> None:
    inflight = InFlight()
    inflight.start("a", 1, None, _forever())
    finished: list[str] = []

    async def cancel_child() -> None:
        await asyncio.sleep(0.01)
        finished.append("child cancelled")

    inflight.background(cancel_child())
    await asyncio.wait_for(inflight.close(), 1)
    assert finished == ["child cancelled"]
