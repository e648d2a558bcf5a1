"""Triggers in the registry: the catalogue across tenants (the scheduler's full reload), and
webhook secrets (made when the trigger is stored, shown once, sealed, rotated, read by
Flowmesh's services only)."""

from __future__ import annotations

import contextlib
import secrets
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import timedelta
from typing import Any

import asyncpg
import msgspec
import pytest
import structlog
from nats.js.errors import NotFoundError

from flowmesh_proto import registry as r
from flowmesh_proto.codec import encode
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_registry.main import start_registry
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.errors import RemoteError
from flowmesh_shared.rpc import RpcClient
from tests.helpers import until

from .conftest import GATEWAY, Api, Registry, TenantHandle, new_tenant, simple_definition, unique

pytestmark = pytest.mark.integration

SCHEDULER = "service:scheduler"
CRON = {"id": "nightly", "kind": "cron", "cron": "0 2 * * *"}
HOOK = {"id": "hook", "kind": "webhook"}


async def refused(call: Any) -> RemoteError:
    with pytest.raises(RemoteError) as info:
        await call
    return info.value


async def catalogue(registry: Registry, limit: int, **after: str) -> r.CataloguePage:
    page: r.CataloguePage = await registry.call(
        "trigger_catalogue", r.TriggerCatalogue(limit=limit, **after), principal=SCHEDULER
    )
    return page


async def whole_catalogue(registry: Registry, limit: int) -> list[r.CatalogueEntry]:
    items: list[r.CatalogueEntry] = []
    page = await catalogue(registry, limit)
    items += page.items
    while page.has_more:
        last = page.items[-1]
        page = await catalogue(
            registry, limit, after_tenant=last.tenant, after_workflow_id=last.workflow_id
        )
        assert len(page.items) <= limit
        items += page.items
    return items


# --- the catalogue ---------------------------------------------------------------------------


async def test_the_catalogue_pages_across_tenants(registry: Registry) -> None:
    first, second = await new_tenant(registry, "ca"), await new_tenant(registry, "cb")
    apis = {t.id: Api(registry, t) for t in (first, second)}
    expected: dict[tuple[str, str], tuple[bool, list[dict[str, Any]]]] = {}
    for tenant, count in ((first, 3), (second, 2)):
        api = apis[tenant.id]
        for i in range(count):
            triggers = [CRON] if i % 2 else [CRON, HOOK]
            wf = await api.create(unique("cat"), triggers=triggers)
            expected[(tenant.id, wf.id)] = (True, wf.triggers)
        await api.create(unique("no-triggers"))  # absent
        gone = await api.create(unique("gone"), triggers=[CRON])
        await api("workflow_delete", r.WorkflowDelete(id=gone.id))  # absent
    off = await apis[first.id].create(unique("off"), triggers=[HOOK], enabled=False)
    expected[(first.id, off.id)] = (False, off.triggers)

    items = await whole_catalogue(registry, limit=2)
    keys = [(item.tenant, item.workflow_id) for item in items]
    assert keys == sorted(keys) and len(set(keys)) == len(keys)  # one order, no repeats
    mine = {(i.tenant, i.workflow_id): i for i in items if i.tenant in apis}
    assert set(mine) == set(expected)
    for key, (enabled, triggers) in expected.items():
        item = mine[key]
        assert (item.enabled, item.valid, item.version, item.triggers) == (
            enabled,
            True,
            1,
            triggers,
        )
    big = await whole_catalogue(registry, limit=1000)
    assert [(i.tenant, i.workflow_id) for i in big] == keys


async def test_the_catalogue_shows_the_current_version(registry: Registry, api: Api) -> None:
    wf = await api.create(unique("moves"), triggers=[CRON])
    definition = simple_definition(wf.name, triggers=[{**CRON, "cron": "0 3 * * *"}])
    await api("workflow_update", r.WorkflowUpdate(id=wf.id, definition=definition))
    found = [i for i in await whole_catalogue(registry, 1000) if i.workflow_id == wf.id]
    assert [(i.version, i.triggers[0]["cron"]) for i in found] == [(2, "0 3 * * *")]
    await api("workflow_update", r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name)))
    assert not [i for i in await whole_catalogue(registry, 1000) if i.workflow_id == wf.id]


async def test_the_catalogue_is_for_services_only(registry: Registry, tenant: TenantHandle) -> None:
    for principal in (tenant.principal, "platform:test-admin"):
        problem = await refused(
            registry.call("trigger_catalogue", r.TriggerCatalogue(), principal=principal)
        )
        assert problem.code.name == "FORBIDDEN"
    problem = await refused(
        registry.call(
            "trigger_catalogue", r.TriggerCatalogue(), tenant=tenant.id, principal=GATEWAY
        )
    )
    assert problem.code.name == "VALIDATION_FAILED"
    entries = await Api(registry, tenant)(
        "audit_list", r.AuditList(action="registry.trigger_catalogue")
    )
    assert [(e.outcome, e.target) for e in entries.items] == [("denied", "tenants:all")]


