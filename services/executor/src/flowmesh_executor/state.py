"""A run's state, folded from its events in stream order: the engine decides from
:mod:`flowmesh_proto.runfold`, the one fold every reader of a run's events shares, so what
it decides on is what the run resource and ``flowmesh watch`` show. Pure: no I/O, no clock.
"""

from __future__ import annotations

from typing import Any

from flowmesh_proto.runfold import NodeState, RunRef, RunState, apply, fold

__all__ = ["NodeState", "RunRef", "RunState", "apply", "fold", "reused_outputs"]


def reused_outputs(parent: RunState) -> dict[str, Any]:
    """Retry-from-failed: the outputs of the parent run's succeeded steps, to run no again."""
    return {
        node_id: node.output for node_id, node in parent.nodes.items() if node.status == "succeeded"
    }
