"""What the engine asks of its shell (actions), what it is told (the run context), and the
events each action is recorded as. Pure: no I/O, no clock.

Every action that changes the run's state has events (:func:`events_for`); the shell
publishes them (one ``steps`` batch for the step events, DESIGN section 5) and the engine
folds them back, so state and stream never disagree. ``StartStep`` also asks the shell to
run the step; ``WakeAt`` only asks to be called again.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import msgspec

from flowmesh_executor.state import RunRef, RunState
from flowmesh_proto import actions as catalog_actions
from flowmesh_proto.connectors import Connector
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    StepEvent,
    StepFailed,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TerminalRunStatus,
)
from flowmesh_shared.expressions import DEFAULT_BUDGET

__all__ = [
    "Action",
    "CompleteStep",
    "Decision",
    "FailStep",
    "FinishRun",
    "RetryStep",
    "RunContext",
    "SkipSteps",
    "StartRun",
    "StartStep",
    "WakeAt",
    "events_for",
]

FinishStatus = TerminalRunStatus


class _Action(msgspec.Struct, frozen=True, kw_only=True, tag_field="kind"):
    pass


class StartRun(_Action, frozen=True, kw_only=True, tag="start_run"):
    """Record that this executor started the run (``run.started``, naming ``nodes``: the
    version's node ids in definition order, each a step of the run from then on)."""

    nodes: list[str] = []


class StartStep(_Action, frozen=True, kw_only=True, tag="start_step"):
    """Run a step in the shell (http, action, task, workflow, delay, wait_for_event,
    publish, map).

    The shell renders the node's parameters with :func:`flowmesh_executor.engine.cel_context`
    and sends ``idempotency_key`` (``<run_id>:<node_id>``, DESIGN section 5).
    """

    node_id: str
    attempt: int
    deadline: datetime | None = None
    idempotency_key: str = ""


class CompleteStep(_Action, frozen=True, kw_only=True, tag="complete_step"):
    """A step that succeeded without the shell: an instantaneous node, or a reused output."""

    node_id: str
    attempt: int
    output: Any = None
    reused: bool = False


class FailStep(_Action, frozen=True, kw_only=True, tag="fail_step"):
    """An attempt failed; ``final`` when no attempt is left (then ``on_error`` applies)."""

    node_id: str
    attempt: int
    error_class: str
    message: str
    final: bool


class RetryStep(_Action, frozen=True, kw_only=True, tag="retry_step"):
    """Attempt ``attempt`` of the node is due at ``at`` (backoff after the failed one)."""

    node_id: str
    attempt: int
    at: datetime


class SkipSteps(_Action, frozen=True, kw_only=True, tag="skip_steps"):
    """Nodes that will never run: on a branch not taken, or left when the run ends."""

    node_ids: list[str]


class FinishRun(_Action, frozen=True, kw_only=True, tag="finish_run"):
    """The run ends; the shell cancels the steps in ``cancel`` (still running) and acks."""

    status: FinishStatus
    output: Any = None
    error: RunError | None = None
    reason: str = ""
    cancel: list[str] = []


class WakeAt(_Action, frozen=True, kw_only=True, tag="wake_at"):
    """Call the engine again at ``at`` (a retry due, a step deadline, the run timeout)."""

    at: datetime


Action = StartRun | StartStep | CompleteStep | FailStep | RetryStep | SkipSteps | FinishRun | WakeAt


class RunContext(msgspec.Struct, frozen=True, kw_only=True):
    """What the shell knows that the events do not.

    ``secrets`` are resolved by the shell; the engine reads them in expressions and redacts
    their values from every output and message it records. ``reused`` maps node ids to the
    outputs a retry-from-failed run takes from its parent (:func:`.state.reused_outputs`);
    they are recorded once, as ``step.succeeded`` with ``reused``, when the run starts.
    """

    secrets: Mapping[str, str] = {}
    #: The connectors the definition's http nodes name, as read when the run was taken up
    #: (one the tenant has deleted since validation is absent: its steps fail).
    connectors: Mapping[str, Connector] = {}
    #: The actions the definition's action nodes name, by (name, pinned version), as read
    #: when the run was taken up (one that does not exist is absent: its steps fail).
    actions: Mapping[catalog_actions.ActionKey, catalog_actions.Action] = {}
    cancel_requested: bool = False
    cancel_reason: str = ""
    reused: Mapping[str, Any] = {}
    #: Bytes of JSON a step's output may take (0: no limit); a bigger one fails the step.
    max_output_bytes: int = 0
    #: Cost units one step's expressions may spend; one decision evaluates instantaneous
    #: nodes until it has spent this much, then asks to be called again (``WakeAt`` now),
    #: so the event loop is never held for long.
    expression_budget: float = DEFAULT_BUDGET


class Decision(msgspec.Struct, frozen=True, kw_only=True):
    """The actions, the events recording them (publish in order), and the state after."""

    actions: list[Action]
    events: list[RunEvent]
    state: RunState
    #: Expression cost units the decision spent (its instantaneous nodes).
    spent: float = 0.0


def events_for(ref: RunRef, action: Action, now: datetime) -> list[RunEvent | StepEvent]:
    """The events recording ``action`` (none for ``WakeAt``)."""
    base: dict[str, Any] = {
        "tenant": ref.tenant,
        "run_id": ref.run_id,
        "workflow_id": ref.workflow_id,
        "version": ref.version,
        "at": now,
    }
    match action:
        case StartRun(nodes=nodes):
            return [RunStarted(**base, nodes=nodes)]
        case StartStep(node_id=node_id, attempt=attempt, deadline=deadline):
            return [StepStarted(**base, node_id=node_id, attempt=attempt, deadline=deadline)]
        case CompleteStep():
            return [_succeeded(base, action)]
        case FailStep():
            return [
                StepFailed(
                    **base,
                    node_id=action.node_id,
                    attempt=action.attempt,
                    error_class=action.error_class,
                    message=action.message,
                    final=action.final,
                )
            ]
        case RetryStep(node_id=node_id, attempt=attempt, at=at):
            delay_ms = max(0, round((at - now).total_seconds() * 1000))
            return [StepRetrying(**base, node_id=node_id, attempt=attempt, delay_ms=delay_ms)]
        case SkipSteps(node_ids=node_ids):
            return [StepSkipped(**base, node_id=node_id) for node_id in node_ids]
        case FinishRun():
            return [_finished(base, action)]
        case WakeAt():
            return []


def _succeeded(base: dict[str, Any], action: CompleteStep) -> StepSucceeded:
    return StepSucceeded(
        **base,
        node_id=action.node_id,
        attempt=action.attempt,
        started_at=base["at"],
        output=action.output,
        reused=action.reused,
    )


def _finished(base: dict[str, Any], action: FinishRun) -> RunEvent:
    match action.status:
        case "succeeded":
            return RunSucceeded(**base, output=action.output)
        case "failed":
            error = action.error or RunError(code="STEP_FAILED", message="the run failed")
            return RunFailed(**base, error=error)
        case "cancelled":
            return RunCancelled(**base, reason=action.reason)
        case "timed_out":
            return RunTimedOut(**base)
