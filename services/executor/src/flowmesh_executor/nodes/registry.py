"""Node type -> the step function that runs it (the types the engine does not evaluate)."""

from __future__ import annotations

from functools import cache

from flowmesh_executor.nodes import delay, map, publish, wait_for_event, workflow
from flowmesh_executor.nodes.base import Step


@cache
def shell_steps() -> dict[str, Step]:
    from flowmesh_executor.nodes import http, task

    return {
        "delay": delay.run,
        "http": http.run,
        "map": map.run,
        "publish": publish.run,
        "task": task.run,
        "wait_for_event": wait_for_event.run,
        "workflow": workflow.run,
    }
