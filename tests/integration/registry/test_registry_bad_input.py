"""Bad input gets a clear error reply, every time: never a crash, a hang or silence."""

from __future__ import annotations

from typing import Any

import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import Api, Registry, TenantHandle, raw_call, simple_definition, unique

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("payload", "path_part"),
    [
        (b"{not json", ""),
        (b"", ""),
        (b"[]", ""),
        (b'{"definition": {}, "surprise": 1}', "surprise"),
        (b'{"id": 12}', "id"),
        (b"\xff\xfe", ""),
        (b'{"definition": "\xff"}', ""),
        (b'{"definition": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", ""),
    ],
)
async def test_malformed_messages(
    registry: Registry, tenant: TenantHandle, nc: Any, payload: bytes, path_part: str
) -> None:
    problem = await raw_call(
        registry,
        nc,
        "workflow_get" if b"id" in payload else "workflow_create",
        payload,
        {"Fm-Tenant": tenant.id, "Fm-Principal": tenant.principal},
    )
    assert problem.code == "VALIDATION_FAILED" and problem.status == 422
    if path_part:
        assert any(path_part in e.path for e in problem.errors)


@pytest.mark.parametrize("bad_tenant", ["a.>", "*", "a b", "", "rpc", "UPPER", "x" * 70])
async def test_tenant_headers_that_are_not_subject_tokens(
    registry: Registry, tenant: TenantHandle, nc: Any, bad_tenant: str
) -> None:
    problem = await raw_call(
        registry,
        nc,
        "workflow_list",
        b"{}",
        {"Fm-Tenant": bad_tenant, "Fm-Principal": tenant.principal},
    )
    assert problem.status in (400, 403, 422)
    assert problem.code in ("VALIDATION_FAILED", "CROSS_TENANT_ACCESS_DENIED")


async def test_missing_principal(registry: Registry, tenant: TenantHandle, nc: Any) -> None:
    problem = await raw_call(registry, nc, "workflow_list", b"{}", {"Fm-Tenant": tenant.id})
    assert problem.code == "UNAUTHENTICATED"


async def test_oversized_definition(api: Api, registry: Registry) -> None:
    big = simple_definition(
        unique("huge"), description="x" * (registry.settings.max_definition_bytes + 10)
    )
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=big))
    assert caught.value.problem.code == "PAYLOAD_TOO_LARGE"
    assert caught.value.problem.status == 413


async def test_too_many_nodes(api: Api, registry: Registry) -> None:
    count = registry.settings.max_nodes + 1
    nodes = [{"id": f"n{i}", "type": "noop"} for i in range(count)]
    edges = [{"from": f"n{i}", "to": f"n{i + 1}"} for i in range(count - 1)]
    definition = {"name": unique("wide"), "nodes": nodes, "edges": edges}
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=definition))
    assert caught.value.problem.code == "INVALID_NODES"


@pytest.mark.parametrize("bad_id", ["not-a-uuid", "", "' OR 1=1 --", "0" * 36])
async def test_malformed_ids_are_not_found(api: Api, bad_id: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await api("workflow_get", r.WorkflowGet(id=bad_id))
    assert caught.value.problem.status == 404


@pytest.mark.parametrize("definition", [None, 42, "name: x", [], {"name": ""}, {"name": 5}])
async def test_definitions_that_are_not_objects(api: Api, definition: Any) -> None:
    with pytest.raises(RemoteError) as caught:
        await api("workflow_create", r.WorkflowCreate(definition=definition))
    problem = caught.value.problem
    assert problem.status == 422 and problem.errors


async def test_version_numbers_beyond_any_version(api: Api) -> None:
    wf = await api.create(unique("huge-version"))
    for op, request, path in [
        ("workflow_get", r.WorkflowGet(id=wf.id, version=2**40), "version"),
        ("workflow_patch", r.WorkflowPatch(id=wf.id, current_version=2**40), "current_version"),
        ("workflow_patch", r.WorkflowPatch(id=wf.id, current_version=0), "current_version"),
        ("workflow_clone", r.WorkflowClone(id=wf.id, name=unique("c"), version=-1), "version"),
        ("workflow_export", r.WorkflowExport(id=wf.id, version=2**40), "version"),
    ]:
        with pytest.raises(RemoteError) as caught:
            await api(op, request)
        assert caught.value.problem.code == "VALIDATION_FAILED", op
        assert caught.value.problem.errors[0].path == path


@pytest.mark.parametrize("cursor", ["garbage", "AAAA", "WyItaWQiLFtdXQ", "WyItaWQiLFsieCJdXQ"])
async def test_audit_cursors_it_did_not_issue(api: Api, cursor: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await api("audit_list", r.AuditList(cursor=cursor))
    assert caught.value.problem.code == "VALIDATION_FAILED"
    assert caught.value.problem.errors[0].path == "cursor"
