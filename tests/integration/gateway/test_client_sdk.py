"""flowmesh-client against a real stack (registry, gateway and executor of this module's
own): every group of calls, pagination across pages, a run followed over SSE through a
cut connection, and each exception from a real answer. Its retries are in
test_client_retries.py (a fake server decides what fails there)."""

from __future__ import annotations

import asyncio
import secrets
import socket
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from flowmesh_client import (
    Client,
    Conflict,
    ConnectionFailed,
    Delivery,
    NotFound,
    Reconnecting,
    StreamPolicy,
    SyncClient,
    Unauthorized,
    ValidationFailed,
)
from flowmesh_proto.http import RunAccepted
from flowmesh_proto.runs import Run, RunQueued, RunSucceeded
from tests.helpers import until
from tests.integration.gateway.conftest import ADMIN_TOKEN
from tests.integration.harness import TenantHandle

from .clientstack import (
    BROKEN_YAML,
    GREETING_YAML,
    CuttingProxy,
    Stack,
    greeting,
    stack,
    tenant,
    unique,
)

pytestmark = pytest.mark.integration
__all__ = ["stack", "tenant"]
NOWHERE = Path("/nonexistent")


def client_of(stack: Stack, tenant: TenantHandle, **kwargs: object) -> Client:
    return Client(stack.url, tenant.id, tenant.admin_key, env={}, cwd=NOWHERE, **kwargs)  # type: ignore[arg-type]


async def test_workflows_every_call(stack: Stack, tenant: TenantHandle) -> None:
    async with client_of(stack, tenant) as client:
        name = unique("hello")
        made = await client.workflows.create(greeting(name))
        assert (made.name, made.version, made.validation_status) == (name, 1, "valid")
        same = await client.workflows.apply(greeting(name))
        assert (same.id, same.version) == (made.id, 1)  # nothing changed: no new version
        changed = await client.workflows.apply(greeting(name, description="Say hello twice."))
        assert (changed.id, changed.version) == (made.id, 2)
        assert (await client.workflows.get(made.id, version=1)).description == "Say hello."
        assert (await client.workflows.find(name)).id == made.id
        versions = await client.workflows.versions(made.id)
        assert [v.version for v in versions.items] == [2, 1]
        assert (await client.workflows.version(made.id, 1)).version == 1
        exported = await client.workflows.export(made.id, format="yaml")
        assert f"name: {name}" in exported
        checked = await client.workflows.validate(exported, yaml=True)
        assert (checked.valid, checked.errors) == (True, [])
        copy = await client.workflows.import_(GREETING_YAML.format(name=unique("yaml")), yaml=True)
        assert copy.nodes[0]["id"] == "shape"
        patched = await client.workflows.patch(made.id, enabled=False, tags=["a", "b"])
        assert (patched.enabled, patched.tags) == (False, ["a", "b"])
        clone = await client.workflows.clone(made.id, unique("clone"))
        assert clone.id != made.id
        lock = await client.workflows.lock(made.id)
        assert lock.workflow_id == made.id
        await client.workflows.unlock(made.id)
        assert (await client.workflows.stats(made.id)).execution_count == 0
        batch = await client.workflows.batch(
            [
                {"op": "create", "definition": greeting(unique("batch"))},
                {"op": "delete", "id": clone.id},
            ]
        )
        assert [(r.op, r.created) for r in batch.results] == [("create", True), ("delete", False)]
        with pytest.raises(NotFound) as caught:
            await client.workflows.get(clone.id)
        assert (caught.value.status, caught.value.code) == (404, "WORKFLOW_NOT_FOUND")


async def test_pagination_follows_next_cursor_across_pages(
    stack: Stack, tenant: TenantHandle
) -> None:
    async with client_of(stack, tenant) as client:
        tag = unique("page")
        names = {unique("paged") for _ in range(5)}
        for name in names:
            await client.workflows.create(greeting(name, tags=[tag]))
        first = await client.workflows.list(tags=[tag], limit=2, sort="name")
        assert (len(first.items), first.has_more) == (2, True)
        seen = [w.name async for w in client.workflows.iter(tags=[tag], limit=2, sort="name")]
        assert seen == sorted(names)  # three pages, each item once, in order


