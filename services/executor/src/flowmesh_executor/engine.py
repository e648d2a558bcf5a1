"""The executor's DAG engine (DESIGN sections 4 and 5): a pure state machine.

``(definition, state folded from the run's events, now, context) -> Decision``: the actions
for the shell, the events recording them, and the state after those events. It never
awaits, logs, reads the clock or draws random numbers; replaying the same events rebuilds
the same state (:func:`flowmesh_executor.state.fold`).

One call settles everything that can be settled at ``now``: it walks the nodes in
topological order, evaluating instantaneous nodes (noop, transform, condition, switch) and
skipping cut ones as it goes, so a chain of instantaneous nodes finishes in one decision and
its events go out as one ``steps`` batch. Branch, join, ``on_error`` and output rules are in
:mod:`flowmesh_executor.outcomes`. ``run.started`` names every node of the version (each
is a step of the run from then on); a run that ends before some nodes ran (failed,
cancelled, timed out) skips them in one ``steps`` batch just before its terminal event.

The shell reports a step's result with :func:`step_succeeded` / :func:`step_failed`, which
return the events to publish (a failure's retry decision included), then calls
:func:`decide` again. Secrets: the engine redacts secret values from every output and
message it records; the shell must redact what it reports the same way (these two
functions do it for it).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import msgspec

from flowmesh_executor.actions import (
    Action,
    CompleteStep,
    Decision,
    FailStep,
    FinishRun,
    FinishStatus,
    RetryStep,
    RunContext,
    SkipSteps,
    StartRun,
    StartStep,
    WakeAt,
    events_for,
)
from flowmesh_executor.instant import (
    EvaluationFailed,
    evaluate_instant,
    expression_context,
    redact,
)
from flowmesh_executor.outcomes import done_outputs, outcome, readiness, run_output
from flowmesh_executor.plan import Plan, plan_of
from flowmesh_executor.retry import NO_RETRY, NOT_RETRIED, retry_delay_ms
from flowmesh_executor.state import RunState, apply
from flowmesh_proto.runs import RunError, RunEvent, StepBatch, StepEvent, StepSucceeded
from flowmesh_proto.storable import unstorable
from flowmesh_proto.workflow import Definition
from flowmesh_shared.expressions import Meter

__all__ = [
    "OUTPUT_TOO_LARGE",
    "STEP_TIMEOUT",
    "cel_context",
    "decide",
    "output_problem",
    "step_failed",
    "step_succeeded",
]

STEP_TIMEOUT = "StepTimeout"
OUTPUT_TOO_LARGE = "OutputTooLarge"
#: A step output run history could not keep (U+0000 in a string or key).
OUTPUT_NOT_STORABLE = "OutputNotStorable"
STEP_FAILED = "STEP_FAILED"
_NO_CONTEXT = RunContext()
_ENCODER = msgspec.json.Encoder()


def decide(
    definition: Definition, state: RunState, now: datetime, context: RunContext = _NO_CONTEXT
) -> Decision:
    """The next actions for a run; ``state`` is not changed (the decision holds the next)."""
    if state.ref is None:
        raise ValueError("a run's state starts with its run.queued (or run.scheduled) event")
    work = _Work(plan_of(definition), state.clone(), now, context)
    if not state.finished:
        work.run()
    return Decision(
        actions=_merge_skips(work.actions),
        events=batch(work.events),
        state=work.state,
        spent=work.spent,
    )


def step_succeeded(
    state: RunState, node_id: str, attempt: int, output: Any, now: datetime, context: RunContext
) -> list[RunEvent]:
    """The events for a step the shell ran that succeeded; none if the attempt is stale."""
    node = state.node(node_id)
    if state.ref is None or state.finished or node.status != "running" or node.attempt != attempt:
        return []
    ref = state.ref
    return [
        StepSucceeded(
            tenant=ref.tenant,
            run_id=ref.run_id,
            workflow_id=ref.workflow_id,
            version=ref.version,
            at=now,
            node_id=node_id,
            attempt=attempt,
            started_at=node.attempt_started_at,
            output=redact(output, context.secrets),
        )
    ]


def step_failed(
    definition: Definition,
    state: RunState,
    node_id: str,
    attempt: int,
    error: tuple[str, str],
    now: datetime,
    context: RunContext,
) -> list[RunEvent]:
    """The events for a failed attempt (``error`` is (error class, message)): ``step.failed``,
    final when no attempt is left, else with the ``step.retrying`` that schedules the next.
    None if the attempt is stale."""
    node = state.node(node_id)
    if state.ref is None or state.finished or node.status != "running" or node.attempt != attempt:
        return []
    work = _Work(plan_of(definition), state.clone(), now, context)
    work.fail(node_id, attempt, error[0], redact(error[1], context.secrets))
    return batch(work.events)


def output_problem(output: Any, limit: int) -> tuple[str, str] | None:
    """Why ``output`` may not be recorded, as (error class, message), or None: over
    ``limit`` bytes of JSON, no JSON form, or something run history could not keep
    (U+0000, :func:`flowmesh_proto.storable.unstorable`: recorded, it would be lost)."""
    try:
        encoded = _ENCODER.encode(output)
    except (TypeError, ValueError, OverflowError) as exc:
        return OUTPUT_TOO_LARGE, f"the output has no JSON form: {exc}"
    if limit and len(encoded) > limit:
        return (
            OUTPUT_TOO_LARGE,
            f"the output takes {len(encoded)} bytes of JSON; the limit is {limit}",
        )
    if b"\\u0000" in encoded:  # the cheap look first: a normal output is never walked
        problem = unstorable(output, "output")
        if problem is not None:
            return OUTPUT_NOT_STORABLE, f"{problem.path}: {problem.reason}"
    return None


def cel_context(definition: Definition, state: RunState, context: RunContext) -> dict[str, Any]:
    """The CEL variables for expressions of this run (the shell renders step parameters)."""
    return _cel_context(plan_of(definition), state, context, None)


def batch(events: list[RunEvent | StepEvent]) -> list[RunEvent]:
    """Consecutive step events as one ``steps`` batch each (a single one stays as it is)."""
    out: list[RunEvent] = []
    steps: list[StepEvent] = []
    for event in [*events, None]:
        if event is not None and isinstance(event, StepEvent):
            steps.append(event)
            continue
        if len(steps) == 1:
            out.append(steps[0])
        elif steps:
            first = steps[0]
            out.append(
                StepBatch(
                    tenant=first.tenant,
                    run_id=first.run_id,
                    workflow_id=first.workflow_id,
                    version=first.version,
                    at=first.at,
                    events=steps,
                )
            )
        steps = []
        if event is not None:
            out.append(event)
    return out


def _cel_context(
    plan: Plan, state: RunState, context: RunContext, outputs: dict[str, Any] | None
) -> dict[str, Any]:
    trigger = state.trigger
    data = None if trigger is None else trigger.data
    return expression_context(
        trigger={
            "kind": None if trigger is None else trigger.kind,
            "data": state.input if data is None else data,
            "headers": {} if trigger is None else trigger.headers,
            "event": None if trigger is None else trigger.event,
        },
        nodes=done_outputs(plan, state) if outputs is None else outputs,
        variables=plan.definition.vars,
        run={
            "id": None if state.ref is None else state.ref.run_id,
            "attempt": state.attempt,
            "started_at": state.started_at,
        },
    )


def _merge_skips(actions: list[Action]) -> list[Action]:
    skipped = [n for a in actions if isinstance(a, SkipSteps) for n in a.node_ids]
    merged: list[Action] = []
    for action in actions:
        if isinstance(action, SkipSteps):
            if skipped:
                merged.append(SkipSteps(node_ids=skipped))
                skipped = []
            continue
        merged.append(action)
    return merged


class _Work:
    """One decision in progress: records actions, folding their events into ``state``."""

    def __init__(self, plan: Plan, state: RunState, now: datetime, context: RunContext) -> None:
        self.plan, self.state, self.now, self.context = plan, state, now, context
        self.actions: list[Action] = []
        self.events: list[RunEvent | StepEvent] = []
        self._outputs: dict[str, Any] | None = None
        self.spent = 0.0  # expression units spent by this decision
        self.deferred = False  # an instantaneous node left for the next decision

    def record(self, action: Action) -> None:
        assert self.state.ref is not None
        events = events_for(self.state.ref, action, self.now)
        for event in events:
            apply(self.state, event)
        self.events.extend(events)
        self.actions.append(action)
        rescuer = isinstance(action, CompleteStep) and action.node_id in self.plan.rescues
        if isinstance(action, CompleteStep) and self._outputs is not None and not rescuer:
            self._outputs[action.node_id] = action.output
        elif not isinstance(action, StartStep | WakeAt):
            self._outputs = None

    def run(self) -> None:
        if self.state.status in ("queued", "scheduled"):
            self.record(StartRun(nodes=list(self.plan.nodes)))
            self._reuse()
        if self.context.cancel_requested:
            self.finish("cancelled", reason=self.context.cancel_reason)
            return
        run_deadline = self._run_deadline()
        if run_deadline is not None and self.now >= run_deadline:
            self.finish("timed_out", reason="the run's timeout passed")
            return
        self._expire_attempts()
        ready = self._settle_all()
        if ready is None:
            self._fail_run()
            return
        for node_id, attempt in ready:
            self._start(node_id, attempt)
        if not ready and not self._in_flight() and not self.deferred:
            self._skip_stuck()
        if self._all_resolved():
            self.finish("succeeded", output=run_output(self.plan, self.state))
            return
        wake = self._next_timer(run_deadline)
        if self.deferred:  # the budget of one decision is spent: yield, then go on
            wake = self.now
        if wake is not None:
            self.record(WakeAt(at=wake))

    def _settle_all(self) -> list[tuple[str, int]] | None:
        """Settle until a pass changes nothing (one pass does it unless fallbacks form a
        cycle); the steps to start, or None when a node failed fatally."""
        ready: list[tuple[str, int]] = []
        while True:
            if self._fatal() is not None:
                return None
            recorded = len(self.events)
            ready += self._settle({node_id for node_id, _ in ready})
            if len(self.events) == recorded:
                return ready

    def _reuse(self) -> None:
        for node_id in self.plan.order:
            if node_id in self.context.reused and self.state.node(node_id).unstarted:
                output = self.context.reused[node_id]
                self.record(CompleteStep(node_id=node_id, attempt=1, output=output, reused=True))

    def _run_deadline(self) -> datetime | None:
        timeout = self.plan.definition.timeout
        started = self.state.started_at
        return None if timeout is None or started is None else started + timeout

    def _expire_attempts(self) -> None:
        for node_id in self.plan.order:
            node = self.state.node(node_id)
            if node.status == "running" and node.deadline is not None and node.deadline <= self.now:
                timeout = self.plan.nodes[node_id].timeout
                message = f"attempt {node.attempt} timed out after {_duration(timeout)}"
                self.fail(node_id, node.attempt, STEP_TIMEOUT, message)

    def fail(self, node_id: str, attempt: int, error_class: str, message: str) -> None:
        """Record a failed attempt, and the retry when the node's policy leaves one."""
        policy = self.plan.nodes[node_id].retry or NO_RETRY
        final = attempt >= policy.max_attempts or error_class in NOT_RETRIED
        self.record(
            FailStep(
                node_id=node_id,
                attempt=attempt,
                error_class=error_class,
                message=message,
                final=final,
            )
        )
        if not final:
            assert self.state.ref is not None
            delay = retry_delay_ms(policy, attempt, run_id=self.state.ref.run_id, node_id=node_id)
            at = self.now + timedelta(milliseconds=delay)
            self.record(RetryStep(node_id=node_id, attempt=attempt + 1, at=at))

    def _fatal(self) -> str | None:
        for node_id, node in self.state.nodes.items():
            if node.status == "failed" and outcome(self.plan, self.state, node_id).kind == "fatal":
                return node_id
        return None

    def _fail_run(self) -> None:
        node_id = self._fatal()
        assert node_id is not None
        node = self.state.node(node_id)
        message = f"{node.error_class}: {node.error}"
        error = RunError(code=STEP_FAILED, message=message, node_id=node_id)
        self.finish("failed", error=error)

    def _settle(self, chosen: set[str]) -> list[tuple[str, int]]:
        """Walk the nodes in order: evaluate instantaneous ones, skip cut ones; return the
        (node, attempt) steps the shell must start. Stops at a fatal failure."""
        ready: list[tuple[str, int]] = []
        for node_id in self.plan.order:
            node = self.state.node(node_id)
            if node.status != "pending" or node_id in chosen:
                continue
            if node.attempt > 0:  # waiting for a retry
                if node.retry_at is None or node.retry_at <= self.now:
                    self._begin(node_id, node.attempt + 1, ready)
                continue
            match readiness(self.plan, self.state, node_id):
                case "ready":
                    self._begin(node_id, 1, ready)
                case "skip":
                    self.record(SkipSteps(node_ids=[node_id]))
                case "wait":
                    pass
            if self.state.node(node_id).status == "failed" and self._fatal() is not None:
                break
        return ready

    def _begin(self, node_id: str, attempt: int, ready: list[tuple[str, int]]) -> None:
        if not self.plan.is_instant(node_id):
            ready.append((node_id, attempt))
            return
        budget = self.context.expression_budget
        if self.spent >= budget:  # one decision spends about one step's budget at most
            self.deferred = True
            return
        if self._outputs is None:
            self._outputs = done_outputs(self.plan, self.state)
        variables = _cel_context(self.plan, self.state, self.context, self._outputs)
        meter = Meter(budget)
        try:
            output = evaluate_instant(
                self.plan.nodes[node_id], variables, self.context.secrets, meter
            )
        except EvaluationFailed as exc:
            self.fail(node_id, attempt, exc.error_class, exc.message)
            return
        finally:
            self.spent += meter.spent
        problem = output_problem(output, self.context.max_output_bytes)
        if problem is not None:
            self.fail(node_id, attempt, *problem)
            return
        self.record(CompleteStep(node_id=node_id, attempt=attempt, output=output))

    def _start(self, node_id: str, attempt: int) -> None:
        assert self.state.ref is not None
        timeout = self.plan.nodes[node_id].timeout
        self.record(
            StartStep(
                node_id=node_id,
                attempt=attempt,
                deadline=None if timeout is None else self.now + timeout,
                idempotency_key=f"{self.state.ref.run_id}:{node_id}",
            )
        )

    def _in_flight(self) -> bool:
        return any(node.status == "running" or node.retrying for node in self.state.nodes.values())

    def _skip_stuck(self) -> None:
        """Nothing runs or waits, yet nodes are pending: they wait on each other (a fallback
        upstream of the node naming it) and can never run, so they are skipped."""
        stuck = [n for n in self.plan.order if self.state.node(n).status == "pending"]
        if stuck:
            self.record(SkipSteps(node_ids=stuck))

    def _all_resolved(self) -> bool:
        return all(
            self.state.node(n).status in ("succeeded", "skipped", "failed") for n in self.plan.order
        )

    def _next_timer(self, run_deadline: datetime | None) -> datetime | None:
        times = [run_deadline] if run_deadline is not None else []
        for node in self.state.nodes.values():
            if node.status == "running" and node.deadline is not None:
                times.append(node.deadline)
            elif node.status == "pending" and node.retry_at is not None:
                times.append(node.retry_at)
        return min(times, default=None)

    def finish(
        self,
        status: FinishStatus,
        *,
        output: Any = None,
        error: RunError | None = None,
        reason: str = "",
    ) -> None:
        never = [n for n in self.plan.nodes if self.state.node(n).unstarted]
        if never:
            self.record(SkipSteps(node_ids=never))
        running = [n for n in self.plan.order if self.state.node(n).status == "running"]
        self.record(
            FinishRun(status=status, output=output, error=error, reason=reason, cancel=running)
        )


def _duration(value: timedelta | None) -> str:
    return "?" if value is None else f"{value.total_seconds():g}s"
