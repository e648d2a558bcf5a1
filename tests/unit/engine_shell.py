"""Support for the engine tests (no tests here): an in-memory shell keeping events and state."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from flowmesh_executor.actions import Action, Decision, RunContext, StartStep
from flowmesh_executor.engine import decide, step_failed, step_succeeded
from flowmesh_executor.state import RunState, fold
from flowmesh_proto.runs import RunEvent, RunQueued, TriggerInfo
from flowmesh_proto.workflow import Definition, definition_from_builtins
from flowmesh_registry.validate import validate_definition

T0 = datetime(2025, 1, 1, tzinfo=UTC)
RUN_ID = "0193a000-0000-7000-8000-000000000001"


def definition(
    nodes: list[dict[str, Any]], edges: list[dict[str, Any]] | None = None, **extra: Any
) -> Definition:
    raw = {"name": "t", "nodes": nodes, "edges": edges or [], **extra}
    report = validate_definition(raw)
    assert report.valid, report.problems
    return definition_from_builtins(raw)


def queued(data: Any = None, *, run_id: str = RUN_ID) -> RunQueued:
    return RunQueued(
        tenant="acme",
        run_id=run_id,
        workflow_id="0193a000-0000-7000-8000-0000000000ff",
        version=1,
        at=T0,
        trigger=TriggerInfo(kind="api", data=data),
    )


@dataclass
class Run:
    definition: Definition
    context: RunContext = field(default_factory=RunContext)
    data: Any = None
    now: datetime = T0
    events: list[RunEvent] = field(default_factory=list)
    state: RunState = field(default_factory=RunState)
    decisions: list[Decision] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.publish([queued(self.data)])

    def publish(self, events: list[RunEvent]) -> None:
        self.events.extend(events)
        self.state = fold(events, self.state)

    def decide(self) -> list[Action]:
        decision = decide(self.definition, self.state, self.now, self.context)
        self.decisions.append(decision)
        self.publish(decision.events)
        assert msgspec.to_builtins(decision.state) == msgspec.to_builtins(self.state)
        return decision.actions

    def started(self) -> list[StartStep]:
        return [a for d in self.decisions for a in d.actions if isinstance(a, StartStep)]

    def succeed(self, node_id: str, output: Any = None) -> None:
        attempt = self.state.node(node_id).attempt
        self.publish(step_succeeded(self.state, node_id, attempt, output, self.now, self.context))

    def fail(self, node_id: str, error: tuple[str, str] = ("HttpError", "500")) -> None:
        attempt = self.state.node(node_id).attempt
        events = step_failed(
            self.definition, self.state, node_id, attempt, error, self.now, self.context
        )
        self.publish(events)

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)

    def status(self, node_id: str) -> str:
        return self.state.node(node_id).status