async def test_a_run_executed_waited_for_listed_and_read(
    stack: Stack, tenant: TenantHandle
) -> None:
    async with client_of(stack, tenant) as client:
        made = await client.workflows.create(greeting(unique("run")))
        done = await client.workflows.execute(made.id, {"name": "Ada"}, wait=timedelta(seconds=20))
        assert isinstance(done, Run) and done.status == "succeeded"
        assert [s.node_id for s in done.steps] == ["shape", "greet", "done"]

        async def listed() -> list[str]:  # the history is a projection: it may lag a little
            return [r.id async for r in client.runs.iter(workflow_id=made.id, limit=1)]

        assert await until(listed, timeout=10) == [done.id]
        assert (await client.runs.get(done.id)).output == done.output
        events = [e async for e in client.runs.follow(done.id)]
        assert isinstance(events[0], RunQueued) and isinstance(events[-1], RunSucceeded)
        with pytest.raises(Conflict) as caught:
            await client.runs.retry(done.id)
        assert caught.value.code == "WORKFLOW_NOT_EXECUTABLE"
        later = await client.workflows.execute(made.id, {}, delay=timedelta(minutes=10))
        assert isinstance(later, RunAccepted) and later.status == "scheduled"
        cancelling = await client.runs.cancel(later.run_id, "changed my mind")
        assert cancelling.status == "cancelling"


async def test_following_a_run_through_a_cut_connection(stack: Stack, tenant: TenantHandle) -> None:
    parts = urlsplit(stack.url)
    proxy = CuttingProxy(parts.hostname or "127.0.0.1", parts.port or 80)
    fast = StreamPolicy(first_delay=0.05, max_delay=0.2, idle_timeout=10)
    try:
        proxied = Client(
            proxy_url := await proxy.start(),
            tenant.id,
            tenant.admin_key,
            env={},
            cwd=NOWHERE,
            stream=fast,
        )
        async with client_of(stack, tenant) as client, proxied:
            made = await client.workflows.create(greeting(unique("cut")))
            accepted = await client.workflows.execute(made.id, {"name": "Grace"})
            assert isinstance(accepted, RunAccepted)
            items = [i async for i in proxied.runs.stream(accepted.run_id)]
            whole = [i async for i in client.runs.stream(accepted.run_id)]
    finally:
        await proxy.stop()
    assert proxy.cuts == 1 and proxy.connections == 2, proxy_url
    [reconnect] = [i for i in items if isinstance(i, Reconnecting)]
    # Stored events only: a queued run's computed run.waiting (no id) may come on each connection.
    got = [i.seq for i in items if isinstance(i, Delivery) and i.seq is not None]
    assert reconnect.last_event_id == str(got[0])  # resumed after the last whole event
    assert got == [i.seq for i in whole if isinstance(i, Delivery) and i.seq is not None]
    assert isinstance([i for i in items if isinstance(i, Delivery)][-1].event, RunSucceeded)


async def test_events_keys_secrets_connectors_actions_catalog_audit_webhooks(
    stack: Stack, tenant: TenantHandle
) -> None:
    async with client_of(stack, tenant) as client:
        published = await client.events.publish("order.created", {"order": 42}, id="order-42")
        assert published.id == "order-42"
        key = await client.api_keys.create("ci", "operator")
        assert key.key.startswith(f"fm_{tenant.id}_")
        assert key.id in [k.id for k in (await client.api_keys.list()).items]
        await client.api_keys.revoke(key.id)
        assert (await client.secrets.set("SHOP_TOKEN", "s3cret")).name == "SHOP_TOKEN"
        assert [s.name for s in (await client.secrets.list()).items] == ["SHOP_TOKEN"]
        assert (await client.secrets.delete("SHOP_TOKEN")).name == "SHOP_TOKEN"
        spec = {
            "base_url": "https://shop.example/api",
            "auth": {"kind": "bearer", "secret": "SHOP_TOKEN"},
        }
        made = await client.connectors.put("shop", spec)
        assert (made.name, made.missing_secrets) == ("shop", ["SHOP_TOKEN"])
        assert (await client.connectors.get("shop")).base_url == "https://shop.example/api"
        assert [c.name async for c in client.connectors.iter()] == ["shop"]
        await client.connectors.delete("shop")
        actions = [a async for a in client.actions.iter()]
        assert actions, "the built-in actions"
        assert (await client.actions.get(actions[0].name)).name == actions[0].name
        kinds = {e.kind async for e in client.catalog.iter()}
        assert kinds == {"node", "action"}
        audited = [e.action async for e in client.audit.iter()]
        assert audited, "the key made and revoked, the secret set and deleted"
        hooked = await client.workflows.create(
            greeting(unique("hook"), triggers=[{"id": "hook", "kind": "webhook"}])
        )
        rotated = await client.workflows.rotate_webhook_secret(hooked.id, "hook")
        sent = await client.webhooks.send(hooked.id, "hook", {"name": "Hook"}, rotated.secret)
        assert sent.status == "queued"


