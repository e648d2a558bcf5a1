"""One attempt of a step the shell runs (``http``, ``action``, ``task``, ``workflow``, ``map``,
``delay``, ``wait_for_event``, ``publish``): render its parameters, call its step function
within the attempt's deadline, and report what it ended with to the run's
:class:`~flowmesh_executor.inflight.InFlight`.

A step's failure is its attempt's (an error class and a message, the run's secrets
redacted), never the executor's: a defect in a step fails it as ``InternalError``. A step
that failed after this process stood still says so (``after_pause``, see
:mod:`flowmesh_executor.pauses`), and the loop hands the run back instead of recording it.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog

from flowmesh_executor.actions import RunContext
from flowmesh_executor.engine import STEP_TIMEOUT, cel_context, output_problem
from flowmesh_executor.inflight import InFlight, StepResult
from flowmesh_executor.instant import error_class, redact, render_parameters
from flowmesh_executor.nodes.base import EventInterest, StepCall, StepError
from flowmesh_executor.parts import ExecutorParts
from flowmesh_executor.state import RunState
from flowmesh_proto.workflow import Definition, MapNode
from flowmesh_shared import telemetry
from flowmesh_shared.expressions import ExpressionError, Meter

log = structlog.get_logger("flowmesh.executor.run")

#: The error class of a step that raised something it should not have (a defect).
INTERNAL = "InternalError"


class StepAttempts:
    """Starts the attempts of one run's steps as tasks of its :class:`InFlight`."""

    def __init__(self, parts: ExecutorParts, definition: Definition, inflight: InFlight) -> None:
        self.parts = parts
        self.definition = definition
        self.inflight = inflight
        self.settings = parts.services.settings
        self.nodes = {node.id: node for node in definition.nodes}

    def start(
        self,
        state: RunState,
        context: RunContext,
        node_id: str,
        attempt: int,
        deadline: datetime | None,
    ) -> None:
        """Run attempt ``attempt`` of ``node_id`` (as ``state`` says it started)."""
        started_at = state.node(node_id).attempt_started_at
        work = self._attempt(state, context, node_id, attempt, deadline)
        self.inflight.start(node_id, attempt, started_at, work)

    async def _attempt(
        self,
        state: RunState,
        context: RunContext,
        node_id: str,
        attempt: int,
        deadline: datetime | None,
    ) -> None:
        kind = type_of(self.nodes[node_id])
        error: tuple[str, str] | None = None
        output: Any = None
        began = time.monotonic()
        with telemetry.tracer().start_as_current_span(
            f"step {node_id}", attributes={"flowmesh.node_id": node_id, "flowmesh.attempt": attempt}
        ) as span:
            try:
                output = await self._perform(state, context, node_id, attempt, deadline)
                problem = output_problem(output, self.settings.max_output_bytes)
                if problem is not None:
                    raise StepError(*problem)
            except StepError as exc:
                error = (exc.error_class, redact(exc.message, context.secrets))
            except TimeoutError:
                error = (STEP_TIMEOUT, f"attempt {attempt} passed its deadline")
            except asyncio.CancelledError:
                self.parts.metrics.steps.labels(kind, "cancelled").inc()
                raise
            except Exception as exc:  # a defect in a step: fail the step, not the executor
                log.exception("step.crashed", node=node_id)
                error = (INTERNAL, redact(f"{type(exc).__name__}: {exc}", context.secrets))
            if error is not None:
                telemetry.mark_failed(span, error[0])
        outcome = "succeeded" if error is None else "failed"
        self.parts.metrics.steps.labels(kind, outcome).inc()
        after_pause = error is not None and self.parts.pauses.paused_since(began, time.monotonic())
        self.inflight.report(
            StepResult(node_id, attempt, output=output, error=error, after_pause=after_pause)
        )

    async def _perform(
        self,
        state: RunState,
        context: RunContext,
        node_id: str,
        attempt: int,
        deadline: datetime | None,
    ) -> Any:
        node = self.nodes[node_id]
        ref = state.ref
        assert ref is not None
        variables = cel_context(self.definition, state, context)
        parameters = await self._parameters(node, variables, context)
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
            started_at=state.node(node_id).attempt_started_at or datetime.now(UTC),
            deadline=deadline,
            secrets=context.secrets,
            connectors=context.connectors,
            actions=context.actions,
            traceparent=telemetry.inject({}).get("traceparent"),
            expression_budget=context.expression_budget,
            long_wait=lambda due, interest: self._long_wait(node_id, attempt, due, interest),
        )
        step = self.parts.steps.get(type_of(node))
        if step is None:
            raise StepError("UnsupportedNode", f"this executor cannot run {type_of(node)} nodes")
        services = self.parts.services
        if deadline is None:
            return await step(call, services)
        loop = asyncio.get_running_loop()
        remaining = (deadline - datetime.now(UTC)).total_seconds()
        async with asyncio.timeout_at(loop.time() + max(0.0, remaining)):
            return await step(call, services)

    async def _parameters(
        self, node: Any, variables: dict[str, Any], context: RunContext
    ) -> dict[str, Any]:
        """The node's parameters with every template rendered (a map keeps its ``node``
        as written: it renders it per item), on a turn of the process's expression work."""
        raw = msgspec.to_builtins(node.parameters)
        keep = raw.pop("node", None) if isinstance(node, MapNode) else None
        meter = Meter(context.expression_budget)
        turns = self.parts.services.turns
        await turns.take()
        try:
            parameters = render_parameters(type_of(node), raw, variables, context.secrets, meter)
        except ExpressionError as exc:
            message = redact(str(exc), context.secrets)
            raise StepError(error_class(exc), message) from None
        finally:
            turns.spend(meter.spent)
        if keep is not None:
            parameters["node"] = keep
        return parameters

    def _long_wait(
        self, node_id: str, attempt: int, due: datetime | None, interest: EventInterest | None
    ) -> None:
        """The step is about to wait until ``due`` (None: no end), or for an event
        ``interest`` describes: recorded, no later than ``park_recheck`` from now, so the
        loop may park the run. An event wait is not parked without the event-waits bucket."""
        if interest is not None and self.parts.services.event_waits is None:
            return
        recheck = datetime.now(UTC) + timedelta(seconds=self.settings.park_recheck)
        until = recheck if due is None else min(due, recheck)
        self.inflight.waits_long(node_id, attempt, until, interest)


def type_of(node: Any) -> str:
    """A node's type, as the catalog and the step registry name it."""
    tag: str = node.__struct_config__.tag
    return tag
