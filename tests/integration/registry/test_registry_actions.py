"""Tenant actions in the registry: versioned per tenant, checked at their paths, merged with
the built-in ones, limited, audited, isolated; and workflows checked against them."""

from __future__ import annotations

import asyncio
from typing import Any

import msgspec
import pytest

from flowmesh_proto import actions as a
from flowmesh_proto import connectors as c
from flowmesh_proto import registry as r
from flowmesh_proto.action_library import builtin_actions
from flowmesh_registry.actions import ActionOperations
from flowmesh_registry.caller import Caller
from flowmesh_shared.errors import FlowmeshError, RemoteError
from tests.action_specs import CONNECTOR, HELPDESK, helpdesk, request_with, workflow_using

from .conftest import Api, Registry, TenantHandle

pytestmark = pytest.mark.integration


def spec(body: dict[str, Any] | None = None) -> a.ActionSpec:
    return msgspec.convert(body or HELPDESK, a.ActionSpec)


async def put(api: Api, name: str, body: dict[str, Any] | None = None) -> a.Action:
    result: a.Action = await api("action_put", a.ActionPut(name=name, spec=spec(body)))
    return result


async def refused(call: Any) -> Any:
    with pytest.raises(RemoteError) as caught:
        await call
    return caught.value.problem


async def test_versions_are_made_only_by_a_change(api: Api) -> None:
    first = await put(api, "helpdesk.open_ticket")
    assert (first.version, first.builtin, first.created_by) == (1, False, api.tenant.principal)
    assert first.spec == spec()
    second = await put(api, "helpdesk.open_ticket", helpdesk(description="Opens a ticket."))
    assert second.version == 2 and second.created_at >= first.created_at
    same = await put(api, "helpdesk.open_ticket", helpdesk(description="Opens a ticket."))
    assert same == second  # the same spec: no new version

    versions = await api("action_versions", a.ActionVersions(name="helpdesk.open_ticket"))
    assert [x.version for x in versions.items] == [2, 1] and not versions.has_more
    old = await api("action_get", a.ActionGet(name="helpdesk.open_ticket", version=1))
    assert old == first
    current = await api("action_get", a.ActionGet(name="helpdesk.open_ticket"))
    assert current == second
    problem = await refused(api("action_get", a.ActionGet(name="helpdesk.open_ticket", version=3)))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")

    deleted = await api("action_delete", a.ActionDelete(name="helpdesk.open_ticket"))
    assert deleted.name == "helpdesk.open_ticket"
    for op, request in [
        ("action_get", a.ActionGet(name="helpdesk.open_ticket")),
        ("action_get", a.ActionGet(name="helpdesk.open_ticket", version=1)),
        ("action_versions", a.ActionVersions(name="helpdesk.open_ticket")),
        ("action_delete", a.ActionDelete(name="helpdesk.open_ticket")),
    ]:
        problem = await refused(api(op, request))
        assert (problem.status, problem.code) == (404, "NOT_FOUND"), op
    assert (await put(api, "helpdesk.open_ticket")).version == 1  # made again: a new action


async def test_versions_page_newest_first(api: Api) -> None:
    for i in range(5):
        await put(api, "paged", helpdesk(description=f"Version {i + 1}."))
    seen: list[int] = []
    cursor = None
    while True:
        page = await api("action_versions", a.ActionVersions(name="paged", limit=2, cursor=cursor))
        seen += [x.version for x in page.items]
        if not page.has_more:
            break
        cursor = page.next_cursor
    assert seen == [5, 4, 3, 2, 1]


