"""Every workflow operation of the registry, over real NATS and PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, simple_definition, unique

pytestmark = pytest.mark.integration


async def test_create_then_get(api: Api) -> None:
    name = unique("orders")
    created = await api.create(name)
    assert created.name == name
    assert created.version == 1 and created.versions == 1
    assert created.validation_status == "valid" and created.validation_errors == []
    assert created.tags == ["orders"] and created.category == "automation"
    assert [n["id"] for n in created.nodes] == ["prepare", "big", "notify", "skip"]
    assert created.created_by == api.tenant.principal
    fetched = await api("workflow_get", r.WorkflowGet(id=created.id))
    assert fetched == created


async def test_name_is_unique_among_live_workflows(api: Api) -> None:
    name = unique("dup")
    first = await api.create(name)
    with pytest.raises(RemoteError) as caught:
        await api.create(name)
    assert caught.value.problem.code == "WORKFLOW_NAME_TAKEN"
    assert caught.value.problem.status == 409
    await api("workflow_delete", r.WorkflowDelete(id=first.id))
    again = await api.create(name)  # a deleted workflow frees its name
    assert again.id != first.id


async def test_update_creates_an_immutable_version(api: Api) -> None:
    wf = await api.create(unique("versions"))
    changed = simple_definition(wf.name, description="second")
    updated = await api(
        "workflow_update", r.WorkflowUpdate(id=wf.id, definition=changed, if_version=1)
    )
    assert updated.version == 2 and updated.description == "second"
    v1 = await api("workflow_get", r.WorkflowGet(id=wf.id, version=1))
    assert v1.version == 1 and v1.description == "Charge, then decide."
    history = await api("workflow_versions", r.WorkflowVersions(id=wf.id))
    assert [v.version for v in history.items] == [2, 1]
    assert history.items[0].content_hash != history.items[1].content_hash


async def test_update_with_same_content_adds_no_version(api: Api) -> None:
    wf = await api.create(unique("same"))
    again = await api(
        "workflow_update", r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name))
    )
    assert again.version == 1 and again.versions == 1


async def test_stale_version_is_refused(api: Api) -> None:
    wf = await api.create(unique("stale"))
    await api(
        "workflow_update",
        r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name, description="x")),
    )
    with pytest.raises(RemoteError) as caught:
        await api(
            "workflow_update",
            r.WorkflowUpdate(
                id=wf.id, definition=simple_definition(wf.name, description="y"), if_version=1
            ),
        )
    assert caught.value.problem.code == "PRECONDITION_FAILED"
    assert caught.value.problem.status == 412


async def test_two_concurrent_updates_from_one_base_one_wins(api: Api) -> None:
    wf = await api.create(unique("race"))

    async def update(description: str) -> object:
        definition = simple_definition(wf.name, description=description)
        request = r.WorkflowUpdate(id=wf.id, definition=definition, if_version=1)
        try:
            return await api("workflow_update", request)
        except RemoteError as exc:
            return exc

    results = await asyncio.gather(update("left"), update("right"))
    winners = [x for x in results if isinstance(x, r.Workflow)]
    losers = [x for x in results if isinstance(x, RemoteError)]
    assert len(winners) == 1 and len(losers) == 1
    assert losers[0].problem.code == "PRECONDITION_FAILED"
    final = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert final.version == 2 and final.description == winners[0].description


async def test_patch_enabled_tags_and_rollback(api: Api) -> None:
    wf = await api.create(unique("patch"))
    await api(
        "workflow_update",
        r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name, description="v2")),
    )
    patched = await api("workflow_patch", r.WorkflowPatch(id=wf.id, enabled=False, tags=["a", "b"]))
    assert patched.enabled is False and patched.tags == ["a", "b"] and patched.version == 2
    rolled = await api("workflow_patch", r.WorkflowPatch(id=wf.id, current_version=1))
    assert rolled.version == 3 and rolled.description == "Charge, then decide."
    v1 = await api("workflow_get", r.WorkflowGet(id=wf.id, version=1))
    assert rolled.content_hash == v1.content_hash
    with pytest.raises(RemoteError) as caught:
        await api("workflow_patch", r.WorkflowPatch(id=wf.id, current_version=99))
    assert caught.value.problem.status == 404
    with pytest.raises(RemoteError) as caught:
        await api("workflow_patch", r.WorkflowPatch(id=wf.id, tags=["x", "x"]))
    assert caught.value.problem.code == "VALIDATION_FAILED"


async def test_delete_is_soft_and_then_not_found(api: Api) -> None:
    wf = await api.create(unique("gone"))
    deleted = await api("workflow_delete", r.WorkflowDelete(id=wf.id))
    assert deleted.id == wf.id
    for op, req in [
        ("workflow_get", r.WorkflowGet(id=wf.id)),
        ("workflow_delete", r.WorkflowDelete(id=wf.id)),
        ("workflow_versions", r.WorkflowVersions(id=wf.id)),
    ]:
        with pytest.raises(RemoteError) as caught:
            await api(op, req)
        assert caught.value.problem.code == "WORKFLOW_NOT_FOUND"


async def test_deleting_a_subworkflow_invalidates_its_callers(api: Api) -> None:
    child = await api.create(unique("child"))
    parent_def = {
        "name": unique("parent"),
        "nodes": [{"id": "call", "type": "workflow", "parameters": {"workflow_id": child.id}}],
    }
    parent = await api("workflow_create", r.WorkflowCreate(definition=parent_def))
    assert parent.validation_status == "valid"
    await api("workflow_delete", r.WorkflowDelete(id=child.id))
    after = await api("workflow_get", r.WorkflowGet(id=parent.id))
    assert after.validation_status == "invalid"
    assert after.validation_errors and child.id in after.validation_errors[0].message


async def test_subworkflow_must_exist(api: Api) -> None:
    definition = {
        "name": unique("orphan-call"),
        "nodes": [
            {
                "id": "call",
                "type": "workflow",
                "parameters": {"workflow_id": "0190f5a4-0000-7000-8000-000000000000"},
            }
        ],
    }
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=definition))
    assert caught.value.problem.errors[0].path == "nodes[0].parameters.workflow_id"


async def test_apply_creates_then_versions_only_on_change(api: Api) -> None:
    name = unique("applied")
    first = await api(
        "workflow_apply", r.WorkflowApply(name=name, definition=simple_definition(name))
    )
    assert first.created and first.changed and first.workflow.version == 1
    same = await api(
        "workflow_apply", r.WorkflowApply(name=name, definition=simple_definition(name))
    )
    assert not same.created and not same.changed and same.workflow.version == 1
    changed = await api(
        "workflow_apply",
        r.WorkflowApply(name=name, definition=simple_definition(name, description="new")),
    )
    assert changed.changed and changed.workflow.version == 2
    with pytest.raises(RemoteError) as caught:
        await api(
            "workflow_apply", r.WorkflowApply(name=name, definition=simple_definition("other"))
        )
    assert caught.value.problem.errors[0].path == "name"


async def test_clone_copies_under_a_new_name(api: Api) -> None:
    wf = await api.create(unique("source"))
    clone_name = unique("copy")
    clone = await api("workflow_clone", r.WorkflowClone(id=wf.id, name=clone_name))
    assert clone.id != wf.id and clone.name == clone_name and clone.version == 1
    assert clone.nodes == wf.nodes and clone.edges == wf.edges
    with pytest.raises(RemoteError) as caught:
        await api("workflow_clone", r.WorkflowClone(id=wf.id, name=clone_name))
    assert caught.value.problem.code == "WORKFLOW_NAME_TAKEN"


@pytest.mark.parametrize("fmt", ["json", "yaml"])
async def test_export_then_import_round_trips(api: Api, fmt: str) -> None:
    wf = await api.create(unique("exported"))
    exported = await api("workflow_export", r.WorkflowExport(id=wf.id, format=fmt))
    assert exported.format == fmt and wf.name in exported.document
    await api("workflow_delete", r.WorkflowDelete(id=wf.id))
    imported = await api(
        "workflow_import", r.WorkflowImport(document=exported.document, format=fmt)
    )
    assert imported.name == wf.name and imported.id != wf.id
    assert imported.nodes == wf.nodes and imported.content_hash == wf.content_hash


async def test_import_of_bad_documents(api: Api) -> None:
    with pytest.raises(RemoteError) as caught:
        await api("workflow_import", r.WorkflowImport(document="{not json", format="json"))
    assert caught.value.problem.code == "INVALID_EXPORT_FORMAT"
    assert caught.value.problem.status == 400
    bad = '{"name": "x", "nodes": [{"id": "a", "type": "teleport"}, {"id": "a", "type": "noop"}]}'
    with pytest.raises(RemoteError) as caught:
        await api("workflow_import", r.WorkflowImport(document=bad, format="json"))
    problem = caught.value.problem
    assert problem.code == "IMPORT_VALIDATION_FAILED" and problem.status == 422
    assert {e.code for e in problem.errors} >= {"INVALID_NODES", "ORPHANED_NODE"}
    assert {e.path for e in problem.errors} >= {"nodes[0].type", "nodes[1].id"}


async def test_validate_without_storing(api: Api) -> None:
    ok = await api("workflow_validate", r.WorkflowValidate(definition=simple_definition("v")))
    assert ok.valid and ok.errors == []
    bad = await api("workflow_validate", r.WorkflowValidate(definition={"nodes": "no"}))
    assert not bad.valid and {e.path for e in bad.errors} >= {"name"}
    listing = await api("workflow_list", r.WorkflowList(q="v", limit=100))
    assert all(item.name != "v" for item in listing.items)


async def test_list_paginates_with_cursor_and_filters(api: Api) -> None:
    tag = unique("tag")
    names = sorted(unique(f"page-{i}") for i in range(7))
    for i, name in enumerate(names):
        await api.create(name, tags=[tag, "even" if i % 2 == 0 else "odd"])
    seen: list[str] = []
    cursor = None
    while True:
        page = await api(
            "workflow_list", r.WorkflowList(limit=3, tags=[tag], sort="name", cursor=cursor)
        )
        seen += [item.name for item in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == names
    evens = await api("workflow_list", r.WorkflowList(tags=[tag, "even"], sort="-name"))
    assert [i.name for i in evens.items] == sorted(names[0::2], reverse=True)
    by_text = await api("workflow_list", r.WorkflowList(q=names[3]))
    assert [i.name for i in by_text.items] == [names[3]]
    offset = await api("workflow_list", r.WorkflowList(tags=[tag], sort="name", offset=5))
    assert [i.name for i in offset.items] == names[5:]


async def test_list_filters_enabled_and_category(api: Api) -> None:
    tag = unique("f")
    on = await api.create(unique("on"), tags=[tag], category="notification")
    off = await api.create(unique("off"), tags=[tag], enabled=False)
    enabled = await api("workflow_list", r.WorkflowList(tags=[tag], enabled=True))
    assert [i.id for i in enabled.items] == [on.id]
    disabled = await api("workflow_list", r.WorkflowList(tags=[tag], enabled=False))
    assert [i.id for i in disabled.items] == [off.id]
    cat = await api("workflow_list", r.WorkflowList(tags=[tag], category="notification"))
    assert [i.id for i in cat.items] == [on.id]


async def test_list_refuses_bad_paging(api: Api) -> None:
    for request, path in [
        (r.WorkflowList(limit=0), "limit"),
        (r.WorkflowList(limit=101), "limit"),
        (r.WorkflowList(cursor="garbage"), "cursor"),
    ]:
        with pytest.raises(RemoteError) as caught:
            await api("workflow_list", request)
        assert caught.value.problem.code == "VALIDATION_FAILED"
        assert caught.value.problem.errors[0].path == path
