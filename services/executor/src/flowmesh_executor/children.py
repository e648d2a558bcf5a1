"""Child runs (``workflow`` steps and ``map`` over a workflow): start one, await its end.

A child's run id is derived from (parent run, step key, attempt, the attempt's start), in
UUIDv7 layout: the same attempt, resumed by another executor after a crash, finds the
child it had started instead of starting a second one. It is started and awaited by the
run lifecycle (:mod:`flowmesh_shared.runlife`), like every run: a second start of the same
child finds its subject taken and sends its request again only while it is still queued
(JetStream drops the repeat).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from flowmesh_executor.nodes.base import DefinitionSource, StepCall, StepError
from flowmesh_proto import headers as h
from flowmesh_proto.runs import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    TriggerInfo,
)
from flowmesh_proto.timers import derived_run_id
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.runlife import RunLifecycle, RunLifeError, RunTooLarge


def child_run_id(parent_run_id: str, key: str, attempt: int, started_at: datetime) -> str:
    """A UUIDv7-shaped id fixed by its arguments (time bits: the attempt's start)."""
    return derived_run_id(f"{parent_run_id}:{key}:{attempt}", started_at)


class ChildRuns:
    """``workflow`` steps' child runs, started and awaited through the run lifecycle."""

    def __init__(self, life: RunLifecycle, definitions: DefinitionSource) -> None:
        self.life = life
        self.definitions = definitions

    async def run_child(
        self,
        call: StepCall,
        workflow_id: str,
        version: int | None,
        input: Any,
        key: str,
    ) -> Any:
        try:
            number, _ = await self.definitions.get(call.tenant, workflow_id, version)
        except FlowmeshError as exc:
            raise StepError("ChildWorkflowUnavailable", exc.detail) from None
        run_id = child_run_id(call.run_id, key, call.attempt, call.started_at)
        now = datetime.now(UTC)
        request = RunRequest(
            tenant=call.tenant,
            run_id=run_id,
            workflow_id=workflow_id,
            version=number,
            trigger=TriggerInfo(kind="workflow", data=input),
            input=input,
            requested_at=now,
        )
        trace = {h.TRACEPARENT: call.traceparent} if call.traceparent else {}

        async def start() -> None:
            await self.life.start(request, now, trace=trace)

        try:
            last = await self.life.await_end(call.tenant, run_id, None, before=start)
        except RunTooLarge as exc:
            raise StepError("ChildRunTooLarge", f"child run {run_id}: {exc.detail}") from None
        except RunLifeError as exc:
            raise StepError("ChildRunUnavailable", f"child run {run_id}: {exc.detail}") from None
        return _result(run_id, last.event if last is not None else None)


def _result(run_id: str, event: RunEvent | None) -> Any:
    match event:
        case RunSucceeded(output=output):
            return output
        case RunFailed(error=error):
            raise StepError("ChildRunFailed", f"child run {run_id} failed: {error.message}")
        case RunCancelled():
            raise StepError("ChildRunCancelled", f"child run {run_id} was cancelled")
        case RunTimedOut():
            raise StepError("ChildRunTimedOut", f"child run {run_id} timed out")
    raise StepError("ChildRunUnavailable", f"child run {run_id} ended without a result")
