"""The decide-publish-perform loop of one run (see :mod:`flowmesh_executor.driver`).

Each turn folds the step results that arrived into events, asks the engine for the next
actions, publishes the events (fenced; consecutive step events as one ``steps`` batch),
starts the steps it asks for (:mod:`flowmesh_executor.attempts`), and waits for a result,
a timer or a cancel (:class:`~flowmesh_executor.inflight.InFlight`). A run whose running
steps all wait long, as the engine does, is parked: a durable timer asks for it again
(:meth:`~flowmesh_shared.runlife.RunLifecycle.park`) and the loop ends.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Literal

import msgspec
import structlog

from flowmesh_executor.actions import FinishRun, RunContext, StartStep, WakeAt
from flowmesh_executor.attempts import StepAttempts
from flowmesh_executor.children import child_run_id
from flowmesh_executor.engine import batch, decide, step_failed, step_succeeded
from flowmesh_executor.inflight import InFlight, RunningStep
from flowmesh_executor.lease import RunLease
from flowmesh_executor.parts import ExecutorParts
from flowmesh_executor.pauses import Paused
from flowmesh_executor.state import RunState, apply
from flowmesh_executor.writer import RunWriter
from flowmesh_proto.runs import (
    RunError,
    RunEvent,
    RunFailed,
    RunRequest,
    RunStarted,
    StepBatch,
    StepEvent,
    control_key,
)
from flowmesh_proto.timers import EventWait, event_wait_key
from flowmesh_proto.workflow import Definition, WorkflowNode
from flowmesh_shared import telemetry

log = structlog.get_logger("flowmesh.executor.run")

#: How a run's loop ended: the run is over, or parked (a timer or an event asks again).
Outcome = Literal["finished", "parked"]

EVENT_LIMIT = "RUN_EVENT_LIMIT"
_EVENT_RESERVE = 2  # room kept for the events that end a run


class Loop:
    """Drives one run from its state to its end or its parking (see the module)."""

    def __init__(
        self,
        parts: ExecutorParts,
        request: RunRequest,
        lease: RunLease,
        inflight: InFlight,
        *,
        definition: Definition,
        state: RunState,
        context: RunContext,
        writer: RunWriter,
    ) -> None:
        self.parts = parts
        self.request = request
        self.lease = lease
        self.inflight = inflight
        self.definition = definition
        self.state = state
        self.context = context
        self.writer = writer
        self.settings = parts.services.settings
        self.nodes = {node.id: node for node in definition.nodes}
        self.attempts = StepAttempts(parts, definition, inflight)

    async def run(self) -> Outcome:
        for node_id, node in self.state.nodes.items():
            if node.status == "running":  # in flight when the last owner stopped: again
                self._launch(node_id, node.attempt, node.deadline)
        while True:
            self.lease.check(time.monotonic())
            now = datetime.now(UTC)
            events = self._take_results(now)
            self._see_cancel()
            turns = self.parts.services.turns
            await turns.take()
            decision = decide(self.definition, self.state, now, self.context)
            turns.spend(decision.spent)
            events += [_signed(e, self.parts.name) for e in _flat(decision.events)]
            self.state = decision.state
            finish = next((a for a in decision.actions if isinstance(a, FinishRun)), None)
            if not await self._publish(events, now):
                return "finished"
            self._reconcile()
            if finish is not None:
                self._observe_finish()
                return "finished"
            wake: datetime | None = None
            for action in decision.actions:
                if isinstance(action, StartStep):
                    self._launch(action.node_id, action.attempt, action.deadline)
                elif isinstance(action, WakeAt):
                    wake = action.at if wake is None else min(wake, action.at)
            if not self.inflight and wake is None and not self.inflight.has_results:
                await self._stuck(now)
                return "finished"
            due = self._park_until(wake)
            if due is not None:
                await self._park(due)
                return "parked"
            await self._wait(wake)

    def _see_cancel(self) -> None:
        """A cancel asked since the last turn goes into the engine's context."""
        reason = self.inflight.cancel_reason
        if reason is not None and not self.context.cancel_requested:
            self.context = msgspec.structs.replace(
                self.context, cancel_requested=True, cancel_reason=reason
            )

    async def _wait(self, wake: datetime | None) -> None:
        """For a result, a cancel or ``wake`` (the engine's next time), whichever is first."""
        reason = self.inflight.cancel_reason
        if reason is not None and not self.context.cancel_requested:
            return  # a cancel the engine has not seen yet
        timeout = None
        if wake is not None:
            timeout = max(0.0, (wake - datetime.now(UTC)).total_seconds())
        await self.inflight.wait(timeout)

    # --- parking -----------------------------------------------------------------------

    def _park_until(self, wake: datetime | None) -> datetime | None:
        """When to be asked again if the run is to be parked now, else None: parked when
        every running step waits until a time (a delay, an event wait's recheck) and so
        does the engine (a retry's backoff, a deadline: ``wake``), the soonest of them at
        least ``park_after`` seconds away, and no result or cancel is waiting to be seen."""
        limit = self.settings.park_after
        if limit <= 0 or self.inflight.has_results or self.inflight.cancel_reason is not None:
            return None
        due = self.inflight.all_wait_until(wake)
        if due is None or (due - datetime.now(UTC)).total_seconds() < limit:
            return None
        return due

    async def _park(self, due: datetime) -> None:
        """Leave the run: its event waits are kept for the scheduler, and a durable timer
        asks for it again at ``due`` (one resume per park, named by the last sequence)."""
        self.lease.check(time.monotonic())
        await self._keep_event_waits()
        await self.parts.life.park(self.request, self.writer.last_seq, due)
        self.parts.metrics.runs.labels("parked").inc()
        log.info("run.parked", until=due.isoformat(), steps=sorted(self.inflight))

    async def _keep_event_waits(self) -> None:
        """Each ``wait_for_event`` step's wait, in the event-waits bucket: the scheduler
        asks for the run again when a matching event arrives."""
        bucket, request = self.parts.services.event_waits, self.request
        if bucket is None:
            return
        for node_id, interest in self.inflight.interests().items():
            wait = EventWait(
                tenant=request.tenant,
                run_id=request.run_id,
                node_id=node_id,
                event=interest.event,
                match=interest.match,
                variables=interest.variables,
                request=request,
                since=self.state.node(node_id).attempt_started_at or datetime.now(UTC),
                parked_at=self.writer.last_seq,
            )
            key = event_wait_key(request.tenant, request.run_id, node_id)
            await bucket.put(key, msgspec.json.encode(wait))

    # --- results -----------------------------------------------------------------------

    def _take_results(self, now: datetime) -> list[RunEvent | StepEvent]:
        """The results that arrived, folded into the state as events; raises
        :class:`~flowmesh_executor.pauses.Paused` for a running step that failed after
        this process stood still."""
        results = self.inflight.take_results()
        paused = [r.node_id for r in results if r.after_pause and r.current]
        if paused:
            raise Paused(f"step {', '.join(paused)} failed after this executor stood still")
        events: list[RunEvent | StepEvent] = []
        for result in results:
            if result.error is None:
                new = step_succeeded(
                    self.state, result.node_id, result.attempt, result.output, now, self.context
                )
            else:
                new = step_failed(
                    self.definition,
                    self.state,
                    result.node_id,
                    result.attempt,
                    result.error,
                    now,
                    self.context,
                )
            for event in new:
                apply(self.state, event)
            events += _flat(new)
        return events

    # --- publishing --------------------------------------------------------------------

    async def _publish(self, events: list[RunEvent | StepEvent], now: datetime) -> bool:
        """Publish ``events`` (batched); False when the run hit its event limit and was failed."""
        messages = batch(events)
        limit = self.settings.max_events_per_run
        if limit and self.writer.published + len(messages) > limit - _EVENT_RESERVE:
            await self._fail_event_limit(now)
            return False
        headers = telemetry.inject({})
        for message in messages:
            await self.writer.publish(message, headers)
        return True

    async def _fail_event_limit(self, now: datetime) -> None:
        message = f"the run reached its limit of {self.settings.max_events_per_run} events"
        await self._fail(now, EVENT_LIMIT, message, next(iter(self.inflight), None))

    def _observe_finish(self) -> None:
        state = self.state
        metrics = self.parts.metrics
        metrics.runs.labels(state.status).inc()
        if state.started_at is not None and state.finished_at is not None:
            seconds = (state.finished_at - state.started_at).total_seconds()
            metrics.run_duration.labels(state.status).observe(seconds)

    async def _stuck(self, now: datetime) -> None:
        """Nothing runs, nothing is due and the run is not over: an engine defect. Fail the
        run rather than hold its lease forever."""
        log.error("run.stuck", nodes={k: v.status for k, v in self.state.nodes.items()})
        await self._fail(now, "ENGINE_STUCK", "the run cannot make progress", None)

    async def _fail(self, now: datetime, code: str, message: str, node_id: str | None) -> None:
        """End the run as failed outside the engine (a limit, a defect)."""
        assert self.state.ref is not None
        ref = self.state.ref
        await self.writer.publish(
            RunFailed(
                tenant=ref.tenant,
                run_id=ref.run_id,
                workflow_id=ref.workflow_id,
                version=ref.version,
                at=now,
                error=RunError(code=code, message=message, node_id=node_id),
            )
        )
        self.parts.metrics.runs.labels("failed").inc()

    # --- steps -------------------------------------------------------------------------

    def _launch(self, node_id: str, attempt: int, deadline: datetime | None) -> None:
        self.attempts.start(self.state, self.context, node_id, attempt, deadline)

    def _reconcile(self) -> None:
        """Drop running steps whose attempt is no longer running (timed out, run finished)."""
        for node_id in self.inflight:
            node = self.state.node(node_id)
            if node.status != "running" or node.attempt != self.inflight.attempt(node_id):
                given_up = self.inflight.drop(node_id)
                if given_up is not None:
                    self._cancel_child(node_id, given_up)

    def _cancel_child(self, node_id: str, given_up: RunningStep) -> None:
        """A ``workflow`` step given up (run ended, attempt timed out): cancel its child run
        too (its id is derived, so it is known without asking anyone)."""
        node = self.nodes[node_id]
        if not isinstance(node, WorkflowNode) or given_up.started_at is None:
            return
        assert self.state.ref is not None
        child = child_run_id(self.state.ref.run_id, node_id, given_up.attempt, given_up.started_at)
        key = control_key(self.state.ref.tenant, child)
        reason = f"its parent run's step {node_id} was given up"
        self.inflight.background(self.parts.control.cancel(key, reason))


def _signed(event: RunEvent | StepEvent, executor: str) -> RunEvent | StepEvent:
    """``run.started`` names the executor that started the run (the engine cannot know it)."""
    if isinstance(event, RunStarted) and not event.executor:
        return msgspec.structs.replace(event, executor=executor)
    return event


def _flat(events: list[RunEvent]) -> list[RunEvent | StepEvent]:
    flat: list[RunEvent | StepEvent] = []
    for event in events:
        if isinstance(event, StepBatch):
            flat.extend(event.events)
        else:
            flat.append(event)
    return flat