@pytest.mark.parametrize(
    ("request_", "path"),
    [
        (r.TriggerCatalogue(limit=0), "limit"),
        (r.TriggerCatalogue(limit=1001), "limit"),
        (r.TriggerCatalogue(limit=-5), "limit"),
        (r.TriggerCatalogue(after_tenant="a-tenant"), "after_workflow_id"),
        (r.TriggerCatalogue(after_workflow_id=str(uuid.uuid4())), "after_tenant"),
        (r.TriggerCatalogue(after_tenant="a-tenant", after_workflow_id="x"), "after_workflow_id"),
        (
            r.TriggerCatalogue(after_tenant="A.>", after_workflow_id=str(uuid.uuid4())),
            "after_tenant",
        ),
    ],
)
async def test_bad_catalogue_requests_name_their_field(
    registry: Registry, request_: r.TriggerCatalogue, path: str
) -> None:
    problem = await refused(registry.call("trigger_catalogue", request_, principal=SCHEDULER))
    assert problem.code.name == "VALIDATION_FAILED"
    assert [item.path for item in problem.errors] == [path]


# --- webhook secrets -------------------------------------------------------------------------


async def secrets_of(registry: Registry, tenant: str, wid: str, tid: str) -> r.WebhookSecrets:
    request = r.WebhookSecretGet(workflow_id=wid, trigger_id=tid)
    found: r.WebhookSecrets = await registry.call(
        "webhook_secret_get", request, tenant=tenant, principal=GATEWAY
    )
    return found


async def test_a_webhook_trigger_gets_a_secret_shown_once(registry: Registry, api: Api) -> None:
    wf = await api.create(
        unique("hooked"), triggers=[HOOK, CRON, {"id": "second", "kind": "webhook"}]
    )
    assert isinstance(wf.webhook_secrets, dict) and sorted(wf.webhook_secrets) == ["hook", "second"]
    secret = wf.webhook_secrets["hook"]
    assert secret.startswith("whsec_") and len(secret) == len("whsec_") + 43
    assert secret != wf.webhook_secrets["second"]
    again = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert (
        again.webhook_secrets is msgspec.UNSET and "webhook_secrets" not in encode(again).decode()
    )
    listing = await api("workflow_list", r.WorkflowList(q=wf.name))
    assert secret not in encode(listing).decode()
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert [k.secret for k in found.secrets] == [secret]
    assert (found.version, found.enabled, found.valid) == (1, True, True)
    assert (found.trigger_exists, found.trigger_enabled) == (True, True)
    assert secret not in repr(found) and secret not in repr(wf)


async def test_updates_keep_secrets_and_make_new_ones_only(registry: Registry, api: Api) -> None:
    wf = await api.create(unique("kept"), triggers=[HOOK])
    first = wf.webhook_secrets["hook"]  # type: ignore[index]
    definition = simple_definition(wf.name, triggers=[HOOK, {"id": "new", "kind": "webhook"}])
    updated = await api("workflow_update", r.WorkflowUpdate(id=wf.id, definition=definition))
    assert list(updated.webhook_secrets) == ["new"]
    # The trigger goes away: its secret stays, verifies nothing (no such trigger) ...
    gone = await api(
        "workflow_update", r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name))
    )
    assert gone.webhook_secrets is msgspec.UNSET
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert (found.trigger_exists, [k.secret for k in found.secrets]) == (False, [first])
    # ... and comes back with it (not shown again); a rollback stores what version 1 had.
    back = await api("workflow_patch", r.WorkflowPatch(id=wf.id, current_version=1))
    assert back.version == 4 and back.webhook_secrets is msgspec.UNSET
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert (found.trigger_exists, [k.secret for k in found.secrets]) == (True, [first])


