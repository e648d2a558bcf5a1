"""Tenant isolation: query scoping, row-level security, and checks at the edge."""

from __future__ import annotations

import secrets

import asyncpg
import msgspec
import pytest

from flowmesh_proto import actions as a
from flowmesh_proto import connectors as c
from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError
from tests.action_specs import HELPDESK

from .conftest import Api, Registry, TenantHandle, simple_definition, unique

pytestmark = pytest.mark.integration

MISSING_ID = "0190f5a4-0000-7000-8000-000000000001"


def foreign_requests(wid: str) -> list[tuple[str, object]]:
    return [
        ("workflow_get", r.WorkflowGet(id=wid)),
        ("workflow_get", r.WorkflowGet(id=wid, version=1)),
        ("workflow_update", r.WorkflowUpdate(id=wid, definition=simple_definition("steal"))),
        ("workflow_patch", r.WorkflowPatch(id=wid, enabled=False)),
        ("workflow_delete", r.WorkflowDelete(id=wid)),
        ("workflow_versions", r.WorkflowVersions(id=wid)),
        ("workflow_clone", r.WorkflowClone(id=wid, name=unique("stolen"))),
        ("workflow_export", r.WorkflowExport(id=wid)),
        ("workflow_lock", r.WorkflowLock(id=wid)),
        ("workflow_unlock", r.WorkflowUnlock(id=wid)),
    ]


async def test_other_tenant_gets_not_found_like_a_missing_id(api: Api, other_api: Api) -> None:
    wf = await api.create(unique("private"))
    for (op, foreign), (_, missing) in zip(
        foreign_requests(wf.id), foreign_requests(MISSING_ID), strict=True
    ):
        with pytest.raises(RemoteError) as theirs:
            await other_api(op, foreign)
        with pytest.raises(RemoteError) as absent:
            await other_api(op, missing)
        mine, gone = theirs.value.problem, absent.value.problem
        assert (mine.status, mine.code) == (gone.status, gone.code), op
        assert mine.status == 404, op
        assert mine.detail == gone.detail.replace(MISSING_ID, wf.id), op
    listing = await other_api("workflow_list", r.WorkflowList(limit=100))
    assert wf.id not in {item.id for item in listing.items}
    searched = await other_api("workflow_list", r.WorkflowList(q=wf.name))
    assert searched.items == []
    still = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert still.enabled and still.version == 1 and not still.is_locked


async def test_same_name_in_two_tenants_is_fine(api: Api, other_api: Api) -> None:
    name = unique("shared-name")
    a = await api.create(name)
    b = await other_api.create(name)
    assert a.id != b.id and a.tenant_id != b.tenant_id


async def test_principal_of_another_tenant_is_refused_and_audited(
    registry: Registry, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "workflow_list", r.WorkflowList(), tenant=tenant.id, principal=other_tenant.principal
        )
    assert caught.value.problem.code == "CROSS_TENANT_ACCESS_DENIED"
    assert caught.value.problem.status == 403
    audit = await registry.call(
        "audit_list",
        r.AuditList(action="registry.workflow_list"),
        tenant=other_tenant.id,
        principal=other_tenant.principal,
    )
    assert audit.items and audit.items[0].outcome == "denied"
    assert audit.items[0].target == f"tenant:{tenant.id}"
    victims = await registry.call(
        "audit_list", r.AuditList(), tenant=tenant.id, principal=tenant.principal
    )
    assert all(e.outcome != "denied" for e in victims.items)


async def _runtime_conn(registry: Registry) -> asyncpg.Connection:
    from flowmesh_registry.db import runtime_dsn

    settings = registry.settings
    dsn = settings.runtime_database_url or runtime_dsn(settings.database_url, settings.runtime_role)
    return await asyncpg.connect(dsn)


TENANT_TABLES = [
    "tenants",
    "api_keys",
    "workflows",
    "workflow_versions",
    "runs",
    "step_runs",
    "secrets",
    "audit_log",
    "outbox",
    "webhook_secrets",
    "connectors",
    "actions",
    "action_versions",
]


HOOK = {"id": "hook", "kind": "webhook"}
NO_AUTH = c.ConnectorSpec(base_url="https://api.example.com", auth=c.NoAuth())


async def _connector(api: Api) -> None:
    await api("connector_put", c.ConnectorPut(name=unique("conn"), spec=NO_AUTH))
    spec = msgspec.convert(HELPDESK, a.ActionSpec)  # and an action, with its version
    await api("action_put", a.ActionPut(name=f"act_{secrets.token_hex(4)}", spec=spec))


async def test_runtime_role_without_tenant_sees_no_rows(api: Api, registry: Registry) -> None:
    hooked = await api.create(unique("rls"), triggers=[HOOK])
    assert hooked.webhook_secrets  # a webhook_secrets row exists for the policy to hide
    await _connector(api)  # and a connectors row
    conn = await _runtime_conn(registry)
    try:
        role = await conn.fetchrow(
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = current_user"
        )
        assert role is not None and not role["rolsuper"] and not role["rolbypassrls"]
        owned = await conn.fetchval(
            "SELECT count(*) FROM pg_tables"
            " WHERE schemaname = 'public' AND tableowner = current_user"
        )
        assert owned == 0
        for table in TENANT_TABLES:
            assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", "nobody-here")
            for table in TENANT_TABLES:
                assert await conn.fetchval(f"SELECT count(*) FROM {table}") == 0, table
    finally:
        await conn.close()


async def test_runtime_role_with_one_tenant_sees_only_that_tenant(
    api: Api, other_api: Api, registry: Registry
) -> None:
    await api.create(unique("mine"), triggers=[HOOK])
    await other_api.create(unique("theirs"), triggers=[HOOK])
    await _connector(api)
    await _connector(other_api)
    conn = await _runtime_conn(registry)
    try:
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", api.tenant.id)
            for table in (
                "workflows",
                "webhook_secrets",
                "connectors",
                "actions",
                "action_versions",
            ):
                tenants = {row[0] for row in await conn.fetch(f"SELECT tenant_id FROM {table}")}
                assert tenants == {api.tenant.id}, table
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO actions (tenant_id, name, current_version, created_by)"
                    " VALUES ($1, 'stolen', 1, 'x')",
                    other_api.tenant.id,
                )
        async with conn.transaction():
            await conn.execute("SELECT set_config('app.tenant_id', $1, true)", api.tenant.id)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO audit_log (tenant_id, actor, action, target, outcome)"
                    " VALUES ($1, 'x', 'x', 'x', 'success')",
                    other_api.tenant.id,
                )
    finally:
        await conn.close()
