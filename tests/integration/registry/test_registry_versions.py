"""A workflow's versions: each read as a snapshot of its definition, listed a page at a time."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto import registry as r
from flowmesh_registry.cursors import encode_cursor
from flowmesh_shared.errors import RemoteError

from .conftest import Api, simple_definition, unique

pytestmark = pytest.mark.integration

CRON = {"id": "nightly", "kind": "cron", "cron": "0 2 * * *"}
EVENT = {"id": "orders", "kind": "event", "event": "order.created"}


async def refused(api: Api, operation: str, request: Any) -> RemoteError:
    with pytest.raises(RemoteError) as caught:
        await api(operation, request)
    return caught.value


async def with_versions(api: Api, count: int) -> r.Workflow:
    """A workflow with ``count`` versions (descriptions v1 .. v<count>)."""
    wf = await api.create(unique("paged"), description="v1")
    for n in range(2, count + 1):
        definition = simple_definition(wf.name, description=f"v{n}")
        await api("workflow_update", r.WorkflowUpdate(id=wf.id, definition=definition))
    return wf


async def test_a_version_is_the_whole_definition_as_stored_then(api: Api) -> None:
    old_name = unique("before")
    first = await api.create(old_name, tags=["old"], triggers=[CRON])
    renamed = {
        **simple_definition(unique("after"), description="renamed", category="other"),
        "tags": ["new", "newer"],
        "triggers": [EVENT],
        "nodes": [{"id": "only", "type": "noop"}],
        "edges": [],
        "vars": {},
    }
    await api("workflow_update", r.WorkflowUpdate(id=first.id, definition=renamed))
    await api("workflow_patch", r.WorkflowPatch(id=first.id, enabled=False))

    v1 = await api("workflow_get", r.WorkflowGet(id=first.id, version=1))
    assert (v1.name, v1.description, v1.category) == (old_name, first.description, "automation")
    assert v1.tags == ["old"] and v1.vars == {"threshold": 100}
    assert [t["id"] for t in v1.triggers] == ["nightly"]
    assert v1.nodes == first.nodes and v1.edges == first.edges
    assert v1.content_hash == first.content_hash and v1.version == 1
    # Not part of the definition: the workflow's current state.
    assert v1.id == first.id and v1.enabled is False and v1.versions == 2
    assert (v1.created_at, v1.created_by) == (first.created_at, first.created_by)
    # When and by whom version 1 was stored.
    history = await api("workflow_versions", r.WorkflowVersions(id=first.id))
    stored = {item.version: item for item in history.items}
    assert (v1.updated_at, v1.updated_by) == (stored[1].created_at, stored[1].created_by)

    current = await api("workflow_get", r.WorkflowGet(id=first.id))
    assert current.name == renamed["name"] and current.tags == ["new", "newer"]
    assert [t["id"] for t in current.triggers] == ["orders"]
    assert [n["id"] for n in current.nodes] == ["only"]
    v2 = await api("workflow_get", r.WorkflowGet(id=first.id, version=2))
    assert (v2.name, v2.tags, v2.nodes, v2.triggers) == (
        current.name,
        current.tags,
        current.nodes,
        current.triggers,
    )
    assert v2.updated_at == stored[2].created_at


async def test_versions_come_newest_first_a_page_at_a_time(api: Api) -> None:
    wf = await with_versions(api, 5)
    seen: list[int] = []
    cursor = None
    pages = []
    while True:
        page = await api("workflow_versions", r.WorkflowVersions(id=wf.id, limit=2, cursor=cursor))
        pages.append(page)
        seen += [item.version for item in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        assert page.next_cursor is not None
        cursor = page.next_cursor
    assert seen == [5, 4, 3, 2, 1]
    assert [len(p.items) for p in pages] == [2, 2, 1]
    assert [p.has_more for p in pages] == [True, True, False]
    whole = await api("workflow_versions", r.WorkflowVersions(id=wf.id))
    assert [i.version for i in whole.items] == [5, 4, 3, 2, 1]
    assert (whole.has_more, whole.next_cursor) == (False, None)
    exact = await api("workflow_versions", r.WorkflowVersions(id=wf.id, limit=5))
    assert len(exact.items) == 5 and not exact.has_more and exact.next_cursor is None


async def test_bad_limit_and_cursor_are_refused_at_their_path(api: Api) -> None:
    wf = await with_versions(api, 3)
    other = await with_versions(api, 3)
    page = await api("workflow_versions", r.WorkflowVersions(id=other.id, limit=1))
    workflow_cursor = encode_cursor("-updated_at", ["2026-01-01T00:00:00+00:00", wf.id])
    cases: list[tuple[str, dict[str, Any]]] = [
        ("limit", {"limit": 0}),
        ("limit", {"limit": 101}),
        ("cursor", {"cursor": "garbage!"}),
        ("cursor", {"cursor": workflow_cursor}),  # another listing's
        ("cursor", {"cursor": page.next_cursor}),  # another workflow's
        ("cursor", {"cursor": encode_cursor("versions:-version", [wf.id, "2"])}),
        ("cursor", {"cursor": encode_cursor("versions:-version", [wf.id, 0])}),
    ]
    for path, fields in cases:
        problem = (
            await refused(api, "workflow_versions", r.WorkflowVersions(id=wf.id, **fields))
        ).problem
        assert (problem.status, problem.code) == (422, "VALIDATION_FAILED"), fields
        assert [e.path for e in problem.errors] == [path], fields


async def test_a_missing_version_and_a_missing_workflow_are_404(api: Api, other_api: Api) -> None:
    wf = await with_versions(api, 2)
    problem = (await refused(api, "workflow_get", r.WorkflowGet(id=wf.id, version=3))).problem
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    assert "version 3" in problem.detail
    await api("workflow_delete", r.WorkflowDelete(id=wf.id))
    for caller, operation, request in [
        (api, "workflow_get", r.WorkflowGet(id=wf.id, version=1)),
        (api, "workflow_versions", r.WorkflowVersions(id=wf.id)),
    ]:
        problem = (await refused(caller, operation, request)).problem
        assert (problem.status, problem.code) == (404, "WORKFLOW_NOT_FOUND"), operation
    mine = await with_versions(api, 2)
    for operation, request in [
        ("workflow_get", r.WorkflowGet(id=mine.id, version=1)),
        ("workflow_versions", r.WorkflowVersions(id=mine.id)),
        ("workflow_versions", r.WorkflowVersions(id=mine.id, limit=0)),
    ]:
        problem = (await refused(other_api, operation, request)).problem
        assert (problem.status, problem.code) == (404, "WORKFLOW_NOT_FOUND"), operation
        assert mine.id in problem.detail, operation