async def test_the_sync_client_is_the_same_calls(stack: Stack, tenant: TenantHandle) -> None:
    name = unique("sync")

    def blocking() -> tuple[str, list[str], str]:
        with SyncClient(stack.url, tenant.id, tenant.admin_key, env={}, cwd=NOWHERE) as client:
            made = client.workflows.create(greeting(name))
            names = [w.name for w in client.workflows.iter(q=name)]
            done = client.workflows.execute(made.id, {"name": "Sync"}, wait=timedelta(seconds=20))
            kinds = [type(e).__name__ for e in client.runs.follow(done.id)]
            return made.name, names, kinds[-1]

    assert await asyncio.to_thread(blocking) == (name, [name], "RunSucceeded")


async def test_each_refusal_is_its_exception_with_the_problem(
    stack: Stack, tenant: TenantHandle
) -> None:
    async with client_of(stack, tenant) as client:
        with pytest.raises(NotFound) as missing:
            await client.workflows.get("7c1e0000-0000-4000-8000-000000000002")
        assert (missing.value.status, missing.value.code) == (404, "WORKFLOW_NOT_FOUND")
        with pytest.raises(ValidationFailed) as invalid:
            await client.workflows.import_(BROKEN_YAML.format(name=unique("bad")), yaml=True)
        assert (invalid.value.status, invalid.value.code) == (422, "IMPORT_VALIDATION_FAILED")
        [problem] = [e for e in invalid.value.errors if e.path == "edges[0].to"]
        assert (problem.code, problem.line) == ("INVALID_EDGES", 7)
    wrong = Client(stack.url, tenant.id, f"fm_{tenant.id}_wrong", env={}, cwd=NOWHERE)
    async with wrong:
        with pytest.raises(Unauthorized) as refused:
            await wrong.workflows.list()
        assert (refused.value.status, refused.value.code) == (401, "UNAUTHENTICATED")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    nobody = Client(url, tenant.id, tenant.admin_key, env={}, cwd=NOWHERE)
    nobody.transport.retry = nobody.transport.retry.__class__(attempts=2, first_delay=0.01)
    async with nobody:
        with pytest.raises(ConnectionFailed) as unreachable:
            await nobody.workflows.list()
    assert unreachable.value.url == url and url in str(unreachable.value)


async def test_the_platform_admin_makes_and_changes_tenants(stack: Stack) -> None:
    name = f"t{secrets.token_hex(4)}"
    # the tenant an admin client names is not used by its tenants calls
    async with Client(stack.url, name, ADMIN_TOKEN, env={}, cwd=NOWHERE) as admin:
        made = await admin.tenants.create(name, "Made by the SDK")
        assert made.id == name and made.admin_key.key
        changed = await admin.tenants.update(name, weight=3)
        assert changed.weight == 3
        seen = await admin.tenants.get(name)
        assert (seen.name, seen.weight, seen.runs.running) == ("Made by the SDK", 3, 0)
        with pytest.raises(NotFound):
            await admin.tenants.get(f"{name}x")
    async with Client(stack.url, name, made.admin_key.key, env={}, cwd=NOWHERE) as own:
        assert (await own.workflows.list()).items == []  # the new tenant's first key works
        with pytest.raises(Unauthorized):  # a tenant's key is no platform admin token
            await own.tenants.get(name)
