"""What a node's state means downstream: its outcome, its edges, whether it may run. Pure.

- A node is **done** when it succeeded (its output), failed with ``on_error: continue``
  (output null: downstream runs as if it had succeeded with null; a condition or switch
  that failed this way takes no branch), or failed and its fallback is done (the
  fallback's output stands in for it). It is **cut** when skipped (or its fallback was).
  It is **fatal** when it failed for good with ``on_error: fail`` (or its fallback chain
  ends in such a failure): the run fails.
- An edge is **satisfied** when its source is done and, leaving a condition or switch, its
  ``when`` equals the source's output (``"true"``/``"false"``, the chosen case or
  ``"default"``); **cut** when its source is cut or the branch was not taken.
- **The join rule**: a node runs when each incoming edge is satisfied or cut and at least
  one is satisfied; it is skipped when all are cut. Skips propagate through this rule.
  Entry nodes (no incoming edge, not a fallback) run at once.
- A **fallback** node runs when each node naming it and each incoming edge has resolved
  and at least one naming node failed for good; it is skipped when none did. Its own
  incoming edges only order it (a cut edge does not prevent a needed fallback).
"""

from __future__ import annotations

from typing import Any, Literal

from flowmesh_executor.plan import Plan, fallback_of
from flowmesh_executor.state import RunState
from flowmesh_proto.workflow import Edge

__all__ = [
    "Outcome",
    "branch_value",
    "done_outputs",
    "edge_state",
    "outcome",
    "readiness",
    "run_output",
]

OutcomeKind = Literal["pending", "done", "cut", "fatal"]
EdgeState = Literal["pending", "satisfied", "cut"]
Readiness = Literal["wait", "ready", "skip"]


class Outcome:
    __slots__ = ("kind", "output")

    def __init__(self, kind: OutcomeKind, output: Any = None) -> None:
        self.kind = kind
        self.output = output


PENDING = Outcome("pending")
CUT = Outcome("cut")
FATAL = Outcome("fatal")


def outcome(plan: Plan, state: RunState, node_id: str) -> Outcome:
    seen: set[str] = set()
    current = node_id
    while True:
        node = state.nodes.get(current)
        if node is None:
            return PENDING
        match node.status:
            case "succeeded":
                return Outcome("done", node.output)
            case "skipped":
                return CUT
            case "failed":
                if plan.nodes[current].on_error == "continue":
                    return Outcome("done", None)
                target = fallback_of(plan.nodes[current])
                if target is None or target in seen or target == node_id:
                    return FATAL
                seen.add(current)
                current = target
            case _:
                return PENDING


def branch_value(output: Any) -> str | None:
    """The ``when`` an output chooses: ``"true"``/``"false"`` for a boolean, a case for text."""
    if isinstance(output, bool):
        return "true" if output else "false"
    if isinstance(output, str):
        return output
    if isinstance(output, int):
        return str(output)
    return None


def edge_state(plan: Plan, state: RunState, edge: Edge) -> EdgeState:
    source = outcome(plan, state, edge.from_)
    if source.kind == "cut":
        return "cut"
    if source.kind != "done":
        return "pending"
    if edge.when is None or branch_value(source.output) == edge.when:
        return "satisfied"
    return "cut"


def _rescue_state(state: RunState, namer: str) -> EdgeState:
    status = state.node(namer).status
    if status == "failed":
        return "satisfied"
    return "cut" if status in ("succeeded", "skipped") else "pending"


def readiness(plan: Plan, state: RunState, node_id: str) -> Readiness:
    """Whether a pending node may run now, must be skipped, or must wait (see the module)."""
    edges = [edge_state(plan, state, edge) for edge in plan.incoming[node_id]]
    namers = plan.rescues.get(node_id, ())
    if namers:
        rescues = [_rescue_state(state, namer) for namer in namers]
        if "pending" in edges or "pending" in rescues:
            return "wait"
        return "ready" if "satisfied" in rescues else "skip"
    if "pending" in edges:
        return "wait"
    return "ready" if not edges or "satisfied" in edges else "skip"


def done_outputs(plan: Plan, state: RunState) -> dict[str, Any]:
    """The outputs expressions see as ``nodes.<id>.output``: every node that is done."""
    outputs: dict[str, Any] = {}
    for node_id in state.nodes:
        if node_id in plan.nodes:
            result = outcome(plan, state, node_id)
            if result.kind == "done":
                outputs[node_id] = result.output
    return outputs


def run_output(plan: Plan, state: RunState) -> Any:
    """The node named by the definition's ``output``, else ``{node_id: output}`` of the
    terminal nodes that succeeded (or were rescued by a fallback); skipped ones and ones
    that failed with ``continue`` are left out."""
    named = plan.definition.output
    if named is not None:
        result = outcome(plan, state, named)
        return result.output if result.kind == "done" else None
    outputs: dict[str, Any] = {}
    for node_id in plan.terminal:
        node = state.node(node_id)
        if node.status == "succeeded":
            outputs[node_id] = node.output
        elif node.status == "failed" and fallback_of(plan.nodes[node_id]) is not None:
            result = outcome(plan, state, node_id)
            if result.kind == "done":
                outputs[node_id] = result.output
    return outputs
