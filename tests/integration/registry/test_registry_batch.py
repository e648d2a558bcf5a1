"""Batches: in order, all or nothing, one result each, the failing operation located."""

from __future__ import annotations

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, simple_definition, unique

pytestmark = pytest.mark.integration


async def test_a_batch_applies_every_operation_in_order(api: Api) -> None:
    keep = await api.create(unique("keep"))
    gone = await api.create(unique("gone"))
    fresh, upserted = unique("fresh"), unique("upserted")
    batch = r.WorkflowBatch(
        operations=[
            r.BatchCreate(definition=simple_definition(fresh)),
            r.BatchUpdate(
                id=keep.id, definition=simple_definition(keep.name, description="2"), if_version=1
            ),
            r.BatchUpsert(definition=simple_definition(upserted)),
            r.BatchUpsert(definition=simple_definition(upserted)),
            r.BatchDelete(id=gone.id),
        ]
    )
    done = await api("workflow_batch", batch)
    assert [(x.op, x.version, x.created, x.changed) for x in done.results] == [
        ("create", 1, True, True),
        ("update", 2, False, True),
        ("upsert", 1, True, True),
        ("upsert", 1, False, False),
        ("delete", None, False, True),
    ]
    assert (await api("workflow_get", r.WorkflowGet(id=keep.id))).version == 2
    listing = await api("workflow_list", r.WorkflowList(q=fresh))
    assert [w.id for w in listing.items] == [done.results[0].id]
    with pytest.raises(RemoteError):
        await api("workflow_get", r.WorkflowGet(id=gone.id))


async def test_one_failure_applies_nothing(api: Api) -> None:
    survivor = await api.create(unique("survivor"))
    first = unique("first")
    batch = r.WorkflowBatch(
        operations=[
            r.BatchCreate(definition=simple_definition(first)),
            r.BatchDelete(id=survivor.id),
            r.BatchCreate(
                definition={"name": unique("bad"), "nodes": [{"id": "x", "type": "teleport"}]}
            ),
        ]
    )
    with pytest.raises(RemoteError) as caught:
        await api("workflow_batch", batch)
    problem = caught.value.problem
    assert problem.status == 422 and problem.code == "INVALID_NODES"
    assert problem.errors[0].path == "operations[2].definition.nodes[0].type"
    assert "operation 2 (create)" in problem.detail
    assert (await api("workflow_get", r.WorkflowGet(id=survivor.id))).enabled
    assert (await api("workflow_list", r.WorkflowList(q=first))).items == []
    audit = await api("audit_list", r.AuditList(target=f"workflow:{survivor.id}"))
    assert [e.action for e in audit.items] == ["workflow.create"]


async def test_duplicate_names_and_missing_ids_inside_a_batch(api: Api) -> None:
    name = unique("twice")
    twice = r.WorkflowBatch(
        operations=[
            r.BatchCreate(definition=simple_definition(name)),
            r.BatchCreate(definition=simple_definition(name)),
        ]
    )
    with pytest.raises(RemoteError) as caught:
        await api("workflow_batch", twice)
    assert caught.value.problem.code == "WORKFLOW_NAME_TAKEN"
    assert caught.value.problem.errors[0].path == "operations[1]"
    missing = r.WorkflowBatch(operations=[r.BatchDelete(id="0190f5a4-0000-7000-8000-000000000009")])
    with pytest.raises(RemoteError) as caught:
        await api("workflow_batch", missing)
    assert caught.value.problem.status == 404


async def test_batch_size_bounds(api: Api) -> None:
    for count in (0, 101):
        ops = [r.BatchDelete(id="0190f5a4-0000-7000-8000-000000000009")] * count
        with pytest.raises(RemoteError) as caught:
            await api("workflow_batch", r.WorkflowBatch(operations=ops))
        assert caught.value.problem.code == "VALIDATION_FAILED"
