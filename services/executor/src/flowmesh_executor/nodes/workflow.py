"""``workflow``: run another workflow (the child) and output its run's output."""

from __future__ import annotations

from typing import Any

from flowmesh_executor.nodes.base import StepCall, StepError, StepServices
from flowmesh_executor.nodes.params import INVALID, text


async def run(call: StepCall, services: StepServices) -> Any:
    workflow_id = text(call.parameters.get("workflow_id"), "workflow_id")
    version = call.parameters.get("version")
    if version is not None and (not isinstance(version, int) or isinstance(version, bool)):
        raise StepError(INVALID, "version must be an integer")
    return await services.children.run_child(
        call, workflow_id, version, call.parameters.get("input"), key=call.node.id
    )
