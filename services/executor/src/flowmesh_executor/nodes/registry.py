"""Node type -> the step function that runs it (the types the engine does not evaluate)."""

from __future__ import annotations

from functools import cache

from flowmesh_executor.nodes import delay, http, map, publish, task, wait_for_event, workflow
from flowmesh_executor.nodes.base import Step


@cache
def shell_steps() -> dict[str, Step]:
    steps: dict[str, Step] = {
        "delay": delay.run,
        "http": http.run,
        "publish": publish.run,
        "task": task.run,
        "wait_for_event": wait_for_event.run,
        "workflow": workflow.run,
    }
    steps["map"] = map.runner(steps)  # a map item runs with these same steps
    return steps
