"""Child runs (``workflow`` steps and ``map`` over a workflow): start one, await its end.

A child's run id is derived from (parent run, step key, attempt, the attempt's start), in
UUIDv7 layout: the same attempt, resumed by another executor after a crash, finds the
child it had started instead of starting a second one. Its ``run.queued`` is published
fenced on an empty subject (a second publish fails harmlessly) and its request carries the
run id as ``Nats-Msg-Id`` (JetStream drops a repeat).
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec
import nats.errors
from nats.aio.client import Client
from nats.js import JetStreamContext
from nats.js import errors as js_errors

from flowmesh_executor.nodes.base import DefinitionSource, StepCall, StepError
from flowmesh_proto import headers as h
from flowmesh_proto.msgids import opening_msg_id, request_msg_id
from flowmesh_proto.runs import (
    RunCancelled,
    RunEvent,
    RunFailed,
    RunRequest,
    RunSucceeded,
    RunTimedOut,
    TriggerInfo,
    final_status,
    run_event_decoder,
    run_queued,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_proto.timers import derived_run_id
from flowmesh_shared.errors import FlowmeshError
from flowmesh_shared.jetstream import WRONG_LAST_SEQUENCE

_ENCODER = msgspec.json.Encoder()


def child_run_id(parent_run_id: str, key: str, attempt: int, started_at: datetime) -> str:
    """A UUIDv7-shaped id fixed by its arguments (time bits: the attempt's start)."""
    return derived_run_id(f"{parent_run_id}:{key}:{attempt}", started_at)


class NatsChildRuns:
    def __init__(
        self,
        nc: Client,
        js: JetStreamContext,
        subjects: Subjects,
        streams: StreamNames,
        definitions: DefinitionSource,
    ) -> None:
        self.nc, self.js, self.subjects, self.streams = nc, js, subjects, streams
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
        subject = self.subjects.run_events(call.tenant, run_id)
        sub = await self.nc.subscribe(subject)
        try:
            await self._start(call, run_id, workflow_id, number, input)
            last = await self._last(subject)
            while last is None or final_status(last) is None:
                msg = await sub.next_msg(timeout=None)
                if final_status(run_event_decoder.decode(msg.data)) is not None:
                    last = await self._stored_terminal(subject)
        except (TimeoutError, nats.errors.Error, js_errors.Error) as exc:
            raise StepError("ChildRunUnavailable", f"child run {run_id}: {exc}") from None
        finally:
            await sub.unsubscribe()
        return _result(run_id, last)

    async def _start(
        self,
        call: StepCall,
        run_id: str,
        workflow_id: str,
        version: int,
        input: Any,
    ) -> None:
        now = datetime.now(UTC)
        request = RunRequest(
            tenant=call.tenant,
            run_id=run_id,
            workflow_id=workflow_id,
            version=version,
            trigger=TriggerInfo(kind="workflow", data=input),
            input=input,
            requested_at=now,
        )
        queued = run_queued(request, now)
        headers = {h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: opening_msg_id(queued)}
        try:
            await self.js.publish(
                self.subjects.run_events(call.tenant, run_id),
                _ENCODER.encode(queued),
                headers=headers,
            )
        except js_errors.BadRequestError as exc:
            if exc.err_code != WRONG_LAST_SEQUENCE:
                raise
            return  # started before this attempt was resumed: its request went out then
        request_headers = {h.MSG_ID: request_msg_id(run_id)}
        if call.traceparent:
            request_headers[h.TRACEPARENT] = call.traceparent
        await self.js.publish(
            self.subjects.run_requests(call.tenant),
            _ENCODER.encode(request),
            headers=request_headers,
        )

    async def _stored_terminal(self, subject: str) -> RunEvent | None:
        """The stream's last event once it holds the terminal one seen live (a subscriber may
        see a message before the stream stores it, and a fenced-out publish is seen though
        never stored): asked again for a moment, then left to the next live event."""
        last: RunEvent | None = None
        for pause in (0.001, 0.005, 0.02, 0.1, 0.5):
            last = await self._last(subject)
            if last is not None and final_status(last) is not None:
                return last
            await asyncio.sleep(pause)
        return last

    async def _last(self, subject: str) -> RunEvent | None:
        try:
            msg = await self.js.get_last_msg(self.streams.run_events, subject, direct=True)
        except js_errors.NotFoundError:
            return None
        event: RunEvent = run_event_decoder.decode(msg.data or b"")
        return event


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
