"""A workflow that names a sub-workflow the tenant does not have is refused where it
names it: a ``workflow`` node, a ``map`` over a workflow, a ``map``'s per-item template."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, unique

pytestmark = pytest.mark.integration


def definition(node: dict[str, Any]) -> dict[str, Any]:
    return {"name": unique("parent"), "nodes": [node]}


def nodes(workflow_id: str) -> list[tuple[dict[str, Any], str]]:
    """Each way to name a sub-workflow, with the path a missing one is reported at."""
    return [
        (
            {"id": "child", "type": "workflow", "parameters": {"workflow_id": workflow_id}},
            "nodes[0].parameters.workflow_id",
        ),
        (
            {
                "id": "each",
                "type": "map",
                "parameters": {"items": "trigger.data.items", "workflow_id": workflow_id},
            },
            "nodes[0].parameters.workflow_id",
        ),
        (
            {
                "id": "each",
                "type": "map",
                "parameters": {
                    "items": "trigger.data.items",
                    "node": {"type": "workflow", "parameters": {"workflow_id": workflow_id}},
                },
            },
            "nodes[0].parameters.node.parameters.workflow_id",
        ),
    ]


async def test_a_missing_sub_workflow_is_refused_at_its_path(api: Api) -> None:
    missing = str(uuid.uuid4())
    for node, path in nodes(missing):
        with pytest.raises(RemoteError) as caught:
            await api("workflow_create", r.WorkflowCreate(definition=definition(node)))
        problem = caught.value.problem
        assert problem.status == 422 and problem.code == "MISSING_VARIABLE", problem
        assert [(e.path, e.code) for e in problem.errors] == [(path, "MISSING_VARIABLE")]
        assert missing in problem.errors[0].message


async def test_an_existing_sub_workflow_is_accepted_each_way(api: Api) -> None:
    child = await api.create(unique("child"))
    for node, _ in nodes(child.id):
        created = await api("workflow_create", r.WorkflowCreate(definition=definition(node)))
        assert created.validation_status == "valid"


async def test_another_tenants_workflow_is_missing(api: Api, other_api: Api) -> None:
    theirs = await other_api.create(unique("theirs"))
    for node, path in nodes(theirs.id):
        with pytest.raises(RemoteError) as caught:
            await api("workflow_create", r.WorkflowCreate(definition=definition(node)))
        assert [e.path for e in caught.value.problem.errors] == [path]
