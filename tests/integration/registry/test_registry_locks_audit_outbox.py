"""Edit locks with a TTL, the audit trail of every mutation, and the outbox to JetStream."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from flowmesh_proto import registry as r
from flowmesh_proto.subjects import StreamNames, Subjects
from flowmesh_shared.errors import RemoteError
from tests.helpers import until

from .conftest import Api, Registry, TenantHandle, simple_definition, unique

pytestmark = pytest.mark.integration


async def test_locks_keep_others_out(api: Api, registry: Registry, tenant: TenantHandle) -> None:
    wf = await api.create(unique("locked"))
    other = await registry.call(
        "apikey_create",
        r.ApiKeyCreate(name="colleague", role="editor"),
        tenant=tenant.id,
        principal=tenant.principal,
    )
    colleague = f"key:{tenant.id}:{other.id}"

    async def as_colleague(op: str, req: msgspec.Struct) -> Any:
        return await registry.call(op, req, tenant=tenant.id, principal=colleague)

    lock = await api("workflow_lock", r.WorkflowLock(id=wf.id, ttl_seconds=60))
    assert lock.locked_by == tenant.principal
    shown = await api("workflow_get", r.WorkflowGet(id=wf.id))
    assert shown.is_locked and shown.locked_by == tenant.principal
    for op, req, code in [
        ("workflow_lock", r.WorkflowLock(id=wf.id), "LOCK_ACQUISITION_FAILED"),
        ("workflow_unlock", r.WorkflowUnlock(id=wf.id), "LOCK_NOT_OWNED"),
        (
            "workflow_update",
            r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name, description="z")),
            "WORKFLOW_LOCKED",
        ),
        ("workflow_patch", r.WorkflowPatch(id=wf.id, enabled=False), "WORKFLOW_LOCKED"),
        ("workflow_delete", r.WorkflowDelete(id=wf.id), "WORKFLOW_LOCKED"),
    ]:
        with pytest.raises(RemoteError) as caught:
            await as_colleague(op, req)
        assert caught.value.problem.code == code, op
    assert caught.value.problem.status == 423
    # The holder may still edit, and refresh its own lock.
    await api("workflow_patch", r.WorkflowPatch(id=wf.id, tags=["mine"]))
    await api("workflow_lock", r.WorkflowLock(id=wf.id, ttl_seconds=1))
    await until(lambda: _unlocked(api, wf.id), timeout=5)
    taken = await as_colleague("workflow_lock", r.WorkflowLock(id=wf.id, ttl_seconds=30))
    assert taken.locked_by == colleague
    await as_colleague("workflow_unlock", r.WorkflowUnlock(id=wf.id))
    assert not (await api("workflow_get", r.WorkflowGet(id=wf.id))).is_locked


async def _unlocked(api: Api, wid: str) -> bool:
    return not (await api("workflow_get", r.WorkflowGet(id=wid))).is_locked


async def test_lock_ttl_bounds(api: Api) -> None:
    wf = await api.create(unique("ttl"))
    for ttl in (0, -5, 86_401):
        with pytest.raises(RemoteError) as caught:
            await api("workflow_lock", r.WorkflowLock(id=wf.id, ttl_seconds=ttl))
        assert caught.value.problem.code == "VALIDATION_FAILED"


async def test_every_mutation_is_audited(api: Api) -> None:
    wf = await api.create(unique("audited"))
    await api(
        "workflow_update",
        r.WorkflowUpdate(id=wf.id, definition=simple_definition(wf.name, description="2")),
    )
    await api("workflow_patch", r.WorkflowPatch(id=wf.id, enabled=False))
    await api("workflow_lock", r.WorkflowLock(id=wf.id))
    await api("workflow_unlock", r.WorkflowUnlock(id=wf.id))
    await api("workflow_delete", r.WorkflowDelete(id=wf.id))
    page = await api("audit_list", r.AuditList(target=f"workflow:{wf.id}", limit=100))
    actions = [entry.action for entry in reversed(page.items)]
    assert actions == [
        "workflow.create",
        "workflow.update",
        "workflow.patch",
        "workflow.lock",
        "workflow.unlock",
        "workflow.delete",
    ]
    assert all(e.actor == api.tenant.principal and e.outcome == "success" for e in page.items)
    first = await api("audit_list", r.AuditList(target=f"workflow:{wf.id}", limit=2))
    assert first.has_more and first.next_cursor
    rest = await api(
        "audit_list", r.AuditList(target=f"workflow:{wf.id}", limit=100, cursor=first.next_cursor)
    )
    assert [e.id for e in first.items + rest.items] == [e.id for e in page.items]


async def test_changes_reach_jetstream_through_the_outbox(
    api: Api, nc: Any, subjects: Subjects, streams: StreamNames
) -> None:
    js = nc.jetstream()
    received: list[r.WorkflowChanged] = []
    sub = await js.subscribe(
        subjects.workflow_changed(api.tenant.id), stream=streams.registry, ordered_consumer=True
    )
    try:
        wf = await api.create(unique("announced"))
        await api("workflow_patch", r.WorkflowPatch(id=wf.id, enabled=False))
        await api("workflow_delete", r.WorkflowDelete(id=wf.id))

        async def three() -> bool:
            try:
                msg = await sub.next_msg(timeout=0.5)
            except TimeoutError:
                return False
            assert msg.headers and msg.headers["Nats-Msg-Id"].startswith("outbox:")
            received.append(msgspec.json.decode(msg.data, type=r.WorkflowChanged))
            return len([m for m in received if m.workflow_id == wf.id]) == 3

        await until(three, timeout=10)
    finally:
        await sub.unsubscribe()
    mine = [m for m in received if m.workflow_id == wf.id]
    assert [m.change for m in mine] == ["created", "patched", "deleted"]
    assert [m.enabled for m in mine] == [True, False, False]
    assert all(m.tenant == api.tenant.id for m in mine)
    ids = [m.outbox_id for m in mine]
    assert ids == sorted(ids) and len(set(ids)) == 3


async def _changes(nc: Any, subject: str, stream: str) -> list[r.WorkflowChanged]:
    """Every message on ``subject`` in the stream right now."""
    js = nc.jetstream()
    sub = await js.subscribe(subject, stream=stream, ordered_consumer=True)
    found: list[r.WorkflowChanged] = []
    try:
        while True:
            try:
                msg = await sub.next_msg(timeout=0.3)
            except TimeoutError:
                return found
            found.append(msgspec.json.decode(msg.data, type=r.WorkflowChanged))
    finally:
        await sub.unsubscribe()


async def test_a_relay_crash_neither_loses_nor_duplicates(
    api: Api,
    registry: Registry,
    nc: Any,
    subjects: Subjects,
    streams: StreamNames,
    postgres_url: str,
) -> None:
    import asyncpg

    from flowmesh_registry.outbox import OutboxRelay

    subject = subjects.workflow_changed(api.tenant.id)
    old = registry.app.relay
    await old.stop()  # the relay is down while a change is made: nothing may be lost
    wf = await api.create(unique("crash"))
    admin = await asyncpg.connect(postgres_url)
    try:
        pending = await admin.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND published_at IS NULL",
            api.tenant.id,
        )
        assert pending == 1
        relay = OutboxRelay(
            registry.app.db, nc.jetstream(), subjects, listen_dsn=postgres_url, poll_interval=0.1
        )
        await relay.start()
        await until(lambda: relay.published >= 1, timeout=10)
        # Now "crash" between publish and mark: the row looks unpublished again.
        await admin.execute(
            "UPDATE outbox SET published_at = NULL WHERE tenant_id = $1", api.tenant.id
        )
        await until(lambda: relay.published >= 2, timeout=10)
        left = await admin.fetchval(
            "SELECT count(*) FROM outbox WHERE tenant_id = $1 AND published_at IS NULL",
            api.tenant.id,
        )
        assert left == 0
        await relay.stop()
    finally:
        await old.start()
        await admin.close()
    changes = await _changes(nc, subject, streams.registry)
    assert [(c.workflow_id, c.change) for c in changes] == [(wf.id, "created")]
