"""Tenants and API keys: created once, shown once, stored hashed, revocable."""

from __future__ import annotations

from typing import Any

import asyncpg
import pytest

from flowmesh_proto import registry as r
from flowmesh_shared.errors import RemoteError

from .conftest import GATEWAY, PLATFORM, Registry, TenantHandle, new_tenant, raw_call

pytestmark = pytest.mark.integration


async def test_tenant_create_and_get(registry: Registry) -> None:
    handle = await new_tenant(registry, "acme")
    assert handle.admin_key.startswith(f"fm_{handle.id}_")
    got = await registry.call("tenant_get", r.TenantGet(id=handle.id), principal=PLATFORM)
    assert got.id == handle.id
    with pytest.raises(RemoteError) as caught:
        await registry.call("tenant_create", r.TenantCreate(id=handle.id), principal=PLATFORM)
    assert caught.value.problem.status == 409


@pytest.mark.parametrize(
    "bad", ["a.>", "A", "x", "rpc", "admin", "sys", "-lead", "a b", "é-t", "a" * 64]
)
async def test_tenant_ids_that_are_not_subject_tokens_are_refused(
    registry: Registry, bad: str
) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call("tenant_create", r.TenantCreate(id=bad), principal=PLATFORM)
    assert caught.value.problem.code == "VALIDATION_FAILED"


async def test_only_platform_creates_tenants(registry: Registry, tenant: TenantHandle) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "tenant_create", r.TenantCreate(id="sneaky-tenant"), principal=tenant.principal
        )
    assert caught.value.problem.code == "FORBIDDEN"
    with pytest.raises(RemoteError) as caught:
        await registry.call("workflow_list", r.WorkflowList(), tenant=tenant.id, principal=PLATFORM)
    assert caught.value.problem.code == "FORBIDDEN"


async def test_key_lifecycle(registry: Registry, tenant: TenantHandle) -> None:
    created = await registry.call(
        "apikey_create",
        r.ApiKeyCreate(name="ci", role="operator"),
        tenant=tenant.id,
        principal=tenant.principal,
    )
    assert created.role == "operator" and created.key.startswith(f"fm_{tenant.id}_")
    who = await registry.call("apikey_verify", r.ApiKeyVerify(key=created.key), principal=GATEWAY)
    assert (who.tenant, who.key_id, who.role) == (tenant.id, created.id, "operator")
    listing = await registry.call(
        "apikey_list", r.ApiKeyList(), tenant=tenant.id, principal=tenant.principal
    )
    assert {k.id for k in listing.items} == {tenant.admin_key_id, created.id}
    assert "key" not in r.ApiKey.__struct_fields__
    revoked = await registry.call(
        "apikey_revoke",
        r.ApiKeyRevoke(id=created.id),
        tenant=tenant.id,
        principal=tenant.principal,
    )
    assert revoked.revoked_at is not None
    with pytest.raises(RemoteError) as caught:
        await registry.call("apikey_verify", r.ApiKeyVerify(key=created.key), principal=GATEWAY)
    assert caught.value.problem.code == "UNAUTHENTICATED"


@pytest.mark.parametrize(
    "key",
    ["", "fm_", "nonsense", "fm_a.>_" + "x" * 43, "fm_nobody-here_" + "x" * 43, "Bearer x"],
)
async def test_unknown_keys_do_not_verify(registry: Registry, key: str) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call("apikey_verify", r.ApiKeyVerify(key=key), principal=GATEWAY)
    assert caught.value.problem.code == "UNAUTHENTICATED"


async def test_a_key_with_another_tenants_name_does_not_verify(
    registry: Registry, tenant: TenantHandle, other_tenant: TenantHandle
) -> None:
    secret = tenant.admin_key.split("_", 2)[2]
    forged = f"fm_{other_tenant.id}_{secret}"
    with pytest.raises(RemoteError) as caught:
        await registry.call("apikey_verify", r.ApiKeyVerify(key=forged), principal=GATEWAY)
    assert caught.value.problem.code == "UNAUTHENTICATED"


async def test_only_services_verify_keys(registry: Registry, tenant: TenantHandle) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "apikey_verify", r.ApiKeyVerify(key=tenant.admin_key), principal=tenant.principal
        )
    assert caught.value.problem.code == "FORBIDDEN"


async def test_a_key_is_checked_by_id_for_services_in_its_own_tenant_only(
    registry: Registry, tenant: TenantHandle
) -> None:
    """What a console session asks: the key it was signed in with, by id, until revoked."""
    check = r.ApiKeyCheck(id=tenant.admin_key_id)
    who = await registry.call("apikey_check", check, tenant=tenant.id, principal=GATEWAY)
    assert (who.tenant, who.key_id, who.role) == (tenant.id, tenant.admin_key_id, "admin")
    with pytest.raises(RemoteError) as refused:
        await registry.call("apikey_check", check, tenant=tenant.id, principal=tenant.principal)
    assert refused.value.code.name == "FORBIDDEN"
    other = await new_tenant(registry, "o")
    for tenant_id, key_id in ((other.id, tenant.admin_key_id), (tenant.id, "not-a-uuid")):
        with pytest.raises(RemoteError) as unknown:
            await registry.call(
                "apikey_check", r.ApiKeyCheck(id=key_id), tenant=tenant_id, principal=GATEWAY
            )
        assert unknown.value.code.name == "UNAUTHENTICATED"
    await registry.call(
        "apikey_revoke",
        r.ApiKeyRevoke(id=tenant.admin_key_id),
        tenant=tenant.id,
        principal=tenant.principal,
    )
    with pytest.raises(RemoteError) as revoked:
        await registry.call("apikey_check", check, tenant=tenant.id, principal=GATEWAY)
    assert revoked.value.code.name == "UNAUTHENTICATED"


