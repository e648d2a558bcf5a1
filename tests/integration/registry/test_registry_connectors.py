"""Connectors in the registry: stored per tenant, versioned, audited, isolated, limited."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from flowmesh_proto import connectors as c
from flowmesh_proto import registry as r
from flowmesh_registry.caller import Caller
from flowmesh_registry.connectors import ConnectorOperations
from flowmesh_shared.errors import FlowmeshError, RemoteError

from .conftest import Api, Registry, TenantHandle

pytestmark = pytest.mark.integration


def spec(**fields: Any) -> c.ConnectorSpec:
    body = {
        "base_url": "https://api.example.com/v1",
        "auth": {"kind": "bearer", "secret": "EXAMPLE_TOKEN"},
        **fields,
    }
    return msgspec.convert(body, c.ConnectorSpec)


async def put(api: Api, name: str, value: c.ConnectorSpec | None = None) -> c.Connector:
    result: c.Connector = await api(
        "connector_put", c.ConnectorPut(name=name, spec=value or spec())
    )
    return result


async def refused(call: Any) -> Any:
    with pytest.raises(RemoteError) as caught:
        await call
    return caught.value.problem


async def test_put_get_list_replace_delete(api: Api) -> None:
    first = await put(api, "example")
    assert (first.version, first.hosts, first.missing_secrets) == (
        1,
        ["api.example.com"],
        ["EXAMPLE_TOKEN"],
    )
    assert first.auth == c.BearerAuth(secret="EXAMPLE_TOKEN")
    assert first.created_by == api.tenant.principal == first.updated_by
    await api("secret_put", r.SecretPut(name="EXAMPLE_TOKEN", value="the-value"))
    got = await api("connector_get", c.ConnectorGet(name="example"))
    assert got.missing_secrets == [] and got.version == 1
    again = await put(api, "example", spec(headers={"Accept": "application/json"}))
    assert again.version == 2 and again.created_at == first.created_at
    assert again.updated_at > first.updated_at and again.headers == {"Accept": "application/json"}
    assert "the-value" not in msgspec.json.encode(again).decode()

    await put(api, "another", spec(auth={"kind": "none"}))
    listing = await api("connector_list", c.ConnectorList())
    assert [x.name for x in listing.items] == ["another", "example"] and not listing.has_more

    deleted = await api("connector_delete", c.ConnectorDelete(name="example"))
    assert deleted.name == "example"
    problem = await refused(api("connector_get", c.ConnectorGet(name="example")))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    problem = await refused(api("connector_delete", c.ConnectorDelete(name="example")))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    assert (await put(api, "example")).version == 1  # made again: a new connector


async def test_pages_follow_the_cursor(api: Api) -> None:
    names = [f"c{i:02d}" for i in range(7)]
    for name in reversed(names):
        await put(api, name, spec(auth={"kind": "none"}))
    seen: list[str] = []
    cursor = None
    while True:
        page = await api("connector_list", c.ConnectorList(limit=3, cursor=cursor))
        seen += [x.name for x in page.items]
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert seen == names
    problem = await refused(api("connector_list", c.ConnectorList(cursor="garbage")))
    assert (problem.status, problem.errors[0].path) == (422, "cursor")
    problem = await refused(api("connector_list", c.ConnectorList(limit=101)))
    assert (problem.status, problem.errors[0].path) == (422, "limit")


async def test_changes_are_audited_with_name_version_and_kind_only(api: Api) -> None:
    await put(api, "audited", spec(headers={"X-Team": "payments"}))
    await put(api, "audited")
    await api("connector_delete", c.ConnectorDelete(name="audited"))
    page = await api("audit_list", r.AuditList(target="connector:audited"))
    assert [(e.action, e.detail) for e in page.items] == [
        ("connector.delete", {"auth": "bearer", "invalidated": []}),
        ("connector.put", {"version": 2, "auth": "bearer", "revalidated": []}),
        ("connector.put", {"version": 1, "auth": "bearer", "revalidated": []}),
    ]
    assert all(e.actor == api.tenant.principal for e in page.items)


async def test_bad_specs_are_refused_at_their_paths(api: Api) -> None:
    problem = await refused(
        api(
            "connector_put",
            c.ConnectorPut(
                name="Bad",
                spec=spec(
                    base_url="https://u:p@api.example.com",
                    headers={"Authorization": "Bearer x"},
                ),
            ),
        )
    )
    assert problem.status == 422 and problem.code == "VALIDATION_FAILED"
    assert [e.path for e in problem.errors] == ["base_url", "headers.Authorization", "name"]
    listing = await api("connector_list", c.ConnectorList())
    assert listing.items == []


async def test_another_tenant_sees_nothing(
    api: Api, other_api: Api, registry: Registry, tenant: TenantHandle
) -> None:
    await put(api, "mine")
    assert (await other_api("connector_list", c.ConnectorList())).items == []
    for op, request in [
        ("connector_get", c.ConnectorGet(name="mine")),
        ("connector_delete", c.ConnectorDelete(name="mine")),
    ]:
        problem = await refused(other_api(op, request))
        assert (problem.status, problem.code) == (404, "NOT_FOUND"), op
    theirs = await put(other_api, "mine", spec(auth={"kind": "none"}))  # their own, apart
    assert theirs.version == 1
    for op, request in [
        ("connector_list", c.ConnectorList()),
        ("connector_get", c.ConnectorGet(name="mine")),
        ("connector_put", c.ConnectorPut(name="mine", spec=spec())),
        ("connector_delete", c.ConnectorDelete(name="mine")),
    ]:
        problem = await refused(
            registry.call(op, request, tenant=tenant.id, principal=other_api.tenant.principal)
        )
        assert problem.code == "CROSS_TENANT_ACCESS_DENIED", op
    mine = await api("connector_get", c.ConnectorGet(name="mine"))
    assert (mine.version, mine.auth.__struct_config__.tag) == (1, "bearer")


async def test_row_level_security_hides_other_tenants_rows(
    api: Api, other_api: Api, registry: Registry
) -> None:
    await put(api, "hidden")
    async with registry.app.db.tenant_tx(other_api.tenant.id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM connectors") == 0
    async with registry.app.db.tenant_tx(api.tenant.id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM connectors") == 1


async def test_the_limit_per_tenant_holds_even_for_concurrent_creations(
    api: Api, registry: Registry
) -> None:
    operations = ConnectorOperations(registry.app.db, max_connectors=3)
    caller = Caller(tenant=api.tenant.id, actor=api.tenant.principal)
    results = await asyncio.gather(
        *(operations.put(caller, f"n{i}", spec()) for i in range(6)), return_exceptions=True
    )
    refusals = [x for x in results if isinstance(x, FlowmeshError)]
    assert len(refusals) == 3 and all(x.code.name == "CONNECTOR_LIMIT_REACHED" for x in refusals)
    assert refusals[0].code.http_status == 409
    made = next(x.name for x in results if isinstance(x, c.Connector))
    replaced = await operations.put(caller, made, spec())
    assert replaced.version == 2  # replacing one is no creation: the limit does not apply


def _through(name: str, connector: str, *, action: bool = False) -> dict[str, Any]:
    """A workflow whose one node reaches the outside through ``connector``: an http node,
    or a built-in action's node; and a map's per-item http node through it too."""
    node: dict[str, Any] = (
        {
            "id": "post",
            "type": "action",
            "parameters": {
                "action": "webhook.post",
                "connector": connector,
                "input": {"payload": {"a": 1}},
            },
        }
        if action
        else {"id": "post", "type": "http", "parameters": {"connector": connector, "path": "/x"}}
    )
    return {"name": name, "nodes": [node]}


async def test_deleting_a_connector_invalidates_the_versions_naming_it_until_it_is_back(
    api: Api,
) -> None:
    await put(api, "hooks")
    await put(api, "other")
    http = await api("workflow_create", r.WorkflowCreate(definition=_through("via-http", "hooks")))
    action = await api(
        "workflow_create",
        r.WorkflowCreate(definition=_through("via-action", "hooks", action=True)),
    )
    bystander = await api(
        "workflow_create", r.WorkflowCreate(definition=_through("bystander", "other"))
    )

    deleted = await api("connector_delete", c.ConnectorDelete(name="hooks"))
    assert sorted((v.workflow_id, v.version) for v in deleted.invalidated) == sorted(
        [(http.id, 1), (action.id, 1)]
    )
    for wf in (http, action):
        got = await api("workflow_get", r.WorkflowGet(id=wf.id))
        assert got.validation_status == "invalid"
        assert [(e.code, e.message) for e in got.validation_errors] == [
            ("MISSING_VARIABLE", "connector hooks was deleted")
        ]
    still = await api("workflow_get", r.WorkflowGet(id=bystander.id))
    assert still.validation_status == "valid"
    audit = await api(
        "audit_list", r.AuditList(action="connector.delete", target="connector:hooks")
    )
    assert sorted(audit.items[0].detail["invalidated"]) == sorted(
        [f"{http.id}@1", f"{action.id}@1"]
    )

    again = await put(api, "hooks")
    assert again.version == 1
    for wf in (http, action):
        got = await api("workflow_get", r.WorkflowGet(id=wf.id))
        assert (got.validation_status, got.validation_errors) == ("valid", [])
    audit = await api("audit_list", r.AuditList(action="connector.put", target="connector:hooks"))
    assert sorted(audit.items[0].detail["revalidated"]) == sorted(
        [f"{http.id}@1", f"{action.id}@1"]
    )
