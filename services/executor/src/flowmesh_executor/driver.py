"""Driving one run: take it up (its events, a claim, its definition, secrets and
concurrency slot), then hand it to its loop (:mod:`flowmesh_executor.loop`) with its work
in flight (:class:`~flowmesh_executor.inflight.InFlight`, made here: the consumer's
cancel and a lapsed lease reach the loop through it) until it ends or is parked.

The loop (DESIGN section 5): fold the step results that arrived into events, ask the
engine for the next actions, publish the events (fenced; consecutive step events as one
``steps`` batch), start the steps it asks for, and wait for a result, a timer or a cancel.
Results that complete while a publish is in flight are coalesced into the next one, so a
run's events cost one round trip per wave of steps, not per step.

A run that is redelivered (its executor died) replays its events and continues: steps that
were running are started again (steps are at-least-once); succeeded ones never are.

The lease holder is the only writer. Taking over a run that had started (a lapsed lease, a
parked run woken) begins with ``run.claimed``, fenced on the last event read and published
before anything else, so a previous holder still driving the run is fenced at its next
write; a fresh run needs no claim, its ``run.started`` is the first write. Every write
checks the lease first (:mod:`flowmesh_executor.lease`), and a step that failed after this
process stood still (:mod:`flowmesh_executor.pauses`) hands the run back instead of
recording a failure its own timers made up.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import structlog

from flowmesh_executor.actions import RunContext
from flowmesh_executor.concurrency import slot_key
from flowmesh_executor.definitions import EXECUTOR_PRINCIPAL, UnusableVersion
from flowmesh_executor.engine import cel_context
from flowmesh_executor.inflight import InFlight
from flowmesh_executor.lease import RunLease
from flowmesh_executor.loop import Loop, Outcome
from flowmesh_executor.nodes.connected import credential_forms
from flowmesh_executor.parts import ExecutorParts
from flowmesh_executor.references import connector_names, secret_names
from flowmesh_executor.run_actions import read_actions
from flowmesh_executor.state import RunState, fold, reused_outputs
from flowmesh_executor.writer import RunWriter
from flowmesh_proto import registry as r
from flowmesh_proto.actions import Action, ActionGet
from flowmesh_proto.connectors import Connector, ConnectorGet
from flowmesh_proto.connectors import secret_names as secret_names_of
from flowmesh_proto.errors import ErrorCode
from flowmesh_proto.runs import (
    RunClaimed,
    RunError,
    RunFailed,
    RunRequest,
    RunStarted,
    RunWaiting,
    control_key,
    run_queued,
)
from flowmesh_proto.workflow import Definition
from flowmesh_shared import telemetry
from flowmesh_shared.errors import FlowmeshError, ValidationFailed
from flowmesh_shared.expressions import ExpressionError, evaluate
from flowmesh_shared.runlife_nats import reads_direct

log = structlog.get_logger("flowmesh.executor.run")

_ENCODER = msgspec.json.Encoder()
_FATAL_LOAD_CODES = {ErrorCode.WORKFLOW_NOT_FOUND, ErrorCode.NOT_FOUND, ErrorCode.VALIDATION_FAILED}


@dataclass
class RunDriver:
    parts: ExecutorParts
    request: RunRequest
    headers: Mapping[str, str] = field(default_factory=dict)
    #: The lease on the run's request (checked before every write).
    lease: RunLease = field(default_factory=RunLease.unbounded)
    #: How many times the request has been delivered, this time included.
    delivery: int = 1

    def __post_init__(self) -> None:
        #: The run's steps in flight and what wakes its loop (handed to the loop).
        self.inflight = InFlight()

    @property
    def key(self) -> str:
        return control_key(self.request.tenant, self.request.run_id)

    def cancel(self, reason: str) -> None:
        """Cancel the run (from the control subject): running steps stop, none starts."""
        self.inflight.cancel(reason)

    def lease_lost(self) -> None:
        """The lease lapsed (seen by the heartbeats): wake the loop, which then stops."""
        self.inflight.wake()

    async def drive(self) -> Outcome:
        """Run until the run ends (``finished``) or is parked; raises ``Fenced`` when
        another executor owns it, and lets ``CancelledError`` through when the executor
        stops."""
        try:
            with telemetry.consumer_span("run", self.headers, attributes=self._attributes()):
                return await self._drive()
        finally:
            await self.inflight.close()

    def _attributes(self) -> dict[str, str | int]:
        req = self.request
        return {
            "flowmesh.tenant": req.tenant,
            "flowmesh.run_id": req.run_id,
            "flowmesh.workflow_id": req.workflow_id,
            "flowmesh.version": req.version,
        }

    async def _drive(self) -> Outcome:
        services, req = self.parts.services, self.request
        writer, state = await self._open()
        if state.finished:
            await self._release_after_death(state)
            return "finished"
        if state.status not in ("queued", "scheduled"):
            seq = await writer.publish(self._claim(state))
            log.info("run.claimed", delivery=self.delivery, seq=seq)
        try:
            _, definition = await services.definitions.get(req.tenant, req.workflow_id, req.version)
            context = await self._context(definition, state)
            slot = self._slot(definition, state)
        except FlowmeshError as exc:
            if exc.code not in _FATAL_LOAD_CODES and not isinstance(exc, UnusableVersion):
                raise
            await self._fail_unrunnable(writer, state, exc.code.name, exc.detail)
            return "finished"
        problem = _input_problem(state.input, services.settings.max_input_bytes)
        if problem is not None:
            await self._fail_unrunnable(writer, state, "INPUT_TOO_LARGE", problem)
            return "finished"
        if slot is not None and not await self._take_slot(slot, definition, writer, state):
            return "parked"
        loop = Loop(
            self.parts,
            req,
            self.lease,
            self.inflight,
            definition=definition,
            state=state,
            context=context,
            writer=writer,
        )
        outcome = await loop.run()
        if slot is not None and outcome != "parked":  # a parked run keeps its slot
            await self.parts.slots.release(slot, self.key)
        return outcome

    async def _open(self) -> tuple[RunWriter, RunState]:
        """The run's writer, fenced on its last event, and its state; a run with no event
        yet (a request published alone) gets its ``run.queued`` first."""
        services, req = self.parts.services, self.request
        events, seq = await self.parts.life.history(req.tenant, req.run_id)
        writer = RunWriter(
            services.js,
            services.streams.run_events,
            services.subjects.run_events(req.tenant, req.run_id),
            seq,
            patience=services.settings.lease_seconds,
            direct=reads_direct(services.settings.streams),
            lease=self.lease,
        )
        if not events:
            events = [run_queued(req, datetime.now(UTC))]
            await writer.publish(events[0])
        return writer, fold(events)

    async def _take_slot(
        self, slot: str, definition: Definition, writer: RunWriter, state: RunState
    ) -> bool:
        """Take the run's concurrency slot; False when the run was parked to wait for one
        (a durable timer rechecks, a released slot wakes it). A run the policy cancels
        still runs its loop, which ends it as cancelled. A run that must wait says so once
        (``run.waiting``, reason ``concurrency_key``), for its resource and its stream."""
        policy = definition.concurrency
        assert policy is not None  # the slot's key comes from it
        settings = self.parts.services.settings

        async def waits() -> None:
            if state.waiting is not None and state.waiting.reason == "concurrency_key":
                return  # said when it first waited (it was parked, and woken)
            req, now = self.request, datetime.now(UTC)
            await writer.publish(
                RunWaiting(
                    tenant=req.tenant,
                    run_id=req.run_id,
                    workflow_id=req.workflow_id,
                    version=req.version,
                    at=now,
                    reason="concurrency_key",
                    since=now,
                )
            )

        verdict = await self.parts.slots.acquire(
            slot,
            self.key,
            policy,
            lambda: self.inflight.cancel_reason is not None,
            park=settings.park_after > 0,
            on_wait=waits,
        )
        if verdict == "parked":
            recheck = datetime.now(UTC) + timedelta(seconds=settings.slot_recheck)
            await self.parts.life.park(self.request, writer.last_seq, recheck)
            self.parts.metrics.runs.labels("parked").inc()
            log.info("run.parked", waiting_for="a concurrency slot", slot=slot)
            return False
        if verdict == "cancel":
            self.inflight.cancel("the workflow's concurrency limit is reached")
        return True

    def _slot(self, definition: Definition, state: RunState) -> str | None:
        """The run's concurrency slot key, or None; a key that cannot be evaluated fails
        the run (raises)."""
        policy = definition.concurrency
        if policy is None:
            return None
        variables = cel_context(definition, state, RunContext())
        try:
            value = evaluate(policy.key, variables)
        except ExpressionError as exc:
            raise ValidationFailed(
                detail=f"the concurrency key cannot be evaluated: {exc}"
            ) from None
        return slot_key(self.request.tenant, self.request.workflow_id, value)

    async def _release_after_death(self, state: RunState) -> None:
        """A run found finished: its executor may have died before giving its slot back."""
        req = self.request
        try:
            _, definition = await self.parts.services.definitions.get(
                req.tenant, req.workflow_id, req.version
            )
            slot = self._slot(definition, state)
        except FlowmeshError:
            return
        if slot is not None:
            await self.parts.slots.release(slot, self.key)

    def _claim(self, state: RunState) -> RunClaimed:
        """Taking over a started run: written before any other work (see the module)."""
        assert state.ref is not None
        ref = state.ref
        return RunClaimed(
            tenant=ref.tenant,
            run_id=ref.run_id,
            workflow_id=ref.workflow_id,
            version=ref.version,
            at=datetime.now(UTC),
            executor=self.parts.name,
            delivery=self.delivery,
        )

    async def _context(self, definition: Definition, state: RunState) -> RunContext:
        req, parts = self.request, self.parts
        connectors = await self._connectors(definition)
        actions = await read_actions(definition, self._action)
        names = set(secret_names(definition))
        for connector in connectors.values():  # a missing one fails its steps, not the run
            names |= set(secret_names_of(connector.auth)) - set(connector.missing_secrets)
        values: dict[str, str] = {}
        if names:
            resolved = await parts.rpc.call(
                r.SecretResolve(names=sorted(names)),
                tenant=req.tenant,
                principal=EXECUTOR_PRINCIPAL,
            )
            values = dict(resolved.values)
        values |= credential_forms(connectors, values)
        asked = parts.cancels.reason(self.key)
        if asked is not None:
            self.inflight.cancel(asked)
        reused: dict[str, Any] = {}
        retrying = state.trigger is not None and state.trigger.kind == "retry"
        if retrying and state.parent_run_id and state.status in ("queued", "scheduled"):
            reused = await self._parent_outputs(state.parent_run_id)
        return RunContext(
            secrets=values,
            connectors=connectors,
            actions=actions,
            reused=reused,
            max_output_bytes=parts.services.settings.max_output_bytes,
            expression_budget=parts.services.settings.expression_budget,
        )

    async def _connectors(self, definition: Definition) -> dict[str, Connector]:
        """The connectors the definition names, as they are now; a deleted one is left out
        (its steps fail naming it)."""
        found: dict[str, Connector] = {}
        for name in sorted(connector_names(definition)):
            try:
                found[name] = await self.parts.rpc.call(
                    ConnectorGet(name=name),
                    tenant=self.request.tenant,
                    principal=EXECUTOR_PRINCIPAL,
                )
            except FlowmeshError as exc:
                if exc.code is not ErrorCode.NOT_FOUND:
                    raise
        return found

    async def _action(self, get: ActionGet) -> Action:
        """One of the tenant's actions, from the registry."""
        action: Action = await self.parts.rpc.call(
            get, tenant=self.request.tenant, principal=EXECUTOR_PRINCIPAL
        )
        return action

    async def _parent_outputs(self, parent_run_id: str) -> dict[str, Any]:
        events, _ = await self.parts.life.history(self.request.tenant, parent_run_id)
        return reused_outputs(fold(events)) if events else {}

    async def _fail_unrunnable(
        self, writer: RunWriter, state: RunState, code: str, message: str
    ) -> None:
        assert state.ref is not None
        ref, now = state.ref, datetime.now(UTC)
        base: dict[str, Any] = {
            "tenant": ref.tenant,
            "run_id": ref.run_id,
            "workflow_id": ref.workflow_id,
            "version": ref.version,
            "at": now,
        }
        if state.status in ("queued", "scheduled"):
            await writer.publish(RunStarted(**base, executor=self.parts.name))
        await writer.publish(RunFailed(**base, error=RunError(code=code, message=message)))
        log.warning("run.unrunnable", code=code, detail=message)


def _input_problem(value: Any, limit: int) -> str | None:
    size = len(_ENCODER.encode(value))
    if limit and size > limit:
        return f"the run's input takes {size} bytes of JSON; the limit is {limit}"
    return None
