"""The fuzz run's own stack: a real registry and gateway in this process, on a database, a
subject prefix and streams of their own, so thousands of generated requests touch no other
test's data and no other test's registry answers them.

The stack serves from the session's event loop. The fuzzer (schemathesis, synchronous: its
requests are blocking ``requests`` calls) runs in a worker thread through
``asyncio.to_thread``, so the loop keeps serving while a test awaits the thread.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import msgspec
import pytest_asyncio
from nats.aio.client import Client
from nats.js.errors import NotFoundError

from flowmesh_devtools.localstack import NatsHandle
from flowmesh_gateway.main import start_gateway
from flowmesh_proto import registry as r
from flowmesh_proto.subjects import Subjects, stream_names
from flowmesh_registry.main import start_registry
from flowmesh_registry.secretbox import new_key
from flowmesh_registry.settings import RegistrySettings
from flowmesh_shared.rpc import RpcClient
from tests.integration.gateway.conftest import ADMIN_TOKEN, gateway_settings
from tests.integration.harness import Registry, TenantHandle, new_tenant, simple_definition


class FuzzTarget(msgspec.Struct, frozen=True, kw_only=True):
    """A running gateway, the tenant the fuzzer acts for, and real resources on demand."""

    base: str
    tenant: TenantHandle
    #: A tenant of its own for ``/admin/tenants/{id}``: the fuzzer may change its limits.
    spare_tenant: str
    admin_token: str
    registry: Registry

    async def _call(self, operation: str, request: msgspec.Struct) -> Any:
        return await self.registry.call(
            operation, request, tenant=self.tenant.id, principal=self.tenant.principal
        )

    async def real_parameters(self, path: str) -> dict[str, str]:
        """Path parameters naming fresh, real resources for ``path`` ({} if it has none)."""
        if "/admin/tenants/{id}" in path:
            return {"id": self.spare_tenant}
        if "/api-keys/{id}" in path:
            key = await self._call("apikey_create", r.ApiKeyCreate(name="fuzz", role="viewer"))
            return {"id": key.id}
        if "/secrets/{name}" in path:
            name = f"FUZZ_{secrets.token_hex(4).upper()}"
            await self._call("secret_put", r.SecretPut(name=name, value="fuzz"))
            return {"name": name}
        if "/workflows/{id}" in path or "/workflows/by-name/{name}" in path:
            definition = simple_definition(f"fuzz-{secrets.token_hex(4)}")
            workflow = await self._call("workflow_create", r.WorkflowCreate(definition=definition))
            found = {"id": workflow.id, "name": workflow.name, "n": "1"}
            return {name: value for name, value in found.items() if f"{{{name}}}" in path}
        return {}


def _database_url(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def fuzz_target(
    postgres_url: str, nats_server: NatsHandle, nc: Client
) -> AsyncIterator[FuzzTarget]:
    database = f"{urlsplit(postgres_url).path.lstrip('/')}_fuzz"
    conn = await asyncpg.connect(postgres_url)
    try:
        await conn.execute(f'CREATE DATABASE "{database}"')
    finally:
        await conn.close()
    prefix = f"fmf{secrets.token_hex(4)}"
    settings = RegistrySettings(
        database_url=_database_url(postgres_url, database),
        nats_url=nats_server.url,
        subject_prefix=prefix,
        stream_prefix=prefix.upper(),
        http_port=0,
        outbox_poll_interval=0.2,
        max_definition_bytes=64 * 1024,
        max_nodes=50,
        max_edges=100,
        secrets_key=new_key(),
    )
    try:
        async with AsyncExitStack() as stack:
            app = await start_registry(settings, stack)
            client = RpcClient(nc, Subjects(prefix), timeout=5.0)
            registry = Registry(app, client, settings)
            gateway = await start_gateway(gateway_settings(registry, []), stack)
            yield FuzzTarget(
                base=f"http://127.0.0.1:{gateway.port}",
                tenant=await new_tenant(registry, "fz"),
                spare_tenant=(await new_tenant(registry, "fs")).id,
                admin_token=ADMIN_TOKEN,
                registry=registry,
            )
    finally:
        js = nc.jetstream()
        for stream in msgspec.structs.astuple(stream_names(prefix.upper())):
            with contextlib.suppress(NotFoundError):
                await js.delete_stream(stream)
        conn = await asyncpg.connect(postgres_url)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()