async def test_every_write_path_shows_the_secrets_it_made(api: Api) -> None:
    name = unique("paths")
    applied = await api(
        "workflow_apply",
        r.WorkflowApply(name=name, definition=simple_definition(name, triggers=[HOOK])),
    )
    assert list(applied.workflow.webhook_secrets) == ["hook"]
    clone = await api(
        "workflow_clone", r.WorkflowClone(id=applied.workflow.id, name=unique("clone"))
    )
    assert list(clone.webhook_secrets) == ["hook"]
    assert clone.webhook_secrets["hook"] != applied.workflow.webhook_secrets["hook"]
    document = encode(simple_definition(unique("imported"), triggers=[HOOK])).decode()
    imported = await api("workflow_import", r.WorkflowImport(document=document))
    assert list(imported.webhook_secrets) == ["hook"]
    batch = r.WorkflowBatch(
        operations=[
            r.BatchCreate(definition=simple_definition(unique("b1"), triggers=[HOOK])),
            r.BatchCreate(definition=simple_definition(unique("b2"))),
        ]
    )
    results = await api("workflow_batch", batch)
    assert list(results.results[0].webhook_secrets) == ["hook"]
    assert results.results[1].webhook_secrets is msgspec.UNSET
    assert "webhook_secrets" not in encode(results.results[1]).decode()


