"""Publishing run events the way executors do (fenced on the run's previous event), and
waiting for the registry's projection to take them."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from flowmesh_proto import headers as h
from flowmesh_proto.ids import new_run_id
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    StepBatch,
    StepFailed,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_registry.projection import Projection
from tests.helpers import until
from tests.integration.harness import Registry

_ENCODER = msgspec.json.Encoder()
_ids = itertools.count(1)


class RunLog:
    """Publishes one tenant's run events, each fenced on its run's previous event."""

    def __init__(self, nc: Any, subjects: Subjects, streams: StreamNames, tenant: str) -> None:
        self.js = nc.jetstream()
        self.subjects, self.streams, self.tenant = subjects, streams, tenant
        self.last: dict[str, int] = {}
        self.events: dict[str, list[RunEvent]] = {}
        self.last_seq = 0

    async def publish(self, event: RunEvent) -> int:
        run_id = event.run_id
        previous = self.last.get(run_id, 0)
        ack = await self.js.publish(
            self.subjects.run_events(self.tenant, run_id),
            _ENCODER.encode(event),
            headers={
                h.EXPECTED_LAST_SUBJECT_SEQUENCE: str(previous),
                h.MSG_ID: f"test:{run_id}:{previous}",
            },
        )
        self.last[run_id] = ack.seq
        self.events.setdefault(run_id, []).append(event)
        self.last_seq = max(self.last_seq, ack.seq)
        return int(ack.seq)

    async def publish_raw(self, run_id: str, data: bytes) -> int:
        """Anything at all on a run's subject (no fence)."""
        ack = await self.js.publish(self.subjects.run_events(self.tenant, run_id), data)
        self.last_seq = max(self.last_seq, ack.seq)
        return int(ack.seq)

    async def run(
        self,
        workflow_id: str,
        *,
        status: str = "succeeded",
        start: datetime | None = None,
        duration_ms: float = 10.0,
        kind: str = "api",
        steps: int = 2,
        started: bool = True,
    ) -> str:
        """A whole run: queued, started, its steps in a batch, its end; returns its id."""
        run_id = str(new_run_id())
        for event in run_events(
            self.tenant,
            run_id,
            workflow_id,
            status=status,
            start=start or datetime.now(UTC),
            duration_ms=duration_ms,
            kind=kind,
            steps=steps,
            started=started,
        ):
            await self.publish(event)
        return run_id


def run_events(
    tenant: str,
    run_id: str,
    workflow_id: str,
    *,
    status: str = "succeeded",
    start: datetime,
    duration_ms: float = 10.0,
    kind: str = "api",
    steps: int = 2,
    started: bool = True,
) -> list[RunEvent]:
    """The events of a run that starts at ``start`` and ends ``duration_ms`` later."""
    end = start + timedelta(milliseconds=duration_ms)

    def ref(moment: datetime) -> dict[str, Any]:
        return {
            "tenant": tenant,
            "run_id": run_id,
            "workflow_id": workflow_id,
            "version": 1,
            "at": moment,
        }

    n = next(_ids)
    trigger = TriggerInfo(kind=kind, data={"n": n})  # type: ignore[arg-type]
    events: list[RunEvent] = [
        RunQueued(**ref(start - timedelta(milliseconds=1)), trigger=trigger, input={"n": n})
    ]
    if not started:
        return [*events, RunCancelled(**ref(end), reason="test")]
    events.append(RunStarted(**ref(start)))
    step_at = start + timedelta(milliseconds=duration_ms / 2)
    done: list[Any] = [
        StepSucceeded(**ref(step_at), node_id=f"s{i}", started_at=start, output={"i": i})
        for i in range(steps)
    ]
    if status == "failed":
        done.append(StepStarted(**ref(step_at), node_id="boom"))
        done.append(
            StepFailed(**ref(end), node_id="boom", attempt=1, error_class="Boom", message="no")
        )
    events.append(StepBatch(**ref(step_at), events=done))
    final: dict[str, RunEvent] = {
        "succeeded": RunSucceeded(**ref(end), output={"n": n}),
        "failed": RunFailed(**ref(end), error=RunError(code="Boom", message="no", node_id="boom")),
        "timed_out": RunTimedOut(**ref(end)),
        "cancelled": RunCancelled(**ref(end), reason="test"),
    }
    if status in final:
        events.append(final[status])
    return events


async def projected(projection: Projection, seq: int, timeout: float = 10.0) -> None:  # noqa: ASYNC109
    """Until ``projection`` has acked everything up to stream sequence ``seq``."""
    await until(
        lambda: projection.acked_seq >= seq,
        timeout,
        message=f"projection past sequence {seq}",
    )


def session_projection(registry: Registry) -> Projection:
    projection = registry.app.projection
    assert projection is not None
    return projection


async def snapshot(owner: asyncpg.Connection, tenant: str) -> dict[str, list[dict[str, Any]]]:
    """Every run, step and workflow-statistics row of ``tenant`` (read as the owner)."""
    runs = await owner.fetch("SELECT * FROM runs WHERE tenant_id = $1 ORDER BY id", tenant)
    steps = await owner.fetch(
        "SELECT * FROM step_runs WHERE tenant_id = $1 ORDER BY run_id, node_id", tenant
    )
    stats = await owner.fetch(
        "SELECT id, execution_count, success_count, failure_count, timed_count,"
        " total_duration_ms, last_executed_at, last_execution_status"
        " FROM workflows WHERE tenant_id = $1 ORDER BY id",
        tenant,
    )
    return {
        "runs": [dict(row) for row in runs],
        "steps": [dict(row) for row in steps],
        "stats": [dict(row) for row in stats],
    }
