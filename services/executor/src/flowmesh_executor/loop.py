"""The decide-publish-perform loop of one run (see :mod:`flowmesh_executor.driver`)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec
import structlog

from flowmesh_executor.actions import FinishRun, RunContext, StartStep, WakeAt
from flowmesh_executor.children import child_run_id
from flowmesh_executor.engine import (
    STEP_TIMEOUT,
    batch,
    cel_context,
    decide,
    output_problem,
    step_failed,
    step_succeeded,
)
from flowmesh_executor.instant import error_class, redact, render_parameters
from flowmesh_executor.nodes.base import EventInterest, StepCall, StepError
from flowmesh_executor.parking import park
from flowmesh_executor.pauses import Paused
from flowmesh_executor.state import RunState, apply
from flowmesh_executor.writer import RunWriter
from flowmesh_proto.runs import (
    RunError,
    RunEvent,
    RunFailed,
    RunStarted,
    StepBatch,
    StepEvent,
    control_key,
)
from flowmesh_proto.timers import EventWait, event_wait_key
from flowmesh_proto.workflow import Definition, MapNode, WorkflowNode
from flowmesh_shared import telemetry
from flowmesh_shared.expressions import ExpressionError, Meter

if TYPE_CHECKING:
    from flowmesh_executor.driver import Outcome, RunDriver, _Result, _Running

log = structlog.get_logger("flowmesh.executor.run")

EVENT_LIMIT = "RUN_EVENT_LIMIT"
INTERNAL = "InternalError"
_EVENT_RESERVE = 2  # room kept for the events that end a run


class Loop:
    def __init__(
        self,
        driver: RunDriver,
        definition: Definition,
        state: RunState,
        context: RunContext,
        writer: RunWriter,
    ) -> None:
        self.driver = driver
        self.definition = definition
        self.state = state
        self.context = context
        self.writer = writer
        self.settings = driver.parts.services.settings
        self.nodes = {node.id: node for node in definition.nodes}

    async def run(self) -> Outcome:
        driver = self.driver
        for node_id, node in self.state.nodes.items():
            if node.status == "running":  # in flight when the last owner stopped: again
                self._launch(node_id, node.attempt, node.deadline)
        while True:
            driver._signal.clear()
            driver.lease.check(time.monotonic())
            now = utcnow()
            events = self._take_results(now)
            if driver._cancel_reason is not None and not self.context.cancel_requested:
                self.context = msgspec.structs.replace(
                    self.context, cancel_requested=True, cancel_reason=driver._cancel_reason
                )
            turns = driver.parts.services.turns
            await turns.take()
            decision = decide(self.definition, self.state, now, self.context)
            turns.spend(decision.spent)
            events += [_signed(e, driver.parts.name) for e in _flat(decision.events)]
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
            if not driver._running and wake is None and not driver._results:
                await self._stuck(now)
                return "finished"
            due = self._park_until(wake)
            if due is not None:
                await self._park(due)
                return "parked"
            await self._wait(wake)

    # --- parking -----------------------------------------------------------------------

    def _long_wait(
        self, node_id: str, due: datetime | None, interest: EventInterest | None
    ) -> None:
        """A step of this run is about to wait until ``due`` (None: no end), or until an
        event ``interest`` describes (called by the step)."""
        if interest is not None and self.driver.parts.services.event_waits is None:
            return
        recheck = utcnow() + timedelta(seconds=self.settings.park_recheck)
        self.driver._long_waits[node_id] = recheck if due is None else min(due, recheck)
        if interest is not None:
            self.driver._interests[node_id] = interest
        self.driver._signal.set()

    def _park_until(self, wake: datetime | None) -> datetime | None:
        """When to be asked again if the run is to be parked now, else None: parked when
        every running step waits until a time (a delay) and so does the engine (a retry's
        backoff, a deadline: ``wake``), the soonest of them at least ``park_after`` seconds
        away, and no result or cancel is waiting to be seen."""
        driver, limit = self.driver, self.settings.park_after
        if limit <= 0 or driver._results or driver._cancel_reason is not None:
            return None
        dues = [driver._long_waits.get(node_id) for node_id in driver._running]
        if wake is not None:
            dues.append(wake)
        if not dues or any(due is None for due in dues):
            return None
        due = min(d for d in dues if d is not None)
        if (due - utcnow()).total_seconds() < limit:
            return None
        return due

    async def _park(self, due: datetime) -> None:
        """Leave the run to a durable timer: the scheduler publishes its request again at
        ``due`` (``Nats-Msg-Id: resume:<run_id>:<last sequence>``: one resume per park)."""
        services = self.driver.parts.services
        request = self.driver.request
        self.driver.lease.check(time.monotonic())
        for node_id in self.driver._running:
            interest = self.driver._interests.get(node_id)
            if interest is not None and services.event_waits is not None:
                wait = EventWait(
                    tenant=request.tenant,
                    run_id=request.run_id,
                    node_id=node_id,
                    event=interest.event,
                    match=interest.match,
                    variables=interest.variables,
                    request=request,
                    since=self.state.node(node_id).attempt_started_at or utcnow(),
                    parked_at=self.writer.last_seq,
                )
                await services.event_waits.put(
                    event_wait_key(request.tenant, request.run_id, node_id),
                    msgspec.json.encode(wait),
                )
        await park(services, request, self.writer.last_seq, due)
        self.driver.parts.metrics.runs.labels("parked").inc()
        log.info("run.parked", until=due.isoformat(), steps=sorted(self.driver._running))

    # --- results -----------------------------------------------------------------------

    def _take_results(self, now: datetime) -> list[RunEvent | StepEvent]:
        driver = self.driver
        results, driver._results = driver._results, []
        paused = [
            r.node_id for r in results if r.after_pause and self._current(r.node_id, r.attempt)
        ]
        if paused:
            raise Paused(f"step {', '.join(paused)} failed after this executor stood still")
        events: list[RunEvent | StepEvent] = []
        for result in results:
            running = driver._running.get(result.node_id)
            if running is not None and running.attempt == result.attempt:
                del driver._running[result.node_id]
                driver._long_waits.pop(result.node_id, None)
                driver._interests.pop(result.node_id, None)
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

    def _current(self, node_id: str, attempt: int) -> bool:
        running = self.driver._running.get(node_id)
        return running is not None and running.attempt == attempt

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
        await self._fail(now, EVENT_LIMIT, message, next(iter(self.driver._running), None))

    def _observe_finish(self) -> None:
        state = self.state
        metrics = self.driver.parts.metrics
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
        self.driver.parts.metrics.runs.labels("failed").inc()

    # --- steps -------------------------------------------------------------------------

    def _reconcile(self) -> None:
        """Cancel step tasks whose attempt is no longer running (timed out, run finished)."""
        for node_id, running in list(self.driver._running.items()):
            node = self.state.node(node_id)
            if node.status != "running" or node.attempt != running.attempt:
                running.task.cancel()
                del self.driver._running[node_id]
                self.driver._long_waits.pop(node_id, None)
                self.driver._interests.pop(node_id, None)
                self._cancel_child(node_id, running)

    def _cancel_child(self, node_id: str, running: _Running) -> None:
        """A ``workflow`` step given up (run ended, attempt timed out): cancel its child run
        too (its id is derived, so it is known without asking anyone)."""
        node = self.nodes[node_id]
        if not isinstance(node, WorkflowNode) or running.started_at is None:
            return
        assert self.state.ref is not None
        child = child_run_id(self.state.ref.run_id, node_id, running.attempt, running.started_at)
        key = control_key(self.state.ref.tenant, child)
        reason = f"its parent run's step {node_id} was given up"
        task = asyncio.create_task(self.driver.parts.control.cancel(key, reason))
        self.driver._background.add(task)
        task.add_done_callback(self.driver._background.discard)

    def _launch(self, node_id: str, attempt: int, deadline: datetime | None) -> None:
        from flowmesh_executor.driver import _Result, _Running

        driver = self.driver
        driver._long_waits.pop(node_id, None)
        driver._interests.pop(node_id, None)
        task = asyncio.create_task(
            self._step(node_id, attempt, deadline, _Result), name=f"step:{node_id}:{attempt}"
        )
        started_at = self.state.node(node_id).attempt_started_at
        driver._running[node_id] = _Running(attempt=attempt, task=task, started_at=started_at)

    async def _step(
        self, node_id: str, attempt: int, deadline: datetime | None, result: type[_Result]
    ) -> None:
        kind = _type_of(self.nodes[node_id])
        error: tuple[str, str] | None = None
        output: Any = None
        began = time.monotonic()
        with telemetry.tracer().start_as_current_span(
            f"step {node_id}", attributes={"flowmesh.node_id": node_id, "flowmesh.attempt": attempt}
        ) as span:
            try:
                output = await self._perform(node_id, attempt, deadline)
                problem = output_problem(output, self.settings.max_output_bytes)
                if problem is not None:
                    raise StepError(*problem)
            except StepError as exc:
                error = (exc.error_class, redact(exc.message, self.context.secrets))
            except TimeoutError:
                error = (STEP_TIMEOUT, f"attempt {attempt} passed its deadline")
            except asyncio.CancelledError:
                self.driver.parts.metrics.steps.labels(kind, "cancelled").inc()
                raise
            except Exception as exc:  # a defect in a step: fail the step, not the executor
                log.exception("step.crashed", node=node_id)
                error = (INTERNAL, redact(f"{type(exc).__name__}: {exc}", self.context.secrets))
            if error is not None:
                telemetry.mark_failed(span, error[0])
        outcome = "succeeded" if error is None else "failed"
        self.driver.parts.metrics.steps.labels(kind, outcome).inc()
        pauses = self.driver.parts.pauses
        after_pause = error is not None and pauses.paused_since(began, time.monotonic())
        self.driver._results.append(
            result(
                node_id=node_id,
                attempt=attempt,
                output=output,
                error=error,
                after_pause=after_pause,
            )
        )
        self.driver._signal.set()

    async def _perform(self, node_id: str, attempt: int, deadline: datetime | None) -> Any:
        node = self.nodes[node_id]
        ref = self.state.ref
        assert ref is not None
        variables = cel_context(self.definition, self.state, self.context)
        raw = msgspec.to_builtins(node.parameters)
        keep = raw.pop("node", None) if isinstance(node, MapNode) else None
        meter = Meter(self.context.expression_budget)
        turns = self.driver.parts.services.turns
        await turns.take()
        try:
            parameters = render_parameters(
                _type_of(node), raw, variables, self.context.secrets, meter
            )
        except ExpressionError as exc:
            message = redact(str(exc), self.context.secrets)
            raise StepError(error_class(exc), message) from None
        finally:
            turns.spend(meter.spent)
        if keep is not None:
            parameters["node"] = keep
        call = StepCall(
            tenant=ref.tenant,
            run_id=ref.run_id,
            workflow_id=ref.workflow_id,
            version=ref.version,
            node=node,
            attempt=attempt,
            idempotency_key=f"{ref.run_id}:{node_id}",
            parameters=parameters,
            variables=variables,
            started_at=self.state.node(node_id).attempt_started_at or utcnow(),
            deadline=deadline,
            secrets=self.context.secrets,
            traceparent=telemetry.inject({}).get("traceparent"),
            expression_budget=self.context.expression_budget,
            long_wait=lambda due, interest: self._long_wait(node_id, due, interest),
        )
        step = self.driver.parts.steps.get(_type_of(node))
        if step is None:
            raise StepError("UnsupportedNode", f"this executor cannot run {_type_of(node)} nodes")
        services = self.driver.parts.services
        if deadline is None:
            return await step(call, services)
        loop = asyncio.get_running_loop()
        remaining = (deadline - utcnow()).total_seconds()
        async with asyncio.timeout_at(loop.time() + max(0.0, remaining)):
            return await step(call, services)

    async def _wait(self, wake: datetime | None) -> None:
        driver = self.driver
        cancel_unseen = driver._cancel_reason is not None and not self.context.cancel_requested
        if driver._results or cancel_unseen:
            return
        timeout = None
        if wake is not None:
            timeout = max(0.0, (wake - utcnow()).total_seconds())
        try:
            async with asyncio.timeout(timeout):
                await driver._signal.wait()
        except TimeoutError:
            pass


def _type_of(node: Any) -> str:
    tag: str = node.__struct_config__.tag
    return tag


def utcnow() -> datetime:
    return datetime.now(UTC)


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
