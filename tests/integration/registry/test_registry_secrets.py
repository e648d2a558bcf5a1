"""Tenant secrets: write-only values, sealed at rest, resolved for services only, and the
validity of the workflow versions that name them."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import msgspec
import pytest
import pytest_asyncio
import structlog
from nats.js.errors import NotFoundError

from flowmesh_proto import registry as r
from flowmesh_proto.codec import encode
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_registry.main import start_registry
from flowmesh_registry.secrets import known_names
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.errors import RemoteError
from flowmesh_shared.rpc import RpcClient

from .conftest import Api, Registry, TenantHandle, unique

pytestmark = pytest.mark.integration

EXECUTOR = "service:executor"
HEADER = "nodes[0].parameters.headers.H0"


def value_of(label: str) -> str:
    """A value no test source holds: finding it anywhere means it leaked."""
    return f"{label}-{secrets.token_hex(16)}"


def using(name: str, *secret_names: str, **extra: Any) -> dict[str, Any]:
    """A one-node workflow whose request headers name ``secret_names`` (H0, H1, ...)."""
    headers = {f"H{i}": f"Bearer {{{{ secrets.{s} }}}}" for i, s in enumerate(secret_names)}
    node = {
        "id": "fetch",
        "type": "http",
        "parameters": {"method": "GET", "url": "https://api.example/x", "headers": headers},
    }
    return {"name": name, "nodes": [node], **extra}


async def put(api: Api, name: str, value: str) -> r.Secret:
    result: r.Secret = await api("secret_put", r.SecretPut(name=name, value=value))
    return result


async def resolve(registry: Registry, tenant: str, *names: str) -> dict[str, str]:
    answer = await registry.call(
        "secret_resolve", r.SecretResolve(names=list(names)), tenant=tenant, principal=EXECUTOR
    )
    values: dict[str, str] = answer.values
    return values


async def refused(call: Any) -> Any:
    with pytest.raises(RemoteError) as caught:
        await call
    return caught.value.problem


# --- the operations -----------------------------------------------------------------------


async def test_put_list_replace_delete(api: Api, registry: Registry) -> None:
    first = await put(api, "API_TOKEN", "one")
    assert set(msgspec.structs.asdict(first)) == {"name", "created_at", "updated_at"}
    assert first.name == "API_TOKEN" and first.created_at == first.updated_at
    await put(api, "DB_PASSWORD", "two")
    listing = await api("secret_list", r.SecretList())
    assert [s.name for s in listing.items] == ["API_TOKEN", "DB_PASSWORD"]

    again = await put(api, "API_TOKEN", "three")
    assert again.created_at == first.created_at and again.updated_at > first.updated_at
    assert await resolve(registry, api.tenant.id, "API_TOKEN") == {"API_TOKEN": "three"}

    deleted = await api("secret_delete", r.SecretDelete(name="API_TOKEN"))
    assert deleted.name == "API_TOKEN" and deleted.invalidated == []
    problem = await refused(api("secret_delete", r.SecretDelete(name="API_TOKEN")))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    listing = await api("secret_list", r.SecretList())
    assert [s.name for s in listing.items] == ["DB_PASSWORD"]


async def test_mutations_are_audited_without_values(api: Api) -> None:
    value = value_of("audited")
    await put(api, "AUDITED", value)
    await put(api, "AUDITED", value + "-2")
    await api("secret_delete", r.SecretDelete(name="AUDITED"))
    page = await api("audit_list", r.AuditList(target="secret:AUDITED"))
    actions = [(e.action, e.detail.get("created"), e.outcome) for e in page.items]
    assert actions == [
        ("secret.delete", None, "success"),
        ("secret.put", False, "success"),
        ("secret.put", True, "success"),
    ]
    assert all(e.actor == api.tenant.principal for e in page.items)
    assert value not in encode(page).decode()


async def test_a_value_appears_in_no_reply_log_or_row(
    api: Api, registry: Registry, postgres_url: str
) -> None:
    value = value_of("never-shown")
    with structlog.testing.capture_logs() as logs:
        replies = [
            await put(api, "HIDDEN", value),
            await put(api, "HIDDEN", value),
            await api("secret_list", r.SecretList()),
            await api("audit_list", r.AuditList()),
        ]
        for bad in ("lower", ""):  # failures log their detail: it must not hold the value
            await refused(api("secret_put", r.SecretPut(name=bad, value=value)))
        await refused(api("secret_put", r.SecretPut(name="BIG", value=value * 5000)))
    for reply in replies:
        assert value not in encode(reply).decode()
    assert logs and value not in repr(logs)
    conn = await asyncpg.connect(postgres_url)  # the schema owner: no row-level security
    try:
        row = await conn.fetchrow(
            "SELECT * FROM secrets WHERE tenant_id = $1 AND name = 'HIDDEN'", api.tenant.id
        )
        others = await conn.fetch(
            "SELECT detail::text AS t FROM audit_log WHERE tenant_id = $1"
            " UNION ALL SELECT payload::text FROM outbox WHERE tenant_id = $1",
            api.tenant.id,
        )
    finally:
        await conn.close()
    assert row is not None and row["key_id"] == registry.settings.secrets_key_id
    assert len(row["nonce"]) == 12 and len(row["ciphertext"]) == len(value) + 16
    for column in row.values():
        assert value not in str(column)
        if isinstance(column, bytes):
            assert value.encode() not in column
    assert others and all(value not in other["t"] for other in others)


# --- resolve: values out, to Flowmesh's services only ----------------------------------------


async def test_resolve_is_for_services_only(
    api: Api, registry: Registry, tenant: TenantHandle
) -> None:
    await put(api, "A_TOKEN", "alpha")
    await put(api, "B_TOKEN", "béta ✓")
    assert await resolve(registry, tenant.id, "A_TOKEN", "B_TOKEN", "A_TOKEN") == {
        "A_TOKEN": "alpha",
        "B_TOKEN": "béta ✓",
    }
    assert await resolve(registry, tenant.id) == {}
    problem = await refused(api("secret_resolve", r.SecretResolve(names=["A_TOKEN"])))
    assert (problem.status, problem.code) == (403, "FORBIDDEN")
    denied = await api("audit_list", r.AuditList(action="registry.secret_resolve"))
    assert [(e.outcome, e.detail["reason"]) for e in denied.items] == [("denied", "FORBIDDEN")]
    problem = await refused(
        registry.call(
            "secret_resolve",
            r.SecretResolve(names=["A_TOKEN"]),
            tenant=tenant.id,
            principal="platform:test-admin",
        )
    )
    assert problem.code == "FORBIDDEN"


async def test_resolve_names_every_missing_secret(
    api: Api, registry: Registry, tenant: TenantHandle
) -> None:
    await put(api, "PRESENT", "here")
    problem = await refused(resolve(registry, tenant.id, "GONE", "PRESENT", "ALSO_GONE"))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    assert "GONE" in problem.detail and "ALSO_GONE" in problem.detail
    assert "here" not in encode(problem).decode()
    assert [(e.path, e.code) for e in problem.errors] == [
        ("names[0]", "NOT_FOUND"),
        ("names[2]", "NOT_FOUND"),
    ]


async def test_a_service_putting_into_an_unknown_tenant_gets_not_found(registry: Registry) -> None:
    problem = await refused(
        registry.call(
            "secret_put",
            r.SecretPut(name="X", value="v"),
            tenant="nobody-here",
            principal=EXECUTOR,
        )
    )
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    assert "nobody-here" in problem.detail


# --- tenant isolation -------------------------------------------------------------------------


async def test_another_tenant_cannot_list_delete_or_resolve(
    api: Api, other_api: Api, registry: Registry, tenant: TenantHandle
) -> None:
    await put(api, "MINE", "a-value")
    assert (await other_api("secret_list", r.SecretList())).items == []
    problem = await refused(other_api("secret_delete", r.SecretDelete(name="MINE")))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    other = other_api.tenant.id
    problem = await refused(resolve(registry, other, "MINE"))
    assert (problem.status, problem.code) == (404, "NOT_FOUND")
    await put(other_api, "MINE", "b-value")  # the same name, another tenant: another secret
    assert await resolve(registry, other, "MINE") == {"MINE": "b-value"}
    assert await resolve(registry, tenant.id, "MINE") == {"MINE": "a-value"}
    for op, request in [
        ("secret_list", r.SecretList()),
        ("secret_put", r.SecretPut(name="MINE", value="stolen")),
        ("secret_delete", r.SecretDelete(name="MINE")),
    ]:
        problem = await refused(
            registry.call(op, request, tenant=tenant.id, principal=other_api.tenant.principal)
        )
        assert problem.code == "CROSS_TENANT_ACCESS_DENIED", op
    assert await resolve(registry, tenant.id, "MINE") == {"MINE": "a-value"}


async def test_a_row_copied_to_another_tenant_or_name_does_not_open(
    api: Api, other_api: Api, registry: Registry, postgres_url: str
) -> None:
    await put(api, "ORIGINAL", "bound")
    conn = await asyncpg.connect(postgres_url)
    try:
        for tenant, name in [(other_api.tenant.id, "ORIGINAL"), (api.tenant.id, "RENAMED")]:
            await conn.execute(
                "INSERT INTO secrets (tenant_id, name, ciphertext, nonce, key_id)"
                " SELECT $2, $3, ciphertext, nonce, key_id FROM secrets"
                " WHERE tenant_id = $1 AND name = 'ORIGINAL'",
                api.tenant.id,
                tenant,
                name,
            )
    finally:
        await conn.close()
    for tenant, name in [(other_api.tenant.id, "ORIGINAL"), (api.tenant.id, "RENAMED")]:
        problem = await refused(resolve(registry, tenant, name))
        assert (problem.status, problem.code) == (500, "INTERNAL"), (tenant, name)
        assert "bound" not in encode(problem).decode()
    assert await resolve(registry, api.tenant.id, "ORIGINAL") == {"ORIGINAL": "bound"}


# --- bad input ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["lower", "A.B", "A" * 65, "", "1ABC", "A-B", "A B", "ÄB"])
async def test_bad_names_are_refused_with_a_path(api: Api, registry: Registry, name: str) -> None:
    for op, request, path in [
        ("secret_put", r.SecretPut(name=name, value="v"), "name"),
        ("secret_delete", r.SecretDelete(name=name), "name"),
    ]:
        problem = await refused(api(op, request))
        assert (problem.status, problem.code) == (422, "VALIDATION_FAILED"), op
        assert [e.path for e in problem.errors] == [path], op
    problem = await refused(resolve(registry, api.tenant.id, "GOOD", name))
    assert problem.code == "VALIDATION_FAILED"
    assert [e.path for e in problem.errors] == ["names[1]"]


async def test_the_longest_name_and_value_are_fine(api: Api, registry: Registry) -> None:
    name = "A" * 64
    value = "v" * 64 * 1024
    await put(api, name, value)
    assert await resolve(registry, api.tenant.id, name) == {name: value}


@pytest.mark.parametrize("value", ["", "v" * (64 * 1024 + 1), "é" * (32 * 1024 + 1)])
async def test_empty_and_oversized_values_are_refused(api: Api, value: str) -> None:
    problem = await refused(put(api, "SIZED", value))
    assert (problem.status, problem.code) == (422, "VALIDATION_FAILED")
    assert [e.path for e in problem.errors] == ["value"]
    assert (await api("secret_list", r.SecretList())).items == []


# --- no key configured -------------------------------------------------------------------------


@pytest_asyncio.fixture(loop_scope="session")
async def keyless(registry_settings: RegistrySettings, nc: Any) -> AsyncIterator[Registry]:
    """A second registry (its own subjects and streams) started without a secrets key."""
    token = secrets.token_hex(4)
    settings = msgspec.structs.replace(
        registry_settings,
        subject_prefix=f"fmk{token}",
        stream_prefix=f"FMK{token.upper()}",
        secrets_key="",
    )
    try:
        async with AsyncExitStack() as stack:
            app = await start_registry(settings, stack)
            client = RpcClient(nc, Subjects(settings.subject_prefix), timeout=5.0)
            yield Registry(app, client, settings)
    finally:
        names = stream_names(settings.stream_prefix)
        js = nc.jetstream()
        for stream in msgspec.structs.astuple(names):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)


async def test_without_a_key_the_registry_runs_and_secrets_are_unavailable(
    keyless: Registry, tenant: TenantHandle
) -> None:
    assert keyless.settings.secrets_keyring is None
    listing = await keyless.call(
        "workflow_list", r.WorkflowList(), tenant=tenant.id, principal=tenant.principal
    )
    assert listing.items == []
    for op, request, principal in [
        ("secret_put", r.SecretPut(name="ANY", value="v"), tenant.principal),
        ("secret_delete", r.SecretDelete(name="ANY"), tenant.principal),
        ("secret_list", r.SecretList(), tenant.principal),
        ("secret_resolve", r.SecretResolve(names=["ANY"]), EXECUTOR),
    ]:
        problem = await refused(keyless.call(op, request, tenant=tenant.id, principal=principal))
        assert (problem.status, problem.code) == (503, "UNAVAILABLE"), op
        assert "no secrets key configured" in problem.detail, op


# --- workflows that name secrets -------------------------------------------------------------


async def test_a_workflow_naming_a_missing_secret_is_refused(api: Api) -> None:
    definition = using(unique("needs-token"), "TOKEN")
    problem = await refused(api("workflow_create", r.WorkflowCreate(definition=definition)))
    assert (problem.status, problem.code) == (422, "MISSING_VARIABLE")
    assert [(e.path, e.code) for e in problem.errors] == [(HEADER, "MISSING_VARIABLE")]
    assert "TOKEN" in problem.errors[0].message
    checked = await api("workflow_validate", r.WorkflowValidate(definition=definition))
    assert not checked.valid and checked.errors[0].path == HEADER

    await put(api, "TOKEN", "t")
    checked = await api("workflow_validate", r.WorkflowValidate(definition=definition))
    assert checked.valid and checked.errors == []
    created = await api("workflow_create", r.WorkflowCreate(definition=definition))
    assert created.validation_status == "valid"

    changed = using(created.name, "TOKEN", "OTHER")
    problem = await refused(
        api("workflow_update", r.WorkflowUpdate(id=created.id, definition=changed))
    )
    assert problem.code == "MISSING_VARIABLE"
    assert [e.path for e in problem.errors] == ["nodes[0].parameters.headers.H1"]


async def test_deleting_a_secret_invalidates_its_versions_and_putting_it_back_restores_them(
    api: Api,
) -> None:
    await put(api, "TOKEN", "t")
    first = await api("workflow_create", r.WorkflowCreate(definition=using(unique("wf"), "TOKEN")))
    changed = using(first.name, "TOKEN", description="v2")
    second = await api("workflow_update", r.WorkflowUpdate(id=first.id, definition=changed))
    assert second.version == 2
    bystander = await api.create(unique("no-secrets"))

    deleted = await api("secret_delete", r.SecretDelete(name="TOKEN"))
    assert sorted((v.workflow_id, v.version) for v in deleted.invalidated) == [
        (first.id, 1),
        (first.id, 2),
    ]
    for version in (1, 2):
        got = await api("workflow_get", r.WorkflowGet(id=first.id, version=version))
        assert got.validation_status == "invalid"
        assert [(e.code, e.path) for e in got.validation_errors] == [("MISSING_VARIABLE", "nodes")]
        assert "secret TOKEN" in got.validation_errors[0].message
    history = await api("workflow_versions", r.WorkflowVersions(id=first.id))
    assert {v.validation_status for v in history.items} == {"invalid"}
    still = await api("workflow_get", r.WorkflowGet(id=bystander.id))
    assert still.validation_status == "valid"

    await put(api, "TOKEN", "t2")
    for version in (1, 2):
        got = await api("workflow_get", r.WorkflowGet(id=first.id, version=version))
        assert (got.validation_status, got.validation_errors) == ("valid", [])
    audit = await api("audit_list", r.AuditList(action="secret.put", target="secret:TOKEN"))
    assert sorted(audit.items[0].detail["revalidated"]) == [f"{first.id}@1", f"{first.id}@2"]


async def test_a_version_missing_two_secrets_is_valid_only_when_both_are_back(api: Api) -> None:
    await put(api, "ONE", "1")
    await put(api, "TWO", "2")
    wf = await api(
        "workflow_create", r.WorkflowCreate(definition=using(unique("two"), "ONE", "TWO"))
    )
    await api("secret_delete", r.SecretDelete(name="ONE"))
    await api("secret_delete", r.SecretDelete(name="TWO"))
    got = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert got.validation_status == "invalid" and len(got.validation_errors) == 2
    await put(api, "ONE", "1")
    got = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert got.validation_status == "invalid"
    assert [e.message for e in got.validation_errors] == ["secret TWO was deleted"]
    await put(api, "TWO", "2")
    got = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert (got.validation_status, got.validation_errors) == ("valid", [])


async def test_a_version_invalid_for_a_deleted_subworkflow_stays_invalid(api: Api) -> None:
    await put(api, "TOKEN", "t")
    child = await api.create(unique("child"))
    parent_definition = using(unique("parent"), "TOKEN")
    parent_definition["nodes"].append(
        {"id": "call", "type": "workflow", "parameters": {"workflow_id": child.id}}
    )
    parent_definition["edges"] = [{"from": "call", "to": "fetch"}]
    parent = await api("workflow_create", r.WorkflowCreate(definition=parent_definition))
    assert parent.validation_status == "valid"

    await api("workflow_delete", r.WorkflowDelete(id=child.id))
    await api("secret_delete", r.SecretDelete(name="TOKEN"))
    got = await api("workflow_get", r.WorkflowGet(id=parent.id))
    assert got.validation_status == "invalid" and len(got.validation_errors) == 2

    await put(api, "TOKEN", "t")
    got = await api("workflow_get", r.WorkflowGet(id=parent.id))
    assert got.validation_status == "invalid"
    assert len(got.validation_errors) == 1 and child.id in got.validation_errors[0].message


async def test_a_secret_checked_for_a_new_version_cannot_vanish_before_it_commits(
    api: Api, registry: Registry
) -> None:
    """Creating a version holds the names it was checked against: a delete waits for it."""
    await put(api, "HELD", "h")
    tenant = api.tenant.id
    async with registry.app.db.tenant_tx(tenant) as conn:
        assert "HELD" in await known_names(conn, tenant, hold=True)
        deleting = asyncio.ensure_future(api("secret_delete", r.SecretDelete(name="HELD")))
        done, _ = await asyncio.wait({deleting}, timeout=0.3)
        assert not done, "the delete did not wait for the transaction holding the name"
        replaced = await put(api, "HELD", "h2")  # replacing a value does not wait
        assert replaced.name == "HELD"
    deleted = await asyncio.wait_for(deleting, timeout=5)
    assert deleted.name == "HELD"