async def test_a_builtin_action_is_read_never_changed(api: Api) -> None:
    builtin = await api("action_get", a.ActionGet(name="slack.post_message"))
    assert (builtin.builtin, builtin.version, builtin.created_by) == (True, 1, None)
    problem = await refused(api("action_get", a.ActionGet(name="slack.post_message", version=2)))
    assert problem.status == 404
    versions = await api("action_versions", a.ActionVersions(name="slack.post_message"))
    assert [(x.name, x.version) for x in versions.items] == [("slack.post_message", 1)]
    problem = await refused(api("action_delete", a.ActionDelete(name="slack.post_message")))
    assert (problem.status, problem.code) == (409, "CONFLICT") and "built in" in problem.detail
    for name in ("slack.post_message", "slack.mine", "github"):
        problem = await refused(api("action_put", a.ActionPut(name=name, spec=spec())))
        assert (problem.status, [e.path for e in problem.errors]) == (422, ["name"]), name
    for name in ("Bad", "a-b", "x" * 40, "a.b.c"):
        problem = await refused(api("action_put", a.ActionPut(name=name, spec=spec())))
        assert (problem.status, [e.path for e in problem.errors]) == (422, ["name"]), name


async def test_the_list_merges_builtin_and_own_actions_over_pages(api: Api) -> None:
    own = ["aaa", "helpdesk.close", "helpdesk.open", "zzz"]
    for name in reversed(own):
        await put(api, name)
    await put(api, "helpdesk.open", helpdesk(description="Twice."))  # its current version
    seen: list[a.Action] = []
    cursor = None
    while True:
        page = await api("action_list", a.ActionList(limit=3, cursor=cursor))
        assert len(page.items) <= 3
        seen += page.items
        if not page.has_more:
            assert page.next_cursor is None
            break
        cursor = page.next_cursor
    assert [x.name for x in seen] == sorted([*own, *builtin_actions()])
    assert {x.name for x in seen if x.builtin} == set(builtin_actions())
    assert next(x for x in seen if x.name == "helpdesk.open").version == 2

    await put(api, "data_sync", helpdesk(category="data"))
    page = await api("action_list", a.ActionList(category="data", after="data"))
    assert [x.name for x in page.items] == ["data_sync", "github.create_issue", "rest.upsert"]
    page = await api("action_list", a.ActionList(category="integration", after="helpdesk.close"))
    assert [x.name for x in page.items] == ["helpdesk.open", "zzz"]
    for request, path in [
        (a.ActionList(cursor="garbage"), "cursor"),
        (a.ActionList(limit=101), "limit"),
        (a.ActionList(after="Not A Name"), "after"),
    ]:
        problem = await refused(api("action_list", request))
        assert (problem.status, problem.errors[0].path) == (422, path)


async def test_a_page_holds_a_bounded_size_of_specs(api: Api, registry: Registry) -> None:
    large = helpdesk(description="x" * 2000)
    for name in ("big_a", "big_b", "big_c"):
        await put(api, name, large)
    size = len(msgspec.json.encode(spec(large)))
    operations = ActionOperations(registry.app.db, page_max_bytes=2 * size)
    request = a.ActionList(limit=10, category="integration", after="big")
    page = await operations.list_actions(api.tenant.id, request)
    assert [x.name for x in page.items] == ["big_a", "big_b"] and page.has_more
    rest = await operations.list_actions(
        api.tenant.id, a.ActionList(limit=10, cursor=page.next_cursor, category="integration")
    )
    assert rest.items[0].name == "big_c"


