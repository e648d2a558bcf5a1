"""Starting runs the way the gateway does, and reading their events back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import msgspec

from flowmesh_executor.state import RunState, fold
from flowmesh_proto import headers as h
from flowmesh_proto import registry as r
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import (
    TERMINAL_RUN_STATUSES,
    CancelRequest,
    RunEvent,
    RunQueued,
    RunRequest,
    StepBatch,
    StepEvent,
    TriggerInfo,
    control_key,
    run_event_decoder,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from tests.integration.harness import Api, unique

_ENCODER = msgspec.json.Encoder()


class Runs:
    def __init__(self, api: Api, nc: Any, subjects: Subjects, streams: StreamNames) -> None:
        self.api, self.nc, self.subjects, self.streams = api, nc, subjects, streams
        self.js = nc.jetstream()

    @property
    def tenant(self) -> str:
        return self.api.tenant.id

    async def workflow(self, definition: dict[str, Any]) -> r.Workflow:
        definition = {**definition, "name": unique(definition.get("name", "wf"))}
        created: r.Workflow = await self.api(
            "workflow_create", r.WorkflowCreate(definition=definition)
        )
        return created

    async def start(
        self,
        workflow: r.Workflow,
        data: Any = None,
        *,
        kind: str = "api",
        parent_run_id: str | None = None,
        attempt: int = 1,
        request: bool = True,
        headers: dict[str, str] | None = None,
    ) -> str:
        """Publish ``run.queued`` and (unless ``request`` is false) the run request."""
        run_id = str(new_run_id())
        trigger = TriggerInfo(kind=kind, data=data)  # type: ignore[arg-type]
        queued = RunQueued(
            tenant=self.tenant,
            run_id=run_id,
            workflow_id=workflow.id,
            version=workflow.version,
            at=datetime.now(UTC),
            trigger=trigger,
            input=data,
            attempt=attempt,
            parent_run_id=parent_run_id,
        )
        await self.js.publish(
            self.subjects.run_events(self.tenant, run_id),
            _ENCODER.encode(queued),
            headers={h.EXPECTED_LAST_SUBJECT_SEQUENCE: "0", h.MSG_ID: f"queued:{run_id}"},
        )
        if request:
            await self.request(workflow, run_id, data, trigger, attempt, parent_run_id, headers)
        return run_id

    async def request(
        self,
        workflow: r.Workflow,
        run_id: str,
        data: Any = None,
        trigger: TriggerInfo | None = None,
        attempt: int = 1,
        parent_run_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        request = RunRequest(
            tenant=self.tenant,
            run_id=run_id,
            workflow_id=workflow.id,
            version=workflow.version,
            trigger=trigger or TriggerInfo(kind="api", data=data),
            input=data,
            attempt=attempt,
            parent_run_id=parent_run_id,
        )
        await self.js.publish(
            self.subjects.run_requests(self.tenant),
            _ENCODER.encode(request),
            headers={h.MSG_ID: run_id, **(headers or {})},
        )
        await self.nc.publish(self.subjects.intake(self.tenant), b"")  # the doorbell

    async def event_headers(self, run_id: str) -> list[dict[str, str]]:
        """The NATS headers of each of the run's events, in order."""
        subject = self.subjects.run_events(self.tenant, run_id)
        sub = await self.js.subscribe(
            subject, stream=self.streams.run_events, ordered_consumer=True
        )
        found: list[dict[str, str]] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.3)
                except TimeoutError:
                    return found
                found.append(dict(msg.headers or {}))
                if msg.metadata.num_pending == 0:
                    return found
        finally:
            await sub.unsubscribe()

    async def step_running(self, run_id: str, node_id: str, timeout: float = 5.0) -> RunState:  # noqa: ASYNC109
        """The run's state once ``node_id`` is running."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            state = fold(await self.events(run_id))
            if state.node(node_id).status == "running":
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{node_id} of run {run_id} never ran: {state.nodes}")
            await asyncio.sleep(0.02)

    async def events(self, run_id: str) -> list[RunEvent]:
        subject = self.subjects.run_events(self.tenant, run_id)
        sub = await self.js.subscribe(
            subject, stream=self.streams.run_events, ordered_consumer=True
        )
        events: list[RunEvent] = []
        try:
            while True:
                try:
                    msg = await sub.next_msg(timeout=0.3)
                except TimeoutError:
                    return events
                events.append(run_event_decoder.decode(msg.data))
                if msg.metadata.num_pending == 0:
                    return events
        finally:
            await sub.unsubscribe()

    async def finished(self, run_id: str, timeout: float = 10.0) -> RunState:  # noqa: ASYNC109
        """The run's state once it has ended (fails the test after ``timeout``)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            state = fold(await self.events(run_id))
            if state.status in TERMINAL_RUN_STATUSES:
                return state
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"run {run_id} did not finish: {state.status} {state.nodes}")
            await asyncio.sleep(0.02)

    async def run(
        self,
        definition: dict[str, Any],
        data: Any = None,
        timeout: float = 10.0,  # noqa: ASYNC109
    ) -> RunState:
        workflow = await self.workflow(definition)
        return await self.finished(await self.start(workflow, data), timeout)

    async def cancel(self, run_id: str, reason: str = "test") -> None:
        cancel = CancelRequest(tenant=self.tenant, run_id=run_id, reason=reason)
        kv = await self.js.key_value(self.streams.run_control)
        await kv.put(control_key(self.tenant, run_id), _ENCODER.encode(cancel))
        await self.nc.publish(self.subjects.control(self.tenant, run_id), _ENCODER.encode(cancel))


def flat(events: list[RunEvent]) -> list[RunEvent | StepEvent]:
    out: list[RunEvent | StepEvent] = []
    for event in events:
        out.extend(event.events if isinstance(event, StepBatch) else [event])
    return out