async def test_keys_are_stored_hashed(
    registry: Registry, tenant: TenantHandle, postgres_url: str
) -> None:
    conn = await asyncpg.connect(postgres_url)
    try:
        rows = await conn.fetch("SELECT * FROM api_keys WHERE tenant_id = $1", tenant.id)
    finally:
        await conn.close()
    assert rows
    for row in rows:
        assert all(tenant.admin_key not in str(value) for value in row.values())


async def test_bad_role_is_refused(registry: Registry, tenant: TenantHandle, nc: Any) -> None:
    problem = await raw_call(
        registry,
        nc,
        "apikey_create",
        b'{"name": "x", "role": "god"}',
        {"Fm-Tenant": tenant.id, "Fm-Principal": tenant.principal},
    )
    assert problem.code == "VALIDATION_FAILED"
    assert problem.errors[0].path.endswith("role")


async def test_tenant_update_rate_limit(registry: Registry, tenant: TenantHandle) -> None:
    updated = await registry.call(
        "tenant_update",
        r.TenantUpdate(id=tenant.id, name="Renamed", rate_limit=r.RateLimit(rate=5, burst=10)),
        principal=PLATFORM,
    )
    assert updated.name == "Renamed" and updated.rate_limit == r.RateLimit(rate=5, burst=10)
    got = await registry.call("tenant_get", r.TenantGet(id=tenant.id), principal=GATEWAY)
    assert got.rate_limit == r.RateLimit(rate=5, burst=10)
    kept = await registry.call("tenant_update", r.TenantUpdate(id=tenant.id), principal=PLATFORM)
    assert kept.rate_limit == r.RateLimit(rate=5, burst=10)
    cleared = await registry.call(
        "tenant_update", r.TenantUpdate(id=tenant.id, rate_limit=None), principal=PLATFORM
    )
    assert cleared.rate_limit is None and cleared.name == "Renamed"
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "tenant_update", r.TenantUpdate(id=tenant.id, name="x"), principal=tenant.principal
        )
    assert caught.value.problem.code == "FORBIDDEN"


async def test_tenant_weight_and_max_running(registry: Registry, tenant: TenantHandle) -> None:
    updated = await registry.call(
        "tenant_update", r.TenantUpdate(id=tenant.id, weight=3, max_running=7), principal=PLATFORM
    )
    assert (updated.weight, updated.max_running) == (3, 7)
    got = await registry.call("tenant_get", r.TenantGet(id=tenant.id), principal=GATEWAY)
    assert (got.weight, got.max_running) == (3, 7)
    kept = await registry.call(
        "tenant_update", r.TenantUpdate(id=tenant.id, max_queued_runs=9), principal=PLATFORM
    )
    assert (kept.weight, kept.max_running, kept.max_queued_runs) == (3, 7, 9)
    reset = await registry.call(
        "tenant_update", r.TenantUpdate(id=tenant.id, weight=None), principal=PLATFORM
    )
    assert (reset.weight, reset.max_running) == (None, 7)
    audit = await registry.call(
        "audit_list",
        r.AuditList(action="tenant.update"),
        tenant=tenant.id,
        principal=tenant.principal,
    )
    details = [entry.detail for entry in reversed(audit.items)]
    assert details[0]["weight"] == 3 and details[0]["max_running"] == 7
    assert "weight" in details[-1] and details[-1]["weight"] is None
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "tenant_update", r.TenantUpdate(id=tenant.id, weight=2), principal=tenant.principal
        )
    assert caught.value.problem.code == "FORBIDDEN"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("weight", 0),
        ("weight", r.MAX_TENANT_WEIGHT + 1),
        ("max_running", 0),
        ("max_running", r.MAX_TENANT_RUNNING + 1),
    ],
)
async def test_tenant_weight_and_max_running_out_of_range(
    registry: Registry, tenant: TenantHandle, field: str, value: int
) -> None:
    with pytest.raises(RemoteError) as caught:
        await registry.call(
            "tenant_update", r.TenantUpdate(id=tenant.id, **{field: value}), principal=PLATFORM
        )
    assert caught.value.problem.status == 422
    assert caught.value.problem.errors[0].path == field
    kept = await registry.call("tenant_get", r.TenantGet(id=tenant.id), principal=PLATFORM)
    assert getattr(kept, field) is None
