"""Node type -> the step function that runs it: one for each type the catalog says is a step
(:data:`flowmesh_proto.catalog.NODE_KINDS`, ``runs="step"``); the engine evaluates the rest."""

from __future__ import annotations

from functools import cache

from flowmesh_executor.nodes import (
    action,
    delay,
    http,
    map,
    publish,
    task,
    wait_for_event,
    workflow,
)
from flowmesh_executor.nodes.base import Step
from flowmesh_proto.catalog import NODE_KINDS


@cache
def shell_steps() -> dict[str, Step]:
    steps: dict[str, Step] = {
        "action": action.run,
        "delay": delay.run,
        "http": http.run,
        "publish": publish.run,
        "task": task.run,
        "wait_for_event": wait_for_event.run,
        "workflow": workflow.run,
    }
    steps["map"] = map.runner(steps)  # a map item runs with these same steps
    wanted = {name for name, kind in NODE_KINDS.items() if kind.runs == "step"}
    if steps.keys() != wanted:
        raise RuntimeError(f"step functions for {sorted(steps)}, the catalog says {sorted(wanted)}")
    return steps
