"""One run's work in flight: the steps running, the results they left, and what wakes the
run's loop (:mod:`flowmesh_executor.loop`) while it waits.

The driver makes one per run and hands it to the loop. Step tasks report their results
into it, the consumer's cancel and a lapsed lease (through the driver) wake it, and a step
about to wait long says until when, so the loop can park the run. It decides nothing: the
loop takes the results, asks the engine, and tells it which steps to start and drop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flowmesh_executor.nodes.base import EventInterest

__all__ = ["InFlight", "RunningStep", "StepResult"]


@dataclass(slots=True)
class StepResult:
    """What one attempt of a step ended with: its output, or its error class and message."""

    node_id: str
    attempt: int
    output: Any = None
    error: tuple[str, str] | None = None
    #: The step failed after this process stood still: its own timers may have made the
    #: failure up (see :mod:`flowmesh_executor.pauses`).
    after_pause: bool = False
    #: Whether it was the node's running attempt when taken (else a stale attempt's).
    current: bool = False


@dataclass(slots=True)
class RunningStep:
    """The running attempt of one node, as a task of this process."""

    attempt: int
    task: asyncio.Task[None]
    #: The attempt's start as the run's events record it (None: not recorded yet).
    started_at: datetime | None = None
    #: Until when the step waits long (a delay, an event), so the run may be parked;
    #: None while it is not waiting.
    waits_until: datetime | None = None
    #: What ends a ``wait_for_event`` step's long wait, kept for the scheduler when parked.
    interest: EventInterest | None = None


class InFlight:
    """The running steps of one run, their results, and the loop's wake-up (see the module)."""

    def __init__(self) -> None:
        self._woken = asyncio.Event()
        self._running: dict[str, RunningStep] = {}
        self._results: list[StepResult] = []
        self._background: set[asyncio.Task[None]] = set()
        self._cancel_reason: str | None = None

    # --- what wakes the loop ----------------------------------------------------------

    @property
    def cancel_reason(self) -> str | None:
        """Why the run was asked to cancel, None if it was not."""
        return self._cancel_reason

    def cancel(self, reason: str) -> None:
        """The run is to be cancelled (the first reason given stands); wakes the loop."""
        if self._cancel_reason is None:
            self._cancel_reason = reason or "cancelled"
            self._woken.set()

    def wake(self) -> None:
        """Wake the loop (a lapsed lease: it looks and stops)."""
        self._woken.set()

    async def wait(self, timeout: float | None) -> None:  # noqa: ASYNC109
        """Until something wakes the loop after its last :meth:`take_results`, or
        ``timeout`` seconds (None: no end); at once while results wait to be taken."""
        if self._results:
            return
        try:
            async with asyncio.timeout(timeout):
                await self._woken.wait()
        except TimeoutError:
            pass

    # --- results ----------------------------------------------------------------------

    def report(self, result: StepResult) -> None:
        """A step's attempt ended (called by its task); wakes the loop."""
        self._results.append(result)
        self._woken.set()

    @property
    def has_results(self) -> bool:
        return bool(self._results)

    def take_results(self) -> list[StepResult]:
        """The results reported since the last call, in order. A result of its node's
        running attempt (``current``) ends that running step. What woke the loop is
        forgotten: from here on, anything new wakes it again."""
        self._woken.clear()
        results, self._results = self._results, []
        for result in results:
            running = self._running.get(result.node_id)
            result.current = running is not None and running.attempt == result.attempt
            if result.current:
                del self._running[result.node_id]
        return results

    # --- running steps ----------------------------------------------------------------

    def start(
        self,
        node_id: str,
        attempt: int,
        started_at: datetime | None,
        work: Coroutine[Any, Any, None],
    ) -> None:
        """Run ``work``, attempt ``attempt`` of ``node_id``, as a task of its own."""
        task = asyncio.create_task(work, name=f"step:{node_id}:{attempt}")
        self._running[node_id] = RunningStep(attempt=attempt, task=task, started_at=started_at)

    def __iter__(self) -> Iterator[str]:
        """The ids of the nodes running, in the order they started."""
        return iter(list(self._running))

    def __len__(self) -> int:
        return len(self._running)

    def attempt(self, node_id: str) -> int | None:
        """The running attempt of ``node_id``, None when it is not running."""
        running = self._running.get(node_id)
        return None if running is None else running.attempt

    def drop(self, node_id: str) -> RunningStep | None:
        """Stop the running step of ``node_id`` (its task is cancelled); what it was."""
        running = self._running.pop(node_id, None)
        if running is not None:
            running.task.cancel()
        return running

    def background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run ``work`` beside the steps (cancelling a given-up step's child run); it is
        awaited, not cancelled, by :meth:`close`."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def close(self) -> None:
        """Cancel every running step and wait for them and the background work."""
        for running in self._running.values():
            running.task.cancel()
        pending = [r.task for r in self._running.values()] + list(self._background)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    # --- long waits, for parking ------------------------------------------------------

    def waits_long(
        self, node_id: str, attempt: int, until: datetime, interest: EventInterest | None
    ) -> None:
        """Attempt ``attempt`` of ``node_id`` is about to wait until ``until`` (or, with
        ``interest``, for an event); wakes the loop, which may park the run."""
        running = self._running.get(node_id)
        if running is None or running.attempt != attempt:
            return
        running.waits_until, running.interest = until, interest
        self._woken.set()

    def all_wait_until(self, wake: datetime | None) -> datetime | None:
        """The soonest of ``wake`` (the engine's) and the times the running steps wait
        until, when every running step waits long; None when one does not, or when
        nothing waits at all."""
        dues = [running.waits_until for running in self._running.values()]
        if wake is not None:
            dues.append(wake)
        if not dues or any(due is None for due in dues):
            return None
        return min(due for due in dues if due is not None)

    def interests(self) -> dict[str, EventInterest]:
        """The running ``wait_for_event`` steps that wait long, and what would end each."""
        return {
            node_id: running.interest
            for node_id, running in self._running.items()
            if running.interest is not None
        }