BAD: list[tuple[str, dict[str, Any], str, str]] = [
    (
        "an input schema that does not compile",
        helpdesk(input_schema={"type": "object", "properties": {"x": {"type": "nope"}}}),
        "input_schema",
        "VALIDATION_FAILED",
    ),
    (
        "an input that is not an object",
        helpdesk(input_schema={"type": "string"}, example=None),
        "input_schema.type",
        "VALIDATION_FAILED",
    ),
    (
        "a request reading secrets",
        request_with(body={"token": "{{ secrets.HELPDESK_TOKEN }}"}),
        "request.body.token",
        "SECRET_NOT_ALLOWED",
    ),
    (
        "a request reading trigger",
        request_with(path="/tickets/{{ trigger.data.id }}"),
        "request.path",
        "MISSING_VARIABLE",
    ),
    ("a path to another host", request_with(path="//evil.example/x"), "request.path", ""),
    ("a path with a dot segment", request_with(path="/../x"), "request.path", ""),
    (
        "a credential header",
        request_with(headers={"Authorization": "Bearer x"}),
        "request.headers.Authorization",
        "VALIDATION_FAILED",
    ),
    (
        "an example that breaks the schema",
        helpdesk(example={"title": "t", "priority": 9}),
        "example.priority",
        "VALIDATION_FAILED",
    ),
    (
        "a result reading secrets",
        helpdesk(result={"output": "secrets.HELPDESK_TOKEN"}),
        "result.output",
        "SECRET_NOT_ALLOWED",
    ),
]


@pytest.mark.parametrize(("case", "body", "path", "code"), BAD, ids=[b[0] for b in BAD])
async def test_bad_specs_are_422_at_their_paths(
    api: Api, case: str, body: dict[str, Any], path: str, code: str
) -> None:
    problem = await refused(api("action_put", a.ActionPut(name="broken", spec=spec(body))))
    assert problem.status == 422, case
    assert [e.path for e in problem.errors] == [path], (case, problem.errors)
    if code:
        assert problem.errors[0].code == code, case
    listing = await api("action_list", a.ActionList(after="broken", limit=1))
    assert all(x.name != "broken" for x in listing.items)


async def test_a_spec_too_large_is_422_at_its_root(api: Api) -> None:
    large = helpdesk(output_schema={"description": "x" * a.MAX_SPEC_BYTES})
    problem = await refused(api("action_put", a.ActionPut(name="huge", spec=spec(large))))
    assert (problem.status, [e.path for e in problem.errors]) == (422, ["$"])


async def test_changes_are_audited(api: Api) -> None:
    await put(api, "audited")
    await put(api, "audited")  # the same spec: nothing changed, nothing audited
    await put(api, "audited", helpdesk(description="Changed."))
    await api("action_delete", a.ActionDelete(name="audited"))
    page = await api("audit_list", r.AuditList(target="action:audited"))
    assert [(e.action, e.detail) for e in page.items] == [
        ("action.delete", {"invalidated": []}),
        ("action.put", {"version": 2}),
        ("action.put", {"version": 1, "revalidated": []}),
    ]


async def test_another_tenant_sees_nothing(
    api: Api, other_api: Api, registry: Registry, tenant: TenantHandle
) -> None:
    await put(api, "secretive")
    listing = await other_api("action_list", a.ActionList(limit=100))
    assert "secretive" not in {x.name for x in listing.items}
    for op, request in [
        ("action_get", a.ActionGet(name="secretive")),
        ("action_get", a.ActionGet(name="secretive", version=1)),
        ("action_versions", a.ActionVersions(name="secretive")),
        ("action_delete", a.ActionDelete(name="secretive")),
    ]:
        problem = await refused(other_api(op, request))
        assert (problem.status, problem.code) == (404, "NOT_FOUND"), op
    for op, request in [
        ("action_list", a.ActionList()),
        ("action_get", a.ActionGet(name="secretive")),
        ("action_put", a.ActionPut(name="secretive", spec=spec())),
        ("action_delete", a.ActionDelete(name="secretive")),
    ]:
        problem = await refused(
            registry.call(op, request, tenant=tenant.id, principal=other_api.tenant.principal)
        )
        assert problem.code == "CROSS_TENANT_ACCESS_DENIED", op
    async with registry.app.db.tenant_tx(other_api.tenant.id) as conn:
        assert await conn.fetchval("SELECT count(*) FROM actions") == 0
        assert await conn.fetchval("SELECT count(*) FROM action_versions") == 0