async def test_secrets_are_sealed_and_never_audited_or_logged(
    registry: Registry, api: Api, postgres_url: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        wf = await api.create(unique("sealed"), triggers=[HOOK])
        rotated = await api(
            "webhook_secret_rotate", r.WebhookSecretRotate(workflow_id=wf.id, trigger_id="hook")
        )
        await secrets_of(registry, api.tenant.id, wf.id, "hook")
        bad = r.WebhookSecretRotate(workflow_id=wf.id, trigger_id="missing")
        await refused(api("webhook_secret_rotate", bad))  # failures log their detail
    values = [wf.webhook_secrets["hook"], rotated.secret]  # type: ignore[index]
    assert logs and not any(v in repr(logs) for v in values)
    conn = await asyncpg.connect(postgres_url)  # the schema owner: no row-level security
    try:
        row = await conn.fetchrow(
            "SELECT * FROM webhook_secrets WHERE tenant_id = $1 AND workflow_id = $2",
            api.tenant.id,
            uuid.UUID(wf.id),
        )
        texts = await conn.fetch(
            "SELECT detail::text AS t FROM audit_log WHERE tenant_id = $1"
            " UNION ALL SELECT payload::text FROM outbox WHERE tenant_id = $1",
            api.tenant.id,
        )
        forced = await conn.fetchrow(
            "SELECT relrowsecurity, relforcerowsecurity FROM pg_class"
            " WHERE relname = 'webhook_secrets'"
        )
    finally:
        await conn.close()
    assert row is not None and row["key_id"] == registry.settings.secrets_key_id
    assert tuple(forced) == (True, True)
    for column in row.values():
        for value in values:
            assert value not in str(column) and value.encode() not in bytes(str(column), "utf8")
            if isinstance(column, bytes):
                assert value.encode() not in column
    assert texts and not any(v in t["t"] for t in texts for v in values)
    page = await api("audit_list", r.AuditList(target=f"workflow:{wf.id}"))
    actions = [e.action for e in page.items]
    assert "webhook.secret_create" in actions and "webhook.secret_rotate" in actions


async def test_webhook_secrets_are_read_by_services_only(
    registry: Registry, api: Api, other_api: Api
) -> None:
    wf = await api.create(unique("private"), triggers=[HOOK, CRON])
    request = r.WebhookSecretGet(workflow_id=wf.id, trigger_id="hook")
    problem = await refused(
        registry.call(
            "webhook_secret_get", request, tenant=api.tenant.id, principal=api.tenant.principal
        )
    )
    assert problem.code.name == "FORBIDDEN"
    for tenant, wid, tid, code in [
        (other_api.tenant.id, wf.id, "hook", "WORKFLOW_NOT_FOUND"),  # another tenant's
        (api.tenant.id, str(uuid.uuid4()), "hook", "WORKFLOW_NOT_FOUND"),
        (api.tenant.id, "not-a-uuid", "hook", "WORKFLOW_NOT_FOUND"),
        (api.tenant.id, wf.id, "nope", "NOT_FOUND"),
        (api.tenant.id, wf.id, "nightly", "NOT_FOUND"),  # a cron trigger
        (api.tenant.id, wf.id, "BAD ID", "NOT_FOUND"),
    ]:
        problem = await refused(secrets_of(registry, tenant, wid, tid))
        assert problem.code.name == code, (tenant, wid, tid)


async def test_state_of_the_workflow_and_trigger(registry: Registry, api: Api) -> None:
    wf = await api.create(unique("state"), triggers=[{**HOOK, "enabled": False}])
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert (found.trigger_exists, found.trigger_enabled, len(found.secrets)) == (True, False, 1)
    await api("workflow_patch", r.WorkflowPatch(id=wf.id, enabled=False))
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert (found.enabled, found.valid) == (False, True)


async def test_rotation_keeps_the_previous_secret_for_the_grace(
    registry: Registry, api: Api
) -> None:
    wf = await api.create(unique("rotated"), triggers=[HOOK, CRON])
    first = wf.webhook_secrets["hook"]  # type: ignore[index]
    rotate = r.WebhookSecretRotate(workflow_id=wf.id, trigger_id="hook")
    second = await api("webhook_secret_rotate", rotate)
    assert second.secret.startswith("whsec_") and second.secret != first
    assert second.secret not in repr(second)
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert [k.secret for k in found.secrets] == [second.secret, first]
    assert found.secrets[0].expires_at is None
    grace = registry.settings.webhook_secret_grace
    assert found.secrets[1].expires_at is not None
    held = found.secrets[1].expires_at - second.created_at
    assert abs(held - grace) < timedelta(seconds=5)
    third = await api("webhook_secret_rotate", rotate)
    found = await secrets_of(registry, api.tenant.id, wf.id, "hook")
    assert [k.secret for k in found.secrets] == [third.secret, second.secret]  # the oldest goes
    for wid, tid, code in [
        (str(uuid.uuid4()), "hook", "WORKFLOW_NOT_FOUND"),
        (wf.id, "nightly", "NOT_FOUND"),
        (wf.id, "missing", "NOT_FOUND"),
    ]:
        problem = await refused(
            api("webhook_secret_rotate", r.WebhookSecretRotate(workflow_id=wid, trigger_id=tid))
        )
        assert problem.code.name == code


# --- registries of their own: no secrets key, a short grace ----------------------------------


@asynccontextmanager
async def own_registry(
    settings: RegistrySettings, nc: Any, **overrides: Any
) -> AsyncIterator[Registry]:
    """A registry on the session's database under subjects and streams of its own."""
    prefix = f"fmw{secrets.token_hex(4)}"
    mine = msgspec.structs.replace(
        settings,
        subject_prefix=prefix,
        stream_prefix=prefix.upper(),
        projection_enabled=False,
        **overrides,
    )
    try:
        async with AsyncExitStack() as stack:
            app = await start_registry(mine, stack)
            yield Registry(app, RpcClient(nc, Subjects(prefix), timeout=5.0), mine)
    finally:
        for stream in msgspec.structs.astuple(stream_names(mine.stream_prefix)):
            with contextlib.suppress(NotFoundError):
                await nc.jetstream().delete_stream(stream)


async def test_without_a_secrets_key_webhooks_are_stored_without_secrets(
    registry: Registry, registry_settings: RegistrySettings, nc: Any, tenant: TenantHandle
) -> None:
    async with own_registry(registry_settings, nc, secrets_key="") as keyless:
        bare = Api(keyless, tenant)
        wf = await bare.create(unique("keyless"), triggers=[HOOK])
        assert wf.webhook_secrets is msgspec.UNSET
        found = await secrets_of(keyless, tenant.id, wf.id, "hook")
        assert (found.trigger_exists, found.secrets) == (True, [])
        rotate = r.WebhookSecretRotate(workflow_id=wf.id, trigger_id="hook")
        problem = await refused(bare("webhook_secret_rotate", rotate))
        assert problem.code.name == "UNAVAILABLE" and "secrets key" in problem.detail
        # Once a key is configured, the next write of the workflow makes the secret, even
        # a write that changes nothing.
        same = simple_definition(wf.name, triggers=[HOOK])
        keyed = await Api(registry, tenant)(
            "workflow_update", r.WorkflowUpdate(id=wf.id, definition=same)
        )
        assert keyed.version == 1 and list(keyed.webhook_secrets) == ["hook"]
        # A registry without the key cannot read the secret: 503, not "no secret".
        problem = await refused(secrets_of(keyless, tenant.id, wf.id, "hook"))
        assert problem.code.name == "UNAVAILABLE"


async def test_the_previous_secret_expires_after_the_grace(
    registry_settings: RegistrySettings, nc: Any
) -> None:
    async with own_registry(
        registry_settings, nc, webhook_secret_grace=timedelta(seconds=1)
    ) as short:
        tenant = await new_tenant(short, "gr")
        api = Api(short, tenant)
        wf = await api.create(unique("grace"), triggers=[HOOK])
        rotate = r.WebhookSecretRotate(workflow_id=wf.id, trigger_id="hook")
        new = await api("webhook_secret_rotate", rotate)
        found = await secrets_of(short, tenant.id, wf.id, "hook")
        assert len(found.secrets) == 2

        async def only_the_new_one() -> bool:
            keys = (await secrets_of(short, tenant.id, wf.id, "hook")).secrets
            return [k.secret for k in keys] == [new.secret]

        await until(only_the_new_one, timeout=5, interval=0.2)
