"""The run page's fold (``fold.js``) against the one Python owner of the rule
(``flowmesh_proto.runfold``): the same events, encoded as the SSE stream sends them, give
the same run and node statuses. Then what only the page keeps: attempts, and repeats."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import msgspec
import pytest_asyncio
from hypothesis import given, settings
from hypothesis import strategies as st
from playwright.async_api import Page

from flowmesh_proto.runfold import fold
from flowmesh_proto.runs import (
    RunCancelled,
    RunError,
    RunEvent,
    RunFailed,
    RunQueued,
    RunStarted,
    RunSucceeded,
    RunWaiting,
    StepBatch,
    StepFailed,
    StepLog,
    StepRetrying,
    StepSkipped,
    StepStarted,
    StepSucceeded,
    TriggerInfo,
)
from flowmesh_proto.workflow import Definition
from tests.unit.console_js import call, console_modules
from tests.unit.engine_shell import T0, Run
from tests.unit.test_engine_properties import MAX_DECISIONS, _shell_moves, workflows

REF = {
    "tenant": "acme",
    "run_id": "0193a000-0000-7000-8000-000000000001",
    "workflow_id": "0193a000-0000-7000-8000-0000000000ff",
    "version": 3,
}
#: What both folds are compared on, for each sequence of events.
SUMMARY = """(m, sequences) => sequences.map((events) => {
  const s = m.foldAll(events);
  return {
    status: s.status, waiting: s.waiting ? s.waiting.reason : null, retries: s.retries,
    nodes: s.order.map((id) => {
      const n = s.nodes[id];
      return [id, n.status, n.attempt, n.reused, n.error];
    }),
  };
})"""


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def page() -> AsyncIterator[Page]:
    async for found in console_modules():
        yield found


def at(ms: int) -> Any:
    return T0 + timedelta(milliseconds=ms)


def queued(ms: int = 0, **more: Any) -> RunQueued:
    return RunQueued(**REF, at=at(ms), trigger=TriggerInfo(kind="api"), input={"x": 1}, **more)


def started(ms: int, *nodes: str) -> RunStarted:
    return RunStarted(**REF, at=at(ms), executor="e1", nodes=list(nodes))


def step(kind: type[Any], ms: int, node: str, **more: Any) -> Any:
    return kind(**REF, at=at(ms), node_id=node, **more)


def batch(ms: int, *events: Any) -> StepBatch:
    return StepBatch(**REF, at=at(ms), events=list(events))


def python_summary(events: list[RunEvent]) -> dict[str, Any]:
    state = fold(events)
    return {
        "status": state.status,
        "waiting": state.waiting.reason if state.waiting else None,
        "retries": state.retries,
        "nodes": [
            [node_id, n.status, n.attempt, n.reused, n.error] for node_id, n in state.nodes.items()
        ],
    }


def wire(events: list[RunEvent]) -> Any:
    """The events as an SSE client decodes them (each message's data is the event JSON)."""
    return msgspec.json.decode(msgspec.json.encode(events))


async def assert_agree(page: Page, sequences: list[list[RunEvent]]) -> None:
    folded = await call(page, "fold.js", SUMMARY, [wire(events) for events in sequences])
    for events, js in zip(sequences, folded, strict=True):
        assert js == python_summary(events), [type(e).__name__ for e in events]


SCENARIOS: dict[str, list[RunEvent]] = {
    "success": [
        queued(),
        started(1, "a", "b", "c"),
        step(StepStarted, 2, "a"),
        batch(5, step(StepSucceeded, 4, "a", output=1), step(StepStarted, 5, "b")),
        step(StepSucceeded, 9, "b", output=2),
        step(StepSucceeded, 9, "c", started_at=at(9), output=3),  # instantaneous
        RunSucceeded(**REF, at=at(10), output=3),
    ],
    "retry then success": [
        queued(),
        started(1, "a", "b"),
        step(StepStarted, 2, "a"),
        step(StepFailed, 3, "a", attempt=1, error_class="HttpError", message="500", final=False),
        step(StepRetrying, 3, "a", attempt=2, delay_ms=200),
        step(StepStarted, 203, "a", attempt=2),
        step(StepLog, 204, "a", message="hello"),
        step(StepSucceeded, 210, "a", attempt=2, output={"ok": True}),
    ],
    "failure with skipped downstream": [
        queued(),
        started(1, "a", "b", "c"),
        step(StepStarted, 2, "a"),
        step(StepFailed, 3, "a", attempt=1, error_class="HttpError", message="boom"),
        batch(4, step(StepSkipped, 4, "b"), step(StepSkipped, 4, "c")),
        RunFailed(**REF, at=at(4), error=RunError(code="STEP_FAILED", message="a", node_id="a")),
    ],
    "cancel": [
        queued(),
        started(1, "a", "b", "c", "d"),
        batch(2, step(StepStarted, 2, "a"), step(StepStarted, 2, "b")),
        step(StepFailed, 3, "b", attempt=1, error_class="X", message="y", final=False),
        step(StepRetrying, 3, "b", attempt=2, delay_ms=5000),
        RunCancelled(**REF, at=at(4), reason="asked"),
        step(StepSucceeded, 5, "a"),  # after the end: changes nothing
    ],
    "cancel with no skipped events": [
        queued(),
        started(1, "a", "b"),
        step(StepStarted, 2, "a"),
        RunCancelled(**REF, at=at(4)),
    ],
    "reused steps of a retry run": [
        queued(attempt=2, parent_run_id="0193a000-0000-7000-8000-000000000000"),
        started(1, "a", "b", "c"),
        batch(
            2,
            step(StepSucceeded, 2, "a", attempt=1, output=1, reused=True),
            step(StepSucceeded, 2, "b", attempt=1, output=2, reused=True),
            step(StepStarted, 2, "c"),
        ),
        step(StepSucceeded, 6, "c", output=3),
        RunSucceeded(**REF, at=at(7), output=3),
    ],
    "waiting, then started": [
        queued(),
        RunWaiting(**REF, at=at(1), reason="concurrency_key", since=at(1)),
    ],
    "no node list: first seen order": [
        queued(),
        step(StepStarted, 2, "z"),
        step(StepSucceeded, 3, "y", started_at=at(3)),
    ],
}


async def test_the_scenarios_fold_as_in_python(page: Page) -> None:
    await assert_agree(page, list(SCENARIOS.values()))
    assert python_summary(SCENARIOS["cancel"])["nodes"] == [
        ["a", "cancelled", 1, False, None],
        ["b", "cancelled", 1, False, "y"],
        ["c", "skipped", 0, False, None],
        ["d", "skipped", 0, False, None],
    ]
    reused = python_summary(SCENARIOS["reused steps of a retry run"])["nodes"]
    assert [n[3] for n in reused] == [True, True, False]


def engine_runs(count: int) -> list[list[RunEvent]]:
    """Runs of random workflows driven by the executor's engine and a random shell
    (successes, failures, retries, timers, cancels), and a prefix of each (a live run)."""
    found: list[list[RunEvent]] = []

    @settings(max_examples=count, deadline=None, database=None)
    @given(workflows(), st.data())
    def collect(defn: Definition, data: st.DataObject) -> None:
        run = Run(defn, data={"flag": data.draw(st.booleans())})
        for _ in range(MAX_DECISIONS):
            actions = run.decide()
            if run.state.finished:
                break
            _shell_moves(run, actions, data)
        found.append(list(run.events))
        found.append(list(run.events[: data.draw(st.integers(1, len(run.events)))]))

    collect()
    return found


async def test_engine_driven_runs_fold_as_in_python(page: Page) -> None:
    sequences = engine_runs(60)
    await assert_agree(page, sequences)
    statuses = {n[1] for events in sequences for n in python_summary(events)["nodes"]}
    assert {"succeeded", "failed", "skipped"} <= statuses


async def test_a_repeated_id_is_applied_once_and_a_notice_without_id_always(page: Page) -> None:
    events = wire(SCENARIOS["retry then success"])
    result = await call(
        page,
        "fold.js",
        """(m, events) => {
          const s = m.emptyRun();
          const applied = [];
          // ids 10, 11, 12 ... then a reconnect sends 12 and 13 again.
          events.forEach((e, i) => applied.push(m.receive(s, 10 + i, e)));
          const again = [m.receive(s, 12, events[2]), m.receive(s, "13", events[3])];
          const notice = m.receive(s, null, events[0]);
          const waiting = {...events[0], kind: "run.waiting", reason: "capacity"};
          const renotice = m.receive(s, s.lastId, waiting);
          return {applied, again, notice, renotice, lastId: s.lastId, ids: s.ids,
                  retries: s.retries, attempts: s.nodes.a.attempts, count: s.applied};
        }""",
        events,
    )
    assert result["applied"] == [True] * len(events)
    assert result["again"] == [False, False]
    assert result["notice"] is True and result["renotice"] is True
    assert result["lastId"] == 10 + len(events) - 1
    assert result["ids"] == list(range(10, 10 + len(events)))
    assert result["retries"] == 1
    [first, second] = result["attempts"]
    assert first["outcome"] == "failed" and first["error"] == "500"
    assert first["retry_delay_ms"] == 200
    assert second["outcome"] == "succeeded" and second["attempt"] == 2
    assert second["started_at"].startswith("2025-01-01T00:00:00.203")


async def test_a_cancel_ends_running_attempts_and_reused_steps_have_none(page: Page) -> None:
    sequences = [wire(SCENARIOS["cancel"]), wire(SCENARIOS["reused steps of a retry run"])]
    cancelled, reused = await call(
        page, "fold.js", "(m, all) => all.map((events) => m.foldAll(events).nodes)", sequences
    )
    assert [a["outcome"] for a in cancelled["a"]["attempts"]] == ["cancelled"]
    assert [a["outcome"] for a in cancelled["b"]["attempts"]] == ["failed"]
    assert cancelled["c"]["attempts"] == []
    assert reused["a"]["attempts"] == [] and reused["a"]["reused"] is True
    assert [a["outcome"] for a in reused["c"]["attempts"]] == ["succeeded"]