async def test_the_limits_hold_at_their_edge(api: Api, registry: Registry) -> None:
    operations = ActionOperations(registry.app.db, max_actions=3, max_versions=2)
    caller = Caller(tenant=api.tenant.id, actor=api.tenant.principal)
    results = await asyncio.gather(
        *(operations.put(caller, f"n{i}", spec()) for i in range(6)), return_exceptions=True
    )
    refusals = [x for x in results if isinstance(x, FlowmeshError)]
    assert len(refusals) == 3 and all(x.code.name == "ACTION_LIMIT_REACHED" for x in refusals)
    assert refusals[0].code.http_status == 409 and refusals[0].code.num == 4093
    made = next(x.name for x in results if isinstance(x, a.Action))
    assert (await operations.put(caller, made, spec())).version == 1  # the same: no version
    second = await operations.put(caller, made, spec(helpdesk(description="Second.")))
    assert second.version == 2
    with pytest.raises(FlowmeshError) as caught:
        await operations.put(caller, made, spec(helpdesk(description="Third.")))
    assert caught.value.code.name == "ACTION_LIMIT_REACHED"
    current = await operations.get(api.tenant.id, made)
    assert current.version == 2


# --- workflows naming the tenant's actions ----------------------------------------------


async def _with_connector(api: Api) -> None:
    connector = msgspec.convert(CONNECTOR, c.ConnectorSpec)
    await api("connector_put", c.ConnectorPut(name="helpdesk", spec=connector))


async def test_workflows_are_checked_against_the_tenant_action(api: Api) -> None:
    await _with_connector(api)
    await put(api, "helpdesk.open")
    await put(api, "helpdesk.open", helpdesk(example=None, input_schema={"type": "object"}))
    current = workflow_using("helpdesk.open", {"title": "x", "anything": True})
    assert (await api("workflow_validate", r.WorkflowValidate(definition=current))).valid
    pinned = workflow_using("helpdesk.open", {"title": "Down", "priority": 9}, version=1)
    report = await api("workflow_validate", r.WorkflowValidate(definition=pinned))
    assert [(e.path, e.code) for e in report.errors] == [
        ("nodes[0].parameters.input.priority", "VALIDATION_FAILED")
    ]
    problem = await refused(api("workflow_create", r.WorkflowCreate(definition=pinned)))
    assert (problem.status, [e.path for e in problem.errors]) == (
        422,
        ["nodes[0].parameters.input.priority"],
    )
    missing = [
        (workflow_using("helpdesk.nope", {}), "nodes[0].parameters.action"),
        (workflow_using("helpdesk.open", {"title": "x"}, version=7), "nodes[0].parameters.version"),
    ]
    for definition, path in missing:
        report = await api("workflow_validate", r.WorkflowValidate(definition=definition))
        assert [(e.path, e.code) for e in report.errors] == [(path, "MISSING_VARIABLE")]
        problem = await refused(api("workflow_create", r.WorkflowCreate(definition=definition)))
        assert [(e.path, e.code) for e in problem.errors] == [(path, "MISSING_VARIABLE")]

    good = workflow_using("helpdesk.open", {"title": "{{ trigger.data.title }}"}, version=1)
    made = await api("workflow_create", r.WorkflowCreate(definition=good))
    bad = workflow_using("helpdesk.open", {"priority": 2}, version=1)
    problem = await refused(api("workflow_update", r.WorkflowUpdate(id=made.id, definition=bad)))
    assert [e.path for e in problem.errors] == ["nodes[0].parameters.input.title"]
    document = msgspec.json.encode(workflow_using("helpdesk.gone", {}, name="imported")).decode()
    problem = await refused(api("workflow_import", r.WorkflowImport(document=document)))
    assert [(e.path, e.code) for e in problem.errors] == [
        ("nodes[0].parameters.action", "MISSING_VARIABLE")
    ]


