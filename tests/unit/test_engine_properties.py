"""Property tests of the engine on random valid DAGs driven by a random simulated shell.

Invariants: no (node, attempt) starts twice; no node starts before every predecessor is done
(succeeded, skipped, or failed with a handled ``on_error``) and a fallback only after a node
naming it failed for good; every run ends within a bounded number of decisions; replaying the
published events (also through JSON) rebuilds the same state.
"""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from flowmesh_executor.actions import RunContext, StartStep, WakeAt
from flowmesh_executor.plan import fallback_of
from flowmesh_executor.state import RunState, fold
from flowmesh_proto.runs import RunEvent
from flowmesh_proto.workflow import Definition
from tests.unit.engine_shell import Run, definition

KINDS = ["noop", "http", "http", "condition", "switch", "transform", "task"]
WHEN = {"condition": ["true", "false"], "switch": ["a", "b", "default"]}


def _parameters(draw: st.DrawFn, kind: str) -> dict[str, Any]:
    match kind:
        case "condition":
            return {"expression": draw(st.sampled_from(["true", "false", "trigger.data.flag"]))}
        case "switch":
            return {
                "expression": draw(st.sampled_from(['"a"', '"b"', '"zz"'])),
                "cases": ["a", "b"],
            }
        case "transform":
            return {
                "output": draw(st.sampled_from([1, "{{ trigger.data.flag }}", "{{ vars.no }}"]))
            }
        case "http":
            return {"url": "https://x.example/"}
        case "task":
            return {"queue": "work"}
    return {}


def _node(draw: st.DrawFn, index: int, count: int) -> dict[str, Any]:
    kind = draw(st.sampled_from(KINDS))
    node: dict[str, Any] = {"id": f"n{index}", "type": kind, "parameters": _parameters(draw, kind)}
    if kind == "transform" and "vars.no" in str(node["parameters"]):
        node["parameters"] = {"output": "{{ trigger.data.nothing_here }}"}  # an evaluation error
    policies = ["fail", "continue"] + [f"fallback:n{k}" for k in range(index + 1, count)]
    node["on_error"] = draw(st.sampled_from(policies))
    if draw(st.booleans()):
        attempts = draw(st.integers(1, 3))
        node["retry"] = {"max_attempts": attempts, "initial": "PT1S", "max": "PT4S"}
    if kind in ("http", "task") and draw(st.booleans()):
        node["timeout"] = "PT10S"
    return node


def _edge(draw: st.DrawFn, nodes: list[dict[str, Any]], source: int, target: int) -> dict[str, Any]:
    edge: dict[str, Any] = {"from": f"n{source}", "to": f"n{target}"}
    choices = WHEN.get(nodes[source]["type"])
    if choices:
        edge["when"] = draw(st.sampled_from(choices))
    return edge


@st.composite
def workflows(draw: st.DrawFn) -> Definition:
    count = draw(st.integers(1, 8))
    nodes = [_node(draw, i, count) for i in range(count)]
    fallbacks = {fallback_target for n in nodes if (fallback_target := _target(n)) is not None}
    links: set[tuple[int, int]] = set()
    for target in range(1, count):
        sources = draw(st.sets(st.integers(0, target - 1), max_size=3))
        if not sources and f"n{target}" not in fallbacks:
            sources = {draw(st.integers(0, target - 1))}
        links |= {(source, target) for source in sources}
    if count > 1 and not any(source == 0 for source, _ in links):
        links.add((0, 1))
    edges = [_edge(draw, nodes, s, t) for s, t in sorted(links)]
    return definition(nodes, edges, timeout=draw(st.sampled_from(["PT1H", "PT30S"])))


def _target(node: dict[str, Any]) -> str | None:
    on_error: str = node["on_error"]
    return on_error.removeprefix("fallback:") if on_error.startswith("fallback:") else None


def _handled(defn: Definition, state: RunState, node_id: str) -> bool:
    node = state.node(node_id)
    if node.status in ("succeeded", "skipped"):
        return True
    spec = next(n for n in defn.nodes if n.id == node_id)
    if node.status != "failed" or spec.on_error == "fail":
        return False
    target = fallback_of(spec)
    return target is None or _handled(defn, state, target)


def _check_start(defn: Definition, state: RunState, start: StartStep) -> None:
    for edge in defn.edges:
        if edge.to == start.node_id:
            assert _handled(defn, state, edge.from_), f"{start.node_id} before {edge.from_}"
    namers = [n.id for n in defn.nodes if fallback_of(n) == start.node_id]
    if namers:
        assert any(state.node(n).status == "failed" for n in namers)


MAX_DECISIONS = 200


@settings(max_examples=200, deadline=None)
@given(workflows(), st.data())
def test_random_runs_keep_the_engine_invariants(defn: Definition, data: st.DataObject) -> None:
    run = Run(defn, data={"flag": data.draw(st.booleans())})
    started: set[tuple[str, int]] = set()
    for _ in range(MAX_DECISIONS):
        actions = run.decide()
        for action in actions:
            if isinstance(action, StartStep):
                assert (action.node_id, action.attempt) not in started
                started.add((action.node_id, action.attempt))
                _check_start(defn, run.state, action)
        if run.state.finished:
            break
        _shell_moves(run, actions, data)
    assert run.state.finished, "the run did not end"
    assert run.decide() == []
    _check_replay(run)


def _shell_moves(run: Run, actions: list[Any], data: st.DataObject) -> None:
    """The simulated shell: report one running step, let time pass, or cancel."""
    running = sorted(n for n, s in run.state.nodes.items() if s.status == "running")
    wakes = [a.at for a in actions if isinstance(a, WakeAt)]
    assert running or wakes, "an unfinished run with nothing running and no timer"
    moves = ["succeed", "fail"] * bool(running) + ["wait"] * bool(wakes) + ["cancel"]
    move = data.draw(st.sampled_from(moves))
    if move == "cancel" and data.draw(st.integers(0, 9)) == 0:
        run.context = RunContext(cancel_requested=True)
    elif move == "succeed":
        run.succeed(data.draw(st.sampled_from(running)), {"ok": True})
    elif move == "fail":
        run.fail(data.draw(st.sampled_from(running)))
    elif move == "wait":
        run.now = max(run.now, min(wakes))


def _check_replay(run: Run) -> None:
    replayed = fold(run.events)
    assert replayed == run.state
    assert fold(run.events) == replayed
    wire = msgspec.json.decode(msgspec.json.encode(run.events), type=list[RunEvent])
    assert fold(wire) == run.state