async def test_each_tenant_is_judged_by_its_own_action_of_the_same_name(
    api: Api, other_api: Api
) -> None:
    strict = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    for who, schema in ((api, strict), (other_api, {"type": "object"})):
        await _with_connector(who)
        await put(who, "shared.name", helpdesk(input_schema=schema, example=None))
    definition = workflow_using("shared.name", {"text": "hi"}, version=1)
    mine = await api("workflow_validate", r.WorkflowValidate(definition=definition))
    theirs = await other_api("workflow_validate", r.WorkflowValidate(definition=definition))
    assert [e.path for e in mine.errors] == ["nodes[0].parameters.input.n"]
    assert theirs.valid, theirs.errors  # not judged by the other tenant's cached schema


async def test_the_bytes_of_stored_specs_are_bounded_per_tenant(
    api: Api, registry: Registry
) -> None:
    size = len(msgspec.json.encode(spec(helpdesk(description="One."))))
    operations = ActionOperations(registry.app.db, max_bytes=2 * size + size // 2)
    caller = Caller(tenant=api.tenant.id, actor=api.tenant.principal)
    await operations.put(caller, "bytes_a", spec(helpdesk(description="One.")))
    await operations.put(caller, "bytes_a", spec(helpdesk(description="Two.")))  # a version
    with pytest.raises(FlowmeshError) as caught:
        await operations.put(caller, "bytes_b", spec(helpdesk(description="Six.")))
    assert caught.value.code.name == "ACTION_LIMIT_REACHED"
    with pytest.raises(FlowmeshError):
        await operations.put(caller, "bytes_a", spec(helpdesk(description="Six.")))
    same = await operations.put(caller, "bytes_a", spec(helpdesk(description="Two.")))
    assert same.version == 2  # the same spec stores nothing, so it is always answered
    await operations.delete(caller, "bytes_a")  # its versions' bytes are freed
    made = await operations.put(caller, "bytes_b", spec(helpdesk(description="Six.")))
    assert made.version == 1


async def test_deleting_an_action_invalidates_the_versions_naming_it_until_it_is_back(
    api: Api,
) -> None:
    await _with_connector(api)
    await put(api, "helpdesk.page")
    user = await api(
        "workflow_create",
        r.WorkflowCreate(definition=workflow_using("helpdesk.page", {"title": "x"}, name="pager")),
    )
    bystander = await api(
        "workflow_create",
        r.WorkflowCreate(
            definition=workflow_using(
                "slack.post_message", {"channel": "C", "text": "t"}, name="bystander"
            )
        ),
    )
    deleted = await api("action_delete", a.ActionDelete(name="helpdesk.page"))
    assert [(v.workflow_id, v.version) for v in deleted.invalidated] == [(user.id, 1)]
    got = await api("workflow_get", r.WorkflowGet(id=user.id))
    assert got.validation_status == "invalid"
    assert [(e.code, e.message) for e in got.validation_errors] == [
        ("MISSING_VARIABLE", "action helpdesk.page was deleted")
    ]
    still = await api("workflow_get", r.WorkflowGet(id=bystander.id))
    assert still.validation_status == "valid"
    await put(api, "helpdesk.page")
    got = await api("workflow_get", r.WorkflowGet(id=user.id))
    assert (got.validation_status, got.validation_errors) == ("valid", [])


async def test_a_pinned_version_past_any_integer_is_a_problem_at_its_path(api: Api) -> None:
    """A version no action can have (past PostgreSQL's integer) is a 422 at the node's
    version, never a 500 from the query that reads the actions."""
    await _with_connector(api)
    await put(api, "helpdesk.open")
    for version in (2**31, 2**63):
        definition = workflow_using("helpdesk.open", {"title": "x"}, version=version)
        report = await api("workflow_validate", r.WorkflowValidate(definition=definition))
        assert [e.path for e in report.errors] == ["nodes[0].parameters.version"], version
        problem = await refused(api("workflow_create", r.WorkflowCreate(definition=definition)))
        assert (problem.status, [e.path for e in problem.errors]) == (
            422,
            ["nodes[0].parameters.version"],
        )
